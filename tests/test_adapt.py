"""On-device adaptation (firmware/core/es_adapt.c, firmware/modules/es_adapt.py).

- C core through ctypes: the non-streaming forward equals the streaming engine bit for bit;
  pruning with every channel kept rewrites the blob byte for byte; pruning a channel equals
  deleting it (numpy) with its mean folded into the consumer's bias; requantization without
  learning keeps the logits; training separates pseudo-labelled classes; slices respect
  their MAC budget; learning memory <= 10 KB; bad arguments raise naming the problem.
- MicroPython (unix port, x64 natmod): the board's pseudo-labelling + training writes the
  same blob as the host driver; persistence is atomic (a process killed mid-write leaves a
  valid model), a corrupt adapted model falls back to the factory model, restore() works.
- The virtual board: the device path over mpremote, and ``earshot adapt --rollback``.
"""

import json
import os
import signal
import subprocess
import sys
import zlib

import numpy as np
import pytest
from earshot import adapt, core
from earshot.model import blob
from earshot.board import deploy, natmod
from earshot.cli import main as cli_main
from earshot.model import Engine, Model
from earshot.paths import FIRMWARE, MODELS, ROOT
from earshot.board.telemetry import DETECT, HELLO, Decoder
from earshot.board.vboard import VirtualBoard, micropython_executable

FACTORY = MODELS / "alexa" / "model.bin"
MODULES = FIRMWARE / "modules"


@pytest.fixture(scope="module")
def factory():
    if FACTORY.is_file():
        return FACTORY.read_bytes()
    return blob.random_model(seed=3)


def _speechlike(seed: int, seconds: float = 3.0) -> np.ndarray:
    """Seeded int16 audio with a few loud syllable-like bursts (opens the VAD gate)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    x = rng.normal(0, 30, n)
    t = np.arange(n) / 16000
    for start in rng.uniform(0.3, seconds - 0.6, 4):
        m = (t >= start) & (t < start + 0.35)
        f0 = rng.uniform(120, 300)
        x[m] += 4000 * np.sin(2 * np.pi * f0 * t[m]) * np.hanning(m.sum())
        x[m] += 1500 * np.sin(2 * np.pi * 3.1 * f0 * t[m]) * np.hanning(m.sum())
    return np.clip(x, -32768, 32767).astype(np.int16)


def _windows(model, feats):
    """(hops, logits) of the streaming engine and the windows that produced them."""
    hops, logits = Engine(model).run(feats)
    frames = model.info["input_frames"]
    return hops, logits, [feats[h + 1 - frames : h + 1] for h in hops]


@pytest.fixture(scope="module")
def feats():
    return core.features(np.concatenate([_speechlike(s) for s in range(3)]))


# ---------------------------------------------------------------------------------------
# C core


def test_forward_equals_streaming_engine_and_counts_windows(factory, feats):
    m = Model(factory)
    hops, logits, wins = _windows(m, feats)
    assert len(hops) > 20
    fwd, stats = adapt.Forward(m), adapt.Stats(m)
    for w, logit in zip(wins, logits):
        got, emb = fwd(w, stats)
        assert got == logit
        assert emb.shape == (adapt.embedding_size(m),)
    assert stats.windows == len(wins)
    assert sum(stats.groups) == stats.channels


def test_prune_keep_all_rewrites_the_same_blob(factory, feats):
    m = Model(factory)
    stats = adapt.Stats(m)
    fwd = adapt.Forward(m)
    for w in _windows(m, feats)[2][:5]:
        fwd(w, stats)
    keep = np.ones(stats.channels, np.uint8)
    assert adapt.prune(m, stats, keep, bias_fix=True) == factory


def test_prune_equals_numpy_channel_deletion(factory, feats):
    m = Model(factory)
    stats, fwd = adapt.Stats(m), adapt.Forward(m)
    for w in _windows(m, feats)[2]:
        fwd(w, stats)
    keep = adapt.select(stats, adapt.importance(m, stats), 0.25)
    for g, n in enumerate(stats.groups):  # every group lost round(n / 4) channels
        off = sum(stats.groups[:g])
        assert keep[off : off + n].sum() == n - round(n * 0.25)
    layers = blob.describe(factory)["layers"]
    # Expected: delete the channels in numpy, without bias correction.
    got = blob.describe(adapt.prune(m, stats, keep, bias_fix=False))["layers"]
    groups, off, cur = [], 0, None
    for i, layer in enumerate(layers):
        if layer["type"] == "conv" and i + 1 < len(layers):
            cur = keep[off : off + layer["out_ch"]].astype(bool)
            off += layer["out_ch"]
        elif layer["type"] != "depthwise":
            cur = None
        groups.append(cur)
    for i, (a, b) in enumerate(zip(layers, got)):
        out_mask = groups[i]
        in_mask = groups[i - 1] if i else None
        w = np.asarray(a["weights"], np.int8)
        if a["type"] == "depthwise":
            w = w.reshape(a["kernel"], a["in_ch"])[:, in_mask] if in_mask is not None else w
        else:
            w = w.reshape(a["out_ch"], a["kernel"], a["in_ch"])
            if out_mask is not None:
                w = w[out_mask]
            if in_mask is not None:
                w = w[:, :, in_mask]
        np.testing.assert_array_equal(np.asarray(b["weights"]).reshape(-1), w.reshape(-1))
        sel = out_mask if out_mask is not None else slice(None)
        for key in ("multiplier", "shift", "bias"):
            np.testing.assert_array_equal(b[key], np.asarray(a[key])[sel])
    # With the correction, the consumers' biases move by sum(w * mean) of removed channels.
    fixed = blob.describe(adapt.prune(m, stats, keep, bias_fix=True))["layers"]
    moved = [
        i for i, (a, b) in enumerate(zip(got, fixed)) if not np.array_equal(a["bias"], b["bias"])
    ]
    assert moved and all(layers[i]["type"] in ("conv", "fc") and i > 0 for i in moved)
    small = Model(adapt.prune(m, stats, keep))
    assert small.info["macs_per_output"] < m.info["macs_per_output"]


def test_requantization_without_learning_keeps_logits(factory, feats):
    m = Model(factory)
    t = adapt.Trainer(m, lr=0.0)
    out = Model(t.write())
    _, a, _ = _windows(m, feats)
    _, b, _ = _windows(out, feats)
    assert np.abs(a.astype(int) - b).max() <= 1
    assert len(t.write()) == len(factory)


def test_requantization_keeps_the_bias_of_a_channel_with_no_weights(feats):
    """A trained output channel whose weights are all 0 but whose bias is large (what network
    slimming leaves: a switched-off channel) is rewritten with a larger scale, not refused
    ("bias beyond +-2^30"), and the rewritten model computes the same logits."""
    layers = blob.random_layers(seed=5)
    pw = layers[-2]  # the trained pointwise layer
    assert pw["type"] == "conv" and pw["kernel"] == 1
    w = np.asarray(pw["weights"]).reshape(pw["out_ch"], -1).copy()
    w[0] = 0
    gain = float(pw["multiplier"][0]) * 2.0 ** (int(pw["shift"][0]) - 31)
    bias = np.asarray(pw["bias"]).copy()
    bias[0] = round(200 / gain)  # 200 output quanta: 127 * bias(Q16) / max|W|(1) > 2^30
    pw.update(weights=w.astype(np.int8), bias=bias.astype(np.int32))
    m = Model(blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9, window=3,
                        refractory=10))
    out = Model(adapt.Trainer(m, lr=0.0).write())
    _, a, _ = _windows(m, feats)
    _, b, _ = _windows(out, feats)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_rewriting_keeps_biases_at_the_format_bound(feats):
    """A layer the adaptation does not train may carry a bias of exactly 2^30, the largest the
    parser accepts (trained models had it on channels whose weights went to 0): requantizing
    the head and pruning with bias correction both write a valid blob, with the same logits
    when nothing is pruned."""
    layers = blob.random_layers(seed=6)
    pw1 = layers[2]  # block1's pointwise layer: neither trained nor the last
    assert pw1["type"] == "conv" and pw1["kernel"] == 1
    w = np.asarray(pw1["weights"]).reshape(pw1["out_ch"], -1).copy()
    w[0] = 0
    bias = np.asarray(pw1["bias"]).copy()
    bias[0] = 1 << 30
    pw1.update(weights=w.astype(np.int8), bias=bias.astype(np.int32))
    src = blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9, window=3,
                    refractory=10)
    m = Model(src)
    out = Model(adapt.Trainer(m, lr=0.0).write())
    assert np.abs(_windows(m, feats)[1].astype(int) - _windows(out, feats)[1]).max() <= 1
    stats, fwd = adapt.Stats(m), adapt.Forward(m)
    for win in _windows(m, feats)[2]:
        fwd(win, stats)
    keep = adapt.select(stats, adapt.importance(m, stats), 0.25)
    pruned = blob.describe(adapt.prune(m, stats, keep, bias_fix=True))["layers"]
    assert all(abs(int(b)) <= 1 << 30 for ly in pruned if ly["bias"] is not None
               for b in ly["bias"])


def test_training_separates_pseudo_labels_and_respects_slices(factory, feats):
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    rng = np.random.default_rng(0)
    labels = (rng.random(len(embs)) < 0.3).astype(np.uint8)  # arbitrary: must be learnable
    labels[0], labels[1] = 1, 0
    t = adapt.Trainer(m, lr=0.004, pos_weight=2)
    before = np.array([t.logit(e) for e in embs], float)
    gap0 = before[labels == 1].mean() - before[labels == 0].mean()
    done = t.train_slice(embs, labels, 3 * t.sample_macs + t.sample_macs // 2)
    assert done == 3  # whole samples only, never above the budget
    assert t.train_slice(embs, labels, t.sample_macs - 1) == 0
    t.train(embs, labels, 30 * len(embs))
    after = np.array([t.logit(e) for e in embs], float)
    gap1 = after[labels == 1].mean() - after[labels == 0].mean()
    assert gap1 > gap0 + 5
    # The written blob computes (nearly) the trainer's logits.
    out = Model(t.write())
    fwd2 = adapt.Forward(out)
    wins = _windows(m, feats)[2]
    diffs = [abs(fwd2(w)[0] - t.logit(e)) for w, e in zip(wins, embs)]
    assert np.mean(diffs) < 2


def test_acceptance_check_counts_rises_and_fires(factory, feats):
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    t = adapt.Trainer(m, lr=0.001)
    logits = np.array([t.logit(e) for e in embs], np.int64)
    n = len(embs)
    labels = np.full(n, adapt.NEGATIVE, np.uint8)
    labels[::2] = adapt.CHECK  # only these count
    chk = labels == adapt.CHECK
    same = t.check(embs, labels, logits.astype(np.int8))
    fires = sum(m.probability(int(x)) >= m.info["cutoff"] for x in logits[chk])
    assert same == {"n": int(chk.sum()), "rise": 0, "above": 0, "fires": int(fires)}
    # Targets 3 below the logits: every held-back negative rose by 3 -> refused.
    lower = np.clip(logits - 3, -128, 127)
    got = t.check(embs, labels, lower.astype(np.int8))
    assert got["rise"] == int((logits - lower)[chk].sum()) > 0
    assert got["above"] == int(((logits - lower)[chk] > 0).sum())
    assert not adapt.accepted(got)
    higher = np.clip(logits + 3, -128, 127)
    got = t.check(embs, labels, higher.astype(np.int8))
    assert got["rise"] < 0 and got["above"] == 0
    assert adapt.accepted(got) == (got["fires"] == 0)
    assert adapt.accepted({"n": 0, "rise": 0, "above": 0, "fires": 0})
    # Training never steps on held-back negatives.
    only_check = np.full(n, adapt.CHECK, np.uint8)
    t2 = adapt.Trainer(m, lr=0.01)
    t2.train(embs, only_check, n)
    assert t2.write() == adapt.Trainer(m, lr=0.01).write()


def test_anchor_holds_the_head_near_its_factory_weights(factory, feats):
    """L2-SP (anchor_shift): the same training moves the logits less the stronger the pull,
    costs one operation per parameter more per sample, and a 0..30 shift is checked."""
    m = Model(factory)
    fwd = adapt.Forward(m)
    embs = np.array([fwd(w)[1] for w in _windows(m, feats)[2]])
    labels = (np.random.default_rng(0).random(len(embs)) < 0.3).astype(np.uint8)
    labels[0], labels[1] = 1, 0
    start = np.array([adapt.Trainer(m, lr=0.004).logit(e) for e in embs], float)
    moved, macs = {}, {}
    for shift in (0, 8, 2):
        t = adapt.Trainer(m, lr=0.004, pos_weight=2, anchor_shift=shift)
        t.train(embs, labels, 30 * len(embs))
        moved[shift] = np.abs(np.array([t.logit(e) for e in embs], float) - start).mean()
        macs[shift] = t.sample_macs
    assert moved[0] > moved[8] > moved[2]
    assert moved[2] < 0.5 * moved[0]
    head = blob.describe(factory)["layers"][-2]  # the trainable pointwise layer
    n_params = head["in_ch"] * head["out_ch"] + 2 * head["out_ch"] + 1  # w, b, FC w, FC b
    assert macs[8] == macs[2] == macs[0] + n_params
    with pytest.raises(ValueError, match="anchor_shift"):
        adapt.Trainer(m, lr=0.004, anchor_shift=31)


def test_learning_memory_within_10_kb(factory):
    m = Model(factory)
    assert adapt.learning_memory_bytes(m) <= 10 * 1024
    pl = adapt.PseudoLabeler(m)
    assert pl.buffer_bytes <= adapt.DEFAULTS["buffer_bytes"]


def test_bad_arguments_name_the_problem(factory):
    m = Model(factory)
    with pytest.raises(ValueError, match="learning rate"):
        adapt.Trainer(m, lr=2.0)
    with pytest.raises(ValueError, match="pos_weight"):
        adapt.Trainer(m, lr=0.01, pos_weight=0)
    stats = adapt.Stats(m)
    with pytest.raises(ValueError, match="statistics"):
        adapt.importance(m, stats, adapt.DATA_AWARE)
    with pytest.raises(ValueError, match="prune ratios"):
        adapt.select(stats, np.zeros(stats.channels, np.uint32), 1.5)
    keep = np.ones(stats.channels, np.uint8)
    keep[: stats.groups[0]] = 0
    with pytest.raises(ValueError, match="lose all its channels"):
        adapt.prune(m, stats, keep, bias_fix=False)
    with pytest.raises(ValueError, match="at least one window"):
        adapt.prune(m, stats, np.ones(stats.channels, np.uint8), bias_fix=True)
    with pytest.raises(ValueError, match="window must be int8"):
        adapt.Forward(m)(np.zeros((3, 40), np.int8))
    # A model without a pointwise + classifier head cannot be adapted.
    with pytest.raises(ValueError, match="cannot be adapted"):
        adapt.embedding_size(
            Model(
                blob.random_model(
                    seed=0, cfg={"first": {"filters": 8, "kernel": 3, "stride": 1}, "blocks": []}
                )
            )
        )


# ---------------------------------------------------------------------------------------
# MicroPython (unix port)


@pytest.fixture(scope="module")
def flash(tmp_path_factory, factory):
    """A board flash folder: modules, x64 natmod, factory model, three raw streams."""
    try:
        mp = micropython_executable()
    except Exception as exc:  # noqa: BLE001 - the board's own error names the fix
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    d = tmp_path_factory.mktemp("flash")
    natmod.build("x64", out=d, clean=True)
    for p in MODULES.glob("*.py"):
        (d / p.name).write_bytes(p.read_bytes())
    (d / "model.bin").write_bytes(factory)
    streams = [_speechlike(s, 4.0) for s in range(10, 16)]
    for i, s in enumerate(streams):
        (d / f"s{i}.raw").write_bytes(s.astype("<i2").tobytes())
    return d, mp, streams


def _mpy(flash, code, **kw):
    d, mp, _ = flash
    return subprocess.run(
        [mp, "-X", "heapsize=8M", "-c", code],
        check=False,
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def _cfg_for(factory_blob, streams):
    """A configuration whose cutoffs give both classes on these synthetic streams (their
    probabilities' upper and lower quartiles), so the test does not depend on the model."""
    m = Model(factory_blob)
    ps = []
    for s in streams:
        r = core.Detector(m).run(s)
        want = core.FLAG_OUTPUT | core.FLAG_VAD
        ps += list(r.probs[(r.flags & want) == want])
    ps = np.array(ps)
    hi, lo = int(np.percentile(ps, 80)), int(np.percentile(ps, 30))
    return {
        "pos_cutoff": max(hi, lo + 1),
        "neg_cutoff": lo,
        "neg_every": 2,
        "min_pos": 1,
        "min_neg": 1,
        "epochs": 3,
        "check_every": 0,  # compared on its own in test_board_acceptance_check_equals_host
    }


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
        det.run(v, probs, flags); ad.observe(v, probs, flags)
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


def test_cli_adapt_host_and_errors(tmp_path, capsys):
    assert cli_main(["adapt"]) == 2
    assert "give FILEs" in capsys.readouterr().err
    assert cli_main(["adapt", "--rollback"]) == 2
    assert "--port" in capsys.readouterr().err
    wav = tmp_path / "a.wav"
    import soundfile

    soundfile.write(wav, _speechlike(5), 16000, subtype="PCM_16")
    out = tmp_path / "adapted.bin"
    assert cli_main(["adapt", str(wav), "--out", str(out), "--prune", "2"]) == 2
    assert cli_main(["adapt", str(wav), "--out", str(out)]) == 0
    res = __import__("json").loads(capsys.readouterr().out)
    assert res["blob_bytes"] == len(out.read_bytes())
    Model(out.read_bytes())


def _bench_adapt(*args, **kw):
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "adapt.py"), *args],
        check=False, capture_output=True, text=True, timeout=600, **kw,
    )


@pytest.mark.slow
def test_bench_sweep_grid_is_checked_and_used(data):
    # A grid without one list per channel group is refused, naming the problem.
    bad = _bench_adapt("--sweep", "--sweep-grid", "[[0.25]]")
    assert bad.returncode != 0
    assert "one non-empty list of ratios per channel group" in bad.stderr
    # A one-candidate grid that meets the size targets is the sweep's answer.
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--json", "--sweep-users", "1",
        "--sweep-grid", "[[0.25], [0], [0.5], [0.75], [0.75]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    assert res["best"]["ratios"] == [0.25, 0, 0.5, 0.75, 0.75]
    assert res["profile"] == [0.5, 0.0, 1.0, 1.5, 1.5]
    assert len(res["candidates"]) == 1


@pytest.mark.slow
def test_bench_sweep_holdout_scores_an_utterance_left_out_of_adaptation(data):
    # Holding out needs at least one utterance left to adapt on.
    bad = _bench_adapt("--sweep", "--sweep-holdout", "--k", "1")
    assert bad.returncode != 0 and "--sweep-holdout needs --k >= 2" in bad.stderr
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--sweep-holdout", "--json", "--sweep-users", "1",
        "--sweep-grid", "[[0.25], [0.25], [0.75], [0.5], [0.5]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    (row,) = json.loads(ok.stdout)["candidates"]
    # One held-out utterance for one user: at most one miss, a peak probability of 0..255.
    assert row["held_misses"] in (0, 1) and 0 <= row["held_peak"] <= 255
    # Detected by the student means a window mean at the cutoff, so a peak at least that.
    if row["held_peak"] and not row["held_misses"]:
        assert row["held_peak"] >= 0.9 * 255


@pytest.mark.slow
def test_bench_counts_the_utterances_it_tests_and_names_undecodable_ones(data):
    # The users' blocks hold undecodable files (the shared data's damaged FLACs): the bench
    # names them, tests each user on what is left, and counts only what it tested.
    from earshot.train import dataset

    k, n_users = 4, 4
    blocks = [dataset.dev_positives(data)[i : i + 10] for i in range(0, 10 * n_users, 10)]
    loaded = [dataset.load_clips(b) for b in blocks]
    bad = [p.name for _, failed in loaded for p, _ in failed]
    assert bad, "the first users' blocks have no undecodable file: pick other users"
    env = dict(os.environ, EARSHOT_DATA=str(data))
    res = _bench_adapt(
        "--json", "--users", str(n_users), "--ratios", "0.5", "--k", str(k), env=env
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["skipped_files"] == bad
    assert all(name in res.stderr for name in bad)
    tested = [len(clips) - k for clips, _ in loaded]
    assert [u["test_utterances"] for u in out["per_user"]] == tested
    assert out["test_utterances"] == sum(tested) < 6 * n_users
    assert out["users"] == n_users and out["users_left_out"] == []
    # False accepts on the training's validation negatives too: one factory count shared by
    # every user, one count per adapted and pruned model, averaged per hour of that stream.
    assert out["validation_negative_clips"] > 100 and 0.1 < out["validation_hours"] < 2
    assert len({u["fa_val_before"] for u in out["per_user"]}) == 1
    for key in ("fa_val_before", "fa_val_after", "fa_val_pruned"):
        mean = sum(u[key] for u in out["per_user"]) / n_users
        per_hour = mean / out["validation_hours"]
        got = out["fa_per_hour_" + key.removeprefix("fa_")]
        assert abs(got - per_hour) < 1e-3 * max(1.0, per_hour), key


def test_bench_adapt_cfg_overrides_are_checked():
    bad = _bench_adapt("--adapt-cfg", '{"distill_phase": 1}')
    assert bad.returncode != 0
    assert "unknown keys ['distill_phase']" in bad.stderr


@pytest.mark.slow
def test_bench_loo_holds_out_each_adaptation_utterance_in_turn(data):
    from earshot.train import dataset

    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt("--loo", "--json", "--users", "1", "--k", "2", env=env)
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    files = dataset.dev_positives(data)[:10]
    _, bad = dataset.load_clips(files)
    readable = [p.name for p in files if p not in {b for b, _ in bad}]
    assert [r["held_out"] for r in res["rows"]] == readable[:2]
    assert res["held_out"] == 2 and res["teacher_hits"] == sum(r["teacher"] for r in res["rows"])
    for r in res["rows"]:
        assert 0 <= r["student_peak"] <= 255
        if r["student"]:  # a detection needs a window mean at the cutoff
            assert r["student_peak"] >= 0.9 * 255
    assert res["student_peak_sum"] == sum(r["student_peak"] for r in res["rows"])


@pytest.mark.slow
def test_bench_sweep_loo_ranks_candidates_on_held_out_folds(data):
    env = dict(os.environ, EARSHOT_DATA=str(data))
    ok = _bench_adapt(
        "--sweep", "--sweep-loo", "--jobs", "2", "--json", "--sweep-users", "1", "--k", "2",
        "--sweep-grid", "[[0.25], [0.25], [0.5, 0.75], [0.5, 0.75], [0.5]]", env=env,
    )
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    rows = res["candidates"]
    assert rows and all(r["held_out"] == 2 for r in rows)
    assert all(0 <= r["held_misses"] <= 2 and 0 <= r["held_peak"] <= 2 * 255 for r in rows)
    rank = [(r["held_misses"], -r["held_peak"], r["blob_bytes"]) for r in rows]
    assert res["best"] == rows[rank.index(min(rank))]
    assert res["profile"] == [round(x / 0.5, 4) for x in res["best"]["ratios"]]
