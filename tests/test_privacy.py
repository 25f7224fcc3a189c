"""Privacy promises of the on-device code (docs/reliability.md, "Privacy"):

- The on-device modules (firmware/modules) execute nothing they receive: no eval, exec,
  compile, __import__ or importlib anywhere, and getattr/setattr only with literal names. (The
  MicroPython REPL on the same USB line is the board's, not Earshot's: see the docs.)
- Telemetry carries no audio and no features: the frame payloads are fixed integer structs
  (TEXT carries log lines), and a detector loop run on the unix port over random audio, with
  the VAD and adaptation on, writes none of that audio or of its log-mel features to the
  serial line.
"""

import ast
import subprocess

import numpy as np
import pytest
from earshot import core
from earshot.board import natmod
from earshot.board.telemetry import PAYLOADS, TEXT, Decoder
from earshot.board.vboard import micropython_executable
from earshot.paths import FIRMWARE, MODELS

MODULES = FIRMWARE / "modules"
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
FORBIDDEN_MODULES = {"importlib", "builtins"}


def code_execution(source: str, name: str) -> list[str]:
    """Places in ``source`` that could run code given as data: calls of FORBIDDEN_CALLS (by
    name or as an attribute), imports of FORBIDDEN_MODULES, getattr/setattr/delattr with a
    name that is not a string literal. Returns "name:line: what" strings."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            fn = node.func
            called = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
            if called in FORBIDDEN_CALLS:
                found.append(f"{where}: calls {called}")
            if called in ("getattr", "setattr", "delattr") and not (
                    len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                found.append(f"{where}: {called} with a computed name")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for n in names:
                if n.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{where}: imports {n}")
    return found


def test_on_device_modules_execute_nothing_they_receive():
    files = sorted(MODULES.glob("*.py"))
    assert len(files) >= 7
    found = [hit for p in files for hit in code_execution(p.read_text(), p.name)]
    assert found == []


@pytest.mark.parametrize(
    "src",
    ["x = eval(s)", "exec(code)", "f = compile(s, 'f', 'exec')", "m = __import__(name)",
     "import builtins\nbuiltins.exec(s)", "import importlib", "getattr(mod, cfg['fn'])()",
     "from importlib import import_module"],
)
def test_the_check_finds_code_execution(src):
    assert code_execution(src, "x.py")


def test_telemetry_payloads_are_fixed_integer_structs():
    for kind, (st, names) in PAYLOADS.items():
        assert kind != TEXT
        codes = st.format.lstrip("<")
        assert set(codes) <= set("BHI"), (kind, codes)  # unsigned integers only
        assert len(codes) == len(names) and st.size <= 32
    # The device's formats are the host's (es_telemetry.py FORMATS).
    tree = ast.parse((MODULES / "es_telemetry.py").read_text())
    formats = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                   and getattr(n.targets[0], "id", "") == "FORMATS")
    device = {k.id: v.value for k, v in zip(formats.keys, formats.values)}
    assert sorted(device.values()) == sorted(st.format for st, _ in PAYLOADS.values())


def _windows(data: bytes, width: int) -> set:
    return {data[i : i + width] for i in range(0, len(data) - width + 1, 2)}


def test_detector_loop_sends_no_audio_and_no_features(tmp_path):
    try:
        mp = micropython_executable()
    except Exception as exc:  # noqa: BLE001 - the board's own error names the fix
        pytest.fail(str(exc))
    mpy = natmod.build("x64")
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "_earshot.mpy").write_bytes(mpy.read_bytes())
    for p in MODULES.glob("*.py"):
        (flash / p.name).write_bytes(p.read_bytes())
    (flash / "model.bin").write_bytes((MODELS / "alexa" / "model.bin").read_bytes())
    rng = np.random.default_rng(7)
    env = np.repeat(rng.uniform(0.02, 1.0, 60), 1600)  # 6 s, loudness changing every 0.1 s
    x = (rng.standard_normal(len(env)) * env * 8000).clip(-32768, 32767).astype("<i2")
    (flash / "mic.raw").write_bytes(x.tobytes())
    cfg = {"adapt": {"enabled": True, "min_pos": 1, "min_neg": 1}, "vad": True,
           "stats_every": 10}
    proc = subprocess.run([mp, "-X", "heapsize=4M", "-c",
                           f"import es_loop\nes_loop.run_files(['mic.raw'], {cfg!r})\n"],
                          cwd=flash, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout
    dec = Decoder()
    frames = dec.feed(out)
    assert dec.corrupt == 0 and len(frames) >= 60  # HELLO, a STATS per 10 hops, END
    assert {f.kind for f in frames} <= set(PAYLOADS) | {TEXT}
    # No 8 bytes (4 samples) of the audio, at any sample offset, are on the line ...
    audio = x.tobytes()
    assert not _windows(audio, 8) & {out[i : i + 8] for i in range(len(out) - 7)}
    # ... nor 8 consecutive bins of any hop's log-mel features (what the model sees).
    feats = core.features(x).tobytes()
    rows = {feats[i : i + 8] for i in range(0, len(feats) - 7)}
    assert len(rows) > 1000 and not rows & {out[i : i + 8] for i in range(len(out) - 7)}
