"""`earshot deploy` writes the factory model power-safely, and the boot code survives
whatever a power cut leaves: the board always boots with a whole model, or says it has none.

A power cut is a SIGKILL of the interpreter at a chosen point (tests/mpy/fault_boot.py: a
write that stops at byte N of model.bin.tmp, or a rename/remove of the commit program not
done). The fast tests run the board program (earshot.board.install) and main.py under the
unix port in a flash folder; the slow ones cut a real mpremote deploy on the virtual board.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib

import pytest

from earshot.board import deploy, install
from earshot.board.telemetry import END, HELLO, TEXT, Decoder
from earshot.board.vboard import VirtualBoard, micropython_executable
from earshot.model import Model, blob as blobfmt
from earshot.paths import FIRMWARE, MODELS, ROOT

FAULT_BOOT = ROOT / "tests" / "mpy" / "fault_boot.py"
OLD = (MODELS / "alexa" / "model.bin").read_bytes()
NEW = (MODELS / "hey_earshot" / "model.bin").read_bytes()
BAK = blobfmt.random_model(seed=5, cutoff=0.5, window=2, refractory=3)
CUTOFF = {OLD: Model(OLD).info["cutoff"], NEW: Model(NEW).info["cutoff"],
          BAK: Model(BAK).info["cutoff"]}  # fmt: skip
#: Boots on 1 s of silence from a file, so main.py's detector loop starts and ends.
CONFIG = {"autostart": True, "source": "file", "file": {"path": "quiet.raw", "realtime": False}}

pytestmark = pytest.mark.skipif(
    not deploy.mpy_path("x64").is_file(), reason="build/x64/_earshot.mpy absent (make build)"
)


def test_the_names_agree_with_the_boot_code():
    import ast

    tree = ast.parse((FIRMWARE / "modules" / "es_loop.py").read_text())
    consts = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets
              if isinstance(t, ast.Name) and t.id.endswith("_SUFFIX")}  # fmt: skip
    assert install.TEMP == install.FACTORY + consts["TEMP_SUFFIX"]
    assert install.BACKUP == install.FACTORY + consts["BACKUP_SUFFIX"]
    assert len({CUTOFF[OLD], CUTOFF[NEW], CUTOFF[BAK]}) == 3  # HELLO tells them apart


def _flash(d, model=None, bak=None, tmp=None):
    """A board flash folder in ``d``: modules, x64 natmod, config, and the model files."""
    d.mkdir(exist_ok=True)
    for p in deploy.module_files():
        (d / p[1]).write_bytes(p[0].read_bytes())
    (d / "_earshot.mpy").write_bytes(deploy.mpy_path("x64").read_bytes())
    (d / "earshot.json").write_text(json.dumps(CONFIG))
    (d / "quiet.raw").write_bytes(bytes(32000))
    for name, data in ((install.FACTORY, model), (install.BACKUP, bak), (install.TEMP, tmp)):
        if (d / name).exists():
            (d / name).unlink()
        if data is not None:
            (d / name).write_bytes(data)
    return d


def booted(output: bytes):
    """What a boot (main.py) did: ("hello", cutoff) when the detector ran to the END of its
    stream, or ("text", message) when it said something instead."""
    dec = Decoder()
    frames = dec.feed(output)
    kinds = [f.kind for f in frames]
    if HELLO in kinds and END in kinds:
        return "hello", next(f for f in frames if f.kind == HELLO)["cutoff"]
    texts = [f["text"] for f in frames if f.kind == TEXT]
    return "text", " ".join(texts) + " | " + dec.take_text()


def _run_mp(d, code, cut=False, timeout=60):
    """Run ``code`` with the unix port in flash folder ``d`` (binary output). With ``cut``:
    tests/mpy/fault_boot.py runs first, and the process is SIGKILLed when the fault fires."""
    if cut:
        code = FAULT_BOOT.read_text() + "\n" + code
    proc = subprocess.Popen([micropython_executable(), "-X", "heapsize=8M", "-c", code], cwd=d,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    if cut:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not (d / "fault.hit").exists():
            assert time.monotonic() < deadline, "the fault never fired"
            time.sleep(0.01)
        if (d / "fault.hit").exists():
            proc.send_signal(signal.SIGKILL)
            (d / "fault.hit").unlink()
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _boot(d):
    """main.py as the board runs it at power-up."""
    rc, out = _run_mp(d, "exec(open('main.py').read())")
    assert rc == 0, out  # main.py returns to the REPL, whatever it found
    return booted(out)


# -- the board program, cut before each of its renames and removes --------------------------
# (state before the deploy, kill before op K) -> model the board boots. K counts the commit
# program's os.rename/os.remove calls; None: not cut.
@pytest.mark.parametrize("state, op, boots", [
    ("old+bak", 1, OLD), ("old+bak", 2, OLD), ("old+bak", 3, OLD), ("old+bak", None, NEW),
    ("damaged+bak", 1, BAK), ("damaged+bak", 2, BAK), ("damaged+bak", None, NEW),
    ("empty", None, NEW),
])  # fmt: skip
def test_a_cut_commit_always_leaves_a_model_the_board_boots(tmp_path, state, op, boots):
    model = {"old+bak": OLD, "damaged+bak": OLD[:4096], "empty": None}[state]
    d = _flash(tmp_path / "flash", model=model, bak=None if state == "empty" else BAK, tmp=NEW)
    if op is not None:
        (d / "fault.json").write_text(json.dumps({"op": op}))
    rc, out = _run_mp(d, install.commit_code(NEW), cut=op is not None)
    assert (rc == -signal.SIGKILL) == (op is not None), out
    assert _boot(d) == ("hello", CUTOFF[boots])
    if op is None:
        assert install.result(out) == {"old+bak": "ok backup", "damaged+bak": "ok damaged",
                                       "empty": "ok none"}[state]  # fmt: skip
        assert (d / install.FACTORY).read_bytes() == NEW and not (d / install.TEMP).exists()
        bak = {"old+bak": OLD, "damaged+bak": BAK, "empty": None}[state]
        assert (d / install.BACKUP).exists() == (bak is not None)
        assert bak is None or (d / install.BACKUP).read_bytes() == bak


def test_a_first_deploy_cut_before_its_rename_says_there_is_no_model(tmp_path):
    """The one state with no model: nothing was ever installed. The board says so on the
    REPL and in a TEXT frame, and main.py returns (the REPL stays for a new deploy)."""
    d = _flash(tmp_path / "flash", tmp=NEW)
    (d / "fault.json").write_text(json.dumps({"op": 1}))
    rc, _ = _run_mp(d, install.commit_code(NEW), cut=True)
    assert rc == -signal.SIGKILL
    kind, said = _boot(d)
    assert kind == "text"
    msg = (
        "earshot: not listening: no valid model (adapted.bin: missing; model.bin: missing; "
        "model.bin.bak: missing); deploy a model (earshot deploy)"
    )
    assert said.count(msg) == 2  # in a TEXT frame and on the REPL
    # A damaged model and backup are named with the parser's reason.
    _flash(d, model=NEW[:100], bak=NEW[:-1])
    kind, said = _boot(d)
    assert kind == "text" and "model.bin: blob truncated" in said, said


@pytest.mark.parametrize("cut_at", [0, 100, 4096, len(NEW) - 1])
def test_a_partial_temp_file_is_refused_and_changes_nothing(tmp_path, cut_at):
    """Power lost during the copy: the temp file holds `cut_at` bytes. The commit program
    (which a next deploy would run after copying again) refuses a temp file that is not
    what was sent, and the board boots its old model."""
    d = _flash(tmp_path / "flash", model=OLD, bak=BAK, tmp=NEW[:cut_at])
    rc, out = _run_mp(d, install.commit_code(NEW))
    assert rc != 0 and b"model.bin.tmp on the board is not what was sent" in out
    assert (d / install.FACTORY).read_bytes() == OLD and (d / install.BACKUP).read_bytes() == BAK
    assert _boot(d) == ("hello", CUTOFF[OLD])
    # A whole but different blob left by an older deploy is refused too (CRC-32).
    _flash(d, model=OLD, tmp=BAK)
    rc, out = _run_mp(d, install.commit_code(NEW))
    assert rc != 0 and f"CRC-32 {zlib.crc32(NEW)}".encode() in out


def test_a_config_the_board_cannot_read_is_said_not_raised(tmp_path):
    d = _flash(tmp_path / "flash", model=OLD)
    (d / "earshot.json").write_text('{"autostart": true, "bogus": 1}')
    kind, said = _boot(d)
    assert kind == "text" and "earshot: not started: config: unknown key 'bogus'" in said
    (d / "earshot.json").write_text('{"autostart": tr')  # torn by a power cut
    assert "earshot.json: not valid JSON" in _boot(d)[1]


# -- a real deploy on the virtual board, cut ------------------------------------------------
def _cut_deploy(board, spec, model):
    """deploy.sync(model) with the power cut ``spec`` (fault_boot.py): the interpreter is
    SIGKILLed when the fault fires, and the mpremote talking to it too (it would wait 10 s
    for an answer). Returns the DeployError the deploy raised."""
    flash = board.flash_dir
    (flash / "fault.json").write_text(json.dumps(spec))
    procs = []

    def mpremote(port, *args, timeout=60):
        cmd = [sys.executable, "-m", "mpremote", "connect", port, *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        out, err = p.communicate(timeout=timeout)
        if p.returncode:
            raise deploy.DeployError(f"mpremote failed ({p.returncode}): {(out + err).decode()}")
        return out

    done = threading.Event()
    killed = []

    def cut():
        while not done.is_set():
            if (flash / "fault.hit").exists():
                killed.append(board.pid)
                os.kill(board.pid, signal.SIGKILL)
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                return
            time.sleep(0.005)

    th = threading.Thread(target=cut, daemon=True)
    th.start()
    real = deploy.mpremote
    deploy.mpremote = mpremote
    try:
        with pytest.raises(deploy.DeployError) as err:
            deploy.sync(board.port, model=model)
    finally:
        deploy.mpremote = real
        done.set()
        th.join()
    assert (flash / "fault.hit").exists(), f"the fault never fired: {err.value}"
    (flash / "fault.hit").unlink()
    # The board reboots (a new interpreter; the supervisor may pause between quick restarts):
    # talk to it once it is there.
    deadline = time.monotonic() + 30
    while board.pid in (None, *killed):
        assert time.monotonic() < deadline, "the board did not reboot"
        time.sleep(0.05)
    return err.value


def _board_boot(board):
    """Run main.py on the (rebooted) virtual board, as at power-up; what it did."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return booted(deploy.run_on_board(board.port, "exec(open('main.py').read())"))
        except deploy.DeployError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def vboard(tmp_path):
    with VirtualBoard(_flash(tmp_path / "flash")) as board:
        yield board


@pytest.mark.slow
def test_a_deploy_cut_anywhere_on_the_virtual_board_boots_a_model(vboard):
    """deploy of NEW over OLD (backup BAK), cut while mpremote writes model.bin.tmp (at 0 B,
    4 KB, one byte short, all but the close) and before each rename/remove of the commit;
    after each cut the board reboots, and main.py starts the detector on a whole model."""
    board = vboard
    flash = board.flash_dir
    (flash / "boot.py").write_text(FAULT_BOOT.read_text())
    new = MODELS / "hey_earshot"
    cuts = [({"file": install.TEMP, "at": n}, OLD) for n in (0, 4096, len(NEW) - 1, len(NEW))]
    cuts += [({"op": 1}, OLD), ({"op": 2}, OLD), ({"op": 3}, OLD)]
    for spec, boots in cuts:
        _flash(flash, model=OLD, bak=BAK)
        _cut_deploy(board, spec, new)
        assert _board_boot(board) == ("hello", CUTOFF[boots]), spec
    # Not cut: the new model boots, the old one is the backup.
    _flash(flash, model=OLD, bak=BAK)
    report = deploy.sync(board.port, model=new)
    assert report.copied == [install.FACTORY] and report.model == "ok backup"
    assert _board_boot(board) == ("hello", CUTOFF[NEW])
    assert (flash / install.BACKUP).read_bytes() == OLD


@pytest.mark.slow
def test_a_first_deploy_cut_on_the_virtual_board_says_so_then_a_deploy_fixes_it(vboard):
    board = vboard
    flash = board.flash_dir
    (flash / "boot.py").write_text(FAULT_BOOT.read_text())
    _flash(flash)
    _cut_deploy(board, {"file": install.TEMP, "at": 4096}, MODELS / "alexa")
    kind, said = _board_boot(board)
    assert kind == "text" and "no valid model" in said
    report = deploy.sync(board.port, model=MODELS / "alexa")
    assert report.model == "ok none"
    assert _board_boot(board) == ("hello", CUTOFF[OLD])


def test_a_new_factory_model_retires_the_model_adapted_from_the_old_one(tmp_path):
    """adapted.bin was adapted from the old factory model: after a different model is
    installed it is removed (the board boots the model just deployed); re-installing the
    same factory model keeps it."""
    d = _flash(tmp_path / "flash", model=OLD, tmp=OLD)
    (d / "adapted.bin").write_bytes(BAK)  # stands in for an adaptation of OLD
    rc, out = _run_mp(d, install.commit_code(OLD))
    assert rc == 0 and install.result(out) == "ok backup"
    assert (d / "adapted.bin").read_bytes() == BAK
    (d / install.TEMP).write_bytes(NEW)
    (d / "adapted.bin.tmp").write_bytes(BAK[:100])
    rc, out = _run_mp(d, install.commit_code(NEW))
    assert rc == 0 and install.result(out) == "ok backup adapted-removed"
    assert not (d / "adapted.bin").exists() and not (d / "adapted.bin.tmp").exists()
    assert _boot(d) == ("hello", CUTOFF[NEW])
    (d / install.TEMP).write_bytes(OLD)
    (d / "mine.bin").write_bytes(BAK)  # a config's adapt.save_to
    rc, out = _run_mp(d, install.commit_code(OLD, adapted="mine.bin"))
    assert install.result(out) == "ok backup adapted-removed" and not (d / "mine.bin").exists()
    assert deploy._adapted_name({"adapt": {"save_to": "mine.bin"}}) == "mine.bin"
    assert deploy._adapted_name(None) == install.ADAPTED == "adapted.bin"
