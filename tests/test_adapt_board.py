"""On-device adaptation on MicroPython (unix port, x64 natmod): the board's
pseudo-labelling + training writes the same blob as the host driver; persistence is atomic (a
process killed mid-write leaves a valid model), a corrupt adapted model falls back to the
factory model, restore() works; the virtual board: the device path over mpremote, ``earshot
adapt --rollback`` and the detector loop adapting while it detects.
"""

import signal
import subprocess
import zlib

import numpy as np
import pytest
from adapt_support import _cfg_for, _mpy
from earshot import adapt, core
from earshot.board import deploy, natmod
from earshot.board.telemetry import DETECT, HELLO, Decoder
from earshot.board.vboard import VirtualBoard
from earshot.cli import main as cli_main
from earshot.model import Engine, Model


def test_board_and_host_defaults_are_the_same():
    """firmware/modules/es_adapt.py DEFAULTS == earshot.adapt.DEFAULTS (the board's own copy:
    it cannot import the host tools)."""
    import ast

    from earshot.paths import FIRMWARE

    tree = ast.parse((FIRMWARE / "modules" / "es_adapt.py").read_text())
    board = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", None) == "DEFAULTS" for t in n.targets))
    assert board == adapt.DEFAULTS


@pytest.mark.parametrize("anchor_shift", [0, 6])
def test_board_adaptation_equals_host_byte_for_byte(flash, factory, anchor_shift):
    d, _, streams = flash
    cfg = {**_cfg_for(factory, streams), "anchor_shift": anchor_shift}
    host = adapt.adapt(factory, streams, cfg)
    assert host.positives > 0 and host.negatives > 0
    names = [f"s{i}.raw" for i in range(len(streams))]
    # From the factory model, whatever an earlier test left on the board.
    proc = _mpy(flash, f"import es_adapt\nes_adapt.restore()\n"
                       f"es_adapt.run_files({names!r}, {cfg!r})\n")
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("ADAPT")][-1].split()
    assert [int(v) for v in line[1:]] == [
        host.positives,
        host.negatives,
        len(host.blob),
        zlib.crc32(host.blob),
    ]
    assert (d / "adapted.bin").read_bytes() == host.blob
    assert host.blob != factory
    proc = _mpy(flash, "import es_adapt\nprint(es_adapt.load_model()[1])")
    assert proc.stdout.strip() == "adapted.bin"


def _normalised(factory_blob: bytes) -> bytes:
    """The same network flagged input_norm 1 (format 2): it then takes normalised features."""
    b = bytearray(factory_blob)
    b[4:6] = (2).to_bytes(2, "little")
    b[46] = 1
    b[8:12] = zlib.crc32(bytes(b[12:])).to_bytes(4, "little")
    return bytes(b)


def _second_flash(flash_dir, tmp_path, files: dict):
    """A flash folder with the modules, natmod and streams of ``flash_dir`` plus ``files``
    (name -> bytes), so a test can give the board other models."""
    board = tmp_path / "flash"
    board.mkdir()
    for p in flash_dir.iterdir():
        if p.suffix in (".py", ".mpy", ".raw"):
            (board / p.name).write_bytes(p.read_bytes())
    for name, data in files.items():
        (board / name).write_bytes(data)
    return board


def test_board_adaptation_of_a_normalised_model_equals_host(flash, factory, tmp_path):
    """With input_norm set, both sides pseudo-label the model's own (normalised) input
    features: the windows match the detector's, so the adapted blobs match byte for byte."""
    d, mp, streams = flash
    norm = _normalised(factory)
    assert Model(norm).info["input_norm"] == 1
    # The host labeler's windows are what the normalising detector computed on.
    m = Model(norm)
    feats = core.model_features(streams[0], 1)
    assert not np.array_equal(feats, core.features(streams[0]))  # normalising changes them
    hops, logits = Engine(m).run(feats)
    fwd = adapt.Forward(m)
    frames = m.info["input_frames"]
    assert [fwd(feats[h + 1 - frames : h + 1])[0] for h in hops] == list(logits)
    cfg = _cfg_for(norm, streams)
    host = adapt.adapt(norm, streams, cfg)
    assert host.positives > 0 and host.negatives > 0 and host.blob != norm
    assert Model(host.blob).info["input_norm"] == 1
    board = _second_flash(d, tmp_path, {"model.bin": norm})
    names = [f"s{i}.raw" for i in range(len(streams))]
    proc = _mpy((board, mp, streams), f"import es_adapt\nes_adapt.run_files({names!r}, {cfg!r})\n")
    assert proc.returncode == 0, proc.stderr
    assert (board / "adapted.bin").read_bytes() == host.blob


@pytest.mark.parametrize("check_every", [2, 3])
def test_board_acceptance_check_equals_host(flash, factory, check_every):
    _d, _, streams = flash
    cfg = {**_cfg_for(factory, streams), "check_every": check_every}
    host = adapt.adapt(factory, streams, cfg)
    chk = host.info["check"]
    assert chk is not None and chk["n"] > 0
    names = [f"s{i}.raw" for i in range(len(streams))]
    code = f"import es_adapt\nes_adapt.restore()\nes_adapt.run_files({names!r}, {cfg!r})\n"
    proc = _mpy(flash, code)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    line = [x for x in out if x.startswith("CHECK")][-1].split()
    assert [int(v) for v in line[1:]] == [chk["n"], chk["rise"], chk["above"], chk["fires"]]
    adapt_line = [x for x in out if x.startswith("ADAPT")][-1].split()
    if host.info["accepted"]:
        assert int(adapt_line[4]) == zlib.crc32(host.blob) and host.blob != factory
    else:  # refused: nothing saved on the board, the host keeps the factory blob
        assert adapt_line[3:] == ["0", "0"] and host.blob == factory


# Board code: each raw stream of `names` through the detector `det` and then the Adapter `ad`
# in blocks of 10 hops, as es_loop feeds them.
_BOARD_FEED = """
buf = bytearray(3200); probs = bytearray(10); flags = bytearray(10)
for name in {names!r}:
    det.reset(); ad.new_stream()
    f = open(name, 'rb')
    while True:
        got = f.readinto(buf)
        if not got: break
        v = memoryview(buf)[:got // 320 * 320]
        det.run(v, probs, flags); ad.observe(v, probs, flags, det)
    f.close()
"""


def test_board_pruning_equals_host(flash, factory):
    _d, _, streams = flash
    cfg = _cfg_for(factory, streams)
    names = [f"s{i}.raw" for i in range(len(streams))]
    ratios = [0.5, 0.0, 0.5, 0.5, 0.0][: len(adapt.Stats(Model(factory)).groups)]
    host = adapt.PseudoLabeler(Model(factory), cfg)
    for s in streams:
        host.run_stream(s)
    scores = adapt.importance(
        Model(factory), host.pos_stats if host.pos_stats.windows else host.stats
    )
    keep = adapt.select(host.stats, scores, ratios)
    expect = adapt.prune(Model(factory), host.stats, keep)
    code = (
        "import _earshot, es_adapt\n"
        "m, _ = es_adapt.load_model(adapted='none.bin')\n"
        "det = _earshot.Detector(m)\n"
        f"ad = es_adapt.Adapter(m, {cfg!r})\n"
        + _BOARD_FEED.format(names=names)
        + f"pm = [{', '.join(str(int(r * 1000)) for r in ratios)}]\n"
        "b = ad.prune(m, pm)\n"
        "print('PRUNED', len(b), _earshot.crc32(b))\n"
    )
    proc = _mpy(flash, code)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("PRUNED")][-1].split()
    assert (int(line[1]), int(line[2])) == (len(expect), zlib.crc32(expect))
    assert len(expect) < len(factory)


_STUDENT_RUN = """
import _earshot, es_adapt
t = _earshot.Model(es_adapt._read('teacher.bin'))
s = _earshot.Model(es_adapt._read('student.bin'))
det = _earshot.Detector(t)
ad = es_adapt.Adapter(t, {cfg!r}, student=s)
{feed}b = ad.train_all()
print('STUDENT', ad.phases, ad.n_pos, ad.n_neg, len(b), _earshot.crc32(b))
"""


@pytest.mark.parametrize("phases", [1, 0])
def test_board_student_distillation_equals_host(flash, factory, tmp_path, phases):
    """Phase 2 on the board (a pruned student learning from its teacher's logits, with the
    windows of every output phase by default) equals the host's, byte for byte."""
    d, mp, streams = flash
    cfg = {**_cfg_for(factory, streams), "distill_epochs": 4, "distill_phases": phases}
    teacher = Model(factory)
    pl = adapt.PseudoLabeler(teacher, cfg)
    for s in streams:
        pl.run_stream(s)
    ratios = [0.5, 0.0, 0.5, 0.5, 0.0][: len(pl.stats.groups)]
    keep = adapt.select(pl.stats, adapt.importance(teacher, pl.stats), ratios)
    student = adapt.prune(teacher, pl.stats, keep)
    host = adapt.PseudoLabeler(teacher, cfg, with_stats=False, student=Model(student))
    for s in streams:
        host.run_stream(s)
    blob_out, _, _ = adapt.train_buffer(Model(student), host, cfg)
    assert blob_out != student
    stride = teacher.info["output_stride"]
    assert host.phases() == (phases or stride)
    board = _second_flash(d, tmp_path, {"teacher.bin": factory, "student.bin": student})
    names = [f"s{i}.raw" for i in range(len(streams))]
    code = _STUDENT_RUN.format(cfg=cfg, feed=_BOARD_FEED.format(names=names))
    proc = _mpy((board, mp, streams), code)
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("STUDENT")][-1].split()
    assert [int(v) for v in line[1:]] == [
        host.phases(), host.n_pos, host.n_neg, len(blob_out), zlib.crc32(blob_out),
    ]
    if phases == 0:
        # Every kept positive output brought its earlier phases, but for windows that would
        # start before the stream.
        one = adapt.PseudoLabeler(
            teacher, {**cfg, "distill_phases": 1}, with_stats=False, student=Model(student)
        )
        for s in streams:
            one.run_stream(s)
        assert one.n_neg == host.n_neg and 0 < one.n_pos
        assert one.n_pos < host.n_pos <= stride * one.n_pos


SLOW_SAVE = """
import es_adapt, time, sys
class Slow:
    def __init__(self, f):
        self.f = f
        self.n = 0
    def write(self, b):
        self.n += 1
        print('W', self.n)
        time.sleep(0.02)
        return self.f.write(b)
    def flush(self):
        self.f.flush()
    def __enter__(self):
        return self
    def __exit__(self, *a):
        self.f.close()
_open = open
es_adapt.open = lambda p, m: Slow(_open(p, m))
blob = bytearray(open('{src}', 'rb').read())
print('START')
es_adapt.save(blob, chunk=256)
print('SAVED')
"""


@pytest.mark.parametrize("kill_after", [1, 10, 40, None])
def test_killed_write_never_leaves_the_board_without_a_valid_model(flash, factory, kill_after):
    d, mp, _ = flash
    for p in ("adapted.bin", "adapted.bin.tmp"):
        if (d / p).exists():
            (d / p).unlink()
    # An earlier adapted model (a valid blob differing from the factory's) is in place ...
    old = adapt.Trainer(Model(factory), lr=0.0).write()
    new = bytearray(old)
    (d / "adapted.bin").write_bytes(old)
    # ... and a new one is being written when the process is killed.
    t = adapt.Trainer(Model(factory), lr=0.01)
    emb = np.zeros((2, t.emb_bytes), np.int8)
    t.train(emb, np.array([1, 0], np.uint8), 4)
    new = t.write()
    (d / "new.bin").write_bytes(new)
    proc = subprocess.Popen(
        [mp, "-c", SLOW_SAVE.format(src="new.bin")], cwd=d, stdout=subprocess.PIPE, text=True
    )
    writes = 0
    for line in proc.stdout:
        if line.startswith("W "):
            writes = int(line.split()[1])
            if kill_after is not None and writes >= kill_after:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    chunks = -(-len(new) // 256)
    if kill_after is None:
        assert proc.returncode == 0 and writes == chunks
    else:
        assert proc.returncode == -signal.SIGKILL and writes < chunks
    out = _mpy(
        flash,
        "import es_adapt, _earshot\nm, p = es_adapt.load_model()\nprint(p, m.info()['n_layers'])",
    )
    assert out.returncode == 0, out.stderr
    path = out.stdout.split()[0]
    got = (d / path).read_bytes()
    assert got == (new if kill_after is None else old)
    Model(got)  # parses: CRC and sizes checked


def test_corrupt_adapted_model_falls_back_and_restore_removes_it(flash, factory):
    d, _, _ = flash
    good = adapt.Trainer(Model(factory), lr=0.0).write()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # payload CRC mismatch
    for data, expect in (
        (bytes(bad), "model.bin"),
        (good[:100], "model.bin"),
        (good, "adapted.bin"),
    ):
        (d / "adapted.bin").write_bytes(data)
        out = _mpy(flash, "import es_adapt\nprint(es_adapt.load_model()[1])")
        assert out.stdout.strip() == expect
    out = _mpy(
        flash,
        "import es_adapt\nprint(es_adapt.restore(), es_adapt.restore())\n"
        "print(es_adapt.load_model()[1])",
    )
    assert out.stdout.split() == ["True", "False", "model.bin"]
    assert not (d / "adapted.bin").exists()
    out = _mpy(flash, "import es_adapt\nes_adapt.save(b'not a model')")
    assert out.returncode != 0 and "ValueError: blob shorter" in out.stdout + out.stderr
    assert not (d / "adapted.bin").exists()


# ---------------------------------------------------------------------------------------
# Virtual board, mpremote and the CLI


@pytest.mark.slow
def test_virtual_board_adapts_and_cli_rolls_back(flash, factory, tmp_path, capsys):
    _, _, streams = flash
    cfg = _cfg_for(factory, streams)
    host = adapt.adapt(factory, streams, cfg)
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    names = []
    for i, s in enumerate(streams):
        (board_dir / f"u{i}.raw").write_bytes(s.astype("<i2").tobytes())
        names.append(f"u{i}.raw")
    model = tmp_path / "model.bin"
    model.write_bytes(factory)
    natmod.build("x64")
    with VirtualBoard(board_dir) as board:
        deploy.deploy(board.port, model=model)
        out = deploy.run_on_board(
            board.port, f"import es_adapt\nes_adapt.run_files({names!r}, {cfg!r})\n"
        ).decode()
        line = [x for x in out.splitlines() if x.startswith("ADAPT")][-1].split()
        assert int(line[4]) == zlib.crc32(host.blob)
        assert (board_dir / "adapted.bin").read_bytes() == host.blob
        assert cli_main(["adapt", "--rollback", "--port", board.port]) == 0
        assert '"removed_adapted_model": true' in capsys.readouterr().out
        assert not (board_dir / "adapted.bin").exists()
        ans = deploy.run_on_board(board.port, "import es_adapt\nprint(es_adapt.load_model()[1])")
        assert ans.decode().strip().endswith("model.bin")


LOOP_RELOAD = """
import es_adapt, es_loop
class Quiet:  # telemetry sink
    def hello(self, *a): pass
    def detect(self, *a): pass
    def stats(self, *a): pass
    def end(self, *a): pass
try:
    es_loop.run_files(['s0.raw'], {{'adapt': {{'enabled': True, 'bogus': 1}}}}, Quiet())
except ValueError as e:
    print('ERR', e)
es_adapt.restore('loop.bin')
es_loop.run_files({names!r}, {{'adapt': {acfg!r}}}, Quiet())
L = es_loop.LAST
print('SWAP', L.adapted_at, L.adapter is None, len(L.adapted))
"""


def test_loop_reloads_the_adapted_model_and_names_bad_keys(flash, factory):
    d, _, streams = flash
    cfg = _cfg_for(factory, streams)
    names = [f"s{i}.raw" for i in range(len(streams))]
    acfg = {**cfg, "enabled": True, "save_to": "loop.bin", "slice_macs": 100000}
    proc = _mpy(flash, LOOP_RELOAD.format(names=names, acfg=acfg))
    assert proc.returncode == 0, proc.stderr
    assert "ERR unknown adapt config key: bogus" in proc.stdout
    line = [x for x in proc.stdout.splitlines() if x.startswith("SWAP")][-1]
    # The adapted model took over during the run: (stream, hop) of the swap.
    stream, hop = [int(v) for v in line[line.index("(") + 1 : line.index(")")].split(",")]
    assert 0 <= stream < len(streams) and hop > 0
    assert line.endswith(f"True {len((d / 'loop.bin').read_bytes())}")
    Model((d / "loop.bin").read_bytes())
    (d / "loop.bin").unlink()


def _board_detections(out: bytes) -> tuple[dict, str]:
    """Detection hops per stream from the loop's telemetry, and the printed text."""
    dec = Decoder()
    per = {}
    stream = None
    for f in dec.feed(out):
        if f.kind == HELLO:
            stream = f["stream"]
            per[stream] = []
        elif f.kind == DETECT:
            per[stream].append(f["hop"])
    assert dec.corrupt == 0 and dec.dropped == 0
    return per, dec.take_text()


@pytest.mark.slow
def test_virtual_board_loop_adapts_while_detecting(flash, factory, tmp_path):
    """es_loop with config adapt on: the detector keeps its outputs (the adapter only
    listens, then trains in slices between blocks), the adapted model is saved atomically,
    used at the next start, and not adapted again."""
    _, _, streams = flash
    cfg = {**_cfg_for(factory, streams), "slice_macs": 100000}
    board_dir = tmp_path / "board"
    board_dir.mkdir()
    names = []
    for i, s in enumerate(streams + streams):  # the second pass hears the trained model
        (board_dir / f"u{i}.raw").write_bytes(s.astype("<i2").tobytes())
        names.append(f"u{i}.raw")
    model = tmp_path / "model.bin"
    model.write_bytes(factory)
    natmod.build("x64")
    acfg = {"enabled": True, "reload": False, **cfg}
    code = (
        "import es_loop, _earshot\n"
        f"es_loop.run_files({names!r}, {{'adapt': {acfg!r}}})\n"
        "L = es_loop.LAST\n"
        "b = L.adapted\n"
        "print('LOOP', len(b), _earshot.crc32(b), L.adapt_blocks, L.adapter is None)\n"
    )
    again = (
        "import es_loop\n"
        f"es_loop.run_files({names[:1]!r}, {{'adapt': {{'enabled': True}}}})\n"
        "print('AGAIN', es_loop.LAST.adapter is None)\n"
    )
    with VirtualBoard(board_dir) as board:
        deploy.deploy(board.port, model=model)
        per, text = _board_detections(deploy.run_on_board(board.port, code, timeout=600))
        adapted = (board_dir / "adapted.bin").read_bytes()
        per2, text2 = _board_detections(deploy.run_on_board(board.port, again, timeout=600))
    line = [x for x in text.splitlines() if x.startswith("LOOP")][-1].split()
    assert int(line[1]) == len(adapted) and int(line[2]) == zlib.crc32(adapted)
    assert adapted != factory
    Model(adapted)  # parses, CRC checked
    # Training and the check took several loop iterations (slices of <= slice_macs MACs;
    # empty buffer slots cost nothing), and the adapter was released afterwards.
    assert int(line[3]) > 2
    assert line[4] == "True"
    # reload off: every stream detected as the factory model alone would.
    fm = Model(factory)
    assert per == {i: core.Detector(fm).run(s).detections for i, s in enumerate(streams * 2)}
    # Next start: the adapted model detects, no second adaptation.
    assert "AGAIN True" in text2
    assert per2 == {0: core.Detector(Model(adapted)).run(streams[0]).detections}


# A FAT-like file system: rename cannot replace an existing file (es_adapt.save then removes
# the old adapted model first). The board prints each step and pauses, so the test can cut
# the power (SIGKILL) right after it.
FAT_SAVE = """
import es_adapt, os, time
class FatOs:
    def __getattr__(self, name):
        return getattr(os, name)
    def rename(self, a, b):
        try:
            os.stat(b)
        except OSError:
            os.rename(a, b)
            print('STEP renamed'); time.sleep(0.3)
            return
        raise OSError(17)  # EEXIST, as FAT's rename
    def remove(self, p):
        os.remove(p)
        print('STEP remove'); time.sleep(0.3)
es_adapt.os = FatOs()
blob = bytearray(open('{src}', 'rb').read())
es_adapt.save(blob, chunk=256)
print('STEP saved')
"""


@pytest.mark.parametrize("cut_after", ["remove", "renamed", None])
def test_killed_write_on_a_fat_like_file_system_leaves_a_valid_model(flash, factory, cut_after):
    """FAT cannot rename over a file: the old adapted model is removed, then the new one
    renamed into place. Cut between the two, the board boots the factory model; after,
    the new adapted model; never a partial one."""
    d, mp, _ = flash
    old = adapt.Trainer(Model(factory), lr=0.0).write()
    t = adapt.Trainer(Model(factory), lr=0.01)
    t.train(np.zeros((2, t.emb_bytes), np.int8), np.array([1, 0], np.uint8), 4)
    new = t.write()
    for p in ("adapted.bin.tmp",):
        if (d / p).exists():
            (d / p).unlink()
    (d / "adapted.bin").write_bytes(old)
    (d / "new.bin").write_bytes(new)
    proc = subprocess.Popen([mp, "-c", FAT_SAVE.format(src="new.bin")], cwd=d,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    steps = []
    for line in proc.stdout:
        if line.startswith("STEP "):
            steps.append(line.split()[1])
            if steps[-1] == cut_after:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert steps and steps == ["remove", "renamed", "saved"][: len(steps)]
    out = _mpy(flash, "import es_adapt\nm, p = es_adapt.load_model()\nprint(p)")
    assert out.returncode == 0, out.stderr
    path = out.stdout.split()[0]
    want = {"remove": ("model.bin", factory), "renamed": ("adapted.bin", new),
            None: ("adapted.bin", new)}[cut_after]  # fmt: skip
    assert path == want[0] and (d / path).read_bytes() == want[1]
    Model((d / path).read_bytes())
    (d / "adapted.bin").unlink(missing_ok=True)
    (d / "adapted.bin.tmp").unlink(missing_ok=True)
