"""Fuzzing (bench/fuzz.py): the harnesses, a short run of every target, and the driver.

- The C harnesses (bench/fuzz_model.c, bench/fuzz_adapt.c) replayed by GCC under ASan + UBSan
  (bench/fuzz_main.c in place of libFuzzer) on the seeds: the committed models and two
  synthetic ones, through the parser, engine, detector and adaptation, each buffer handed over
  at an odd address. This is the regression test of the first finding: handles holding
  pointers were aligned to 4 bytes only, undefined behaviour on 64-bit hosts (es_internal.h).
- A short run of every target (clang's libFuzzer, atheris) finds nothing.
- The driver reports a crash, names its reproducer and exits 1.

Without clang (and its libFuzzer runtime) or atheris the fuzzing tests skip with the reason,
except under CI=true, where that is a failure (scripts/setup.sh installs them).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from earshot.paths import ROOT

BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
import fuzz  # noqa: E402
import fuzz_targets  # noqa: E402


def _need(what: str, present: bool):
    if not present:
        msg = f"{what} not installed (scripts/setup.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true requires it)")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    paths = []
    for i, blob in enumerate(fuzz_targets.seeds("c_model")):
        paths.append(folder / f"seed{i}.bin")
        paths[-1].write_bytes(blob)
        # The same blob with a trailer: a detector configuration and audio for c_model,
        # trainer settings and pruning for c_adapt (fuzz_blob.h).
        paths.append(folder / f"seed{i}-trailer.bin")
        paths[-1].write_bytes(blob + bytes([200, 3, 5, 0, 1, 0x40, 0, 0x11, 9, 2]) * 8)
    return paths


@pytest.mark.parametrize("target", fuzz_targets.C_TARGETS)
def test_c_harness_replays_seeds_under_gcc_sanitizers(target, seed_files, tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc not installed")
    exe = tmp_path / target
    srcs = [fuzz.C_SOURCES[target], BENCH / "fuzz_main.c",
            *fuzz.core_sources(target == "c_adapt")]
    subprocess.run([gcc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    f"-I{fuzz.CORE}", f"-I{BENCH}", "-o", str(exe), *map(str, srcs)],
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([exe, *seed_files], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == f"inputs {len(seed_files)}\n"
    assert "runtime error" not in proc.stderr


def test_seeds_are_accepted_inputs():
    """The seeds reach past the parsers: the blobs parse, the recordings read, the package
    loads, the telemetry decodes to frames (else fuzzing would start at the first check)."""
    from earshot.board import monitor, telemetry
    from earshot.model import Model

    structural = fuzz_targets.structural_blobs()
    for blob in fuzz_targets.seeds("py_blob"):
        if blob not in structural:
            assert Model(blob).info["n_layers"] >= 3
    # ... and each structural seed stops at its own check of the layer chain.
    reasons = set()
    for blob in structural:
        with pytest.raises(ValueError, match="bad model blob: (layer|last|receptive)") as exc:
            Model(blob)
        reasons.add(str(exc.value))
    assert len(reasons) == len(structural) == 9
    for data in fuzz_targets.seeds("py_telemetry")[:2]:
        dec = telemetry.Decoder()
        assert len(dec.feed(data[1:])) == 13 and dec.corrupt == 0 and dec.dropped == 0
    assert sorted(s[0] for s in fuzz_targets.seeds("py_recording")) == [0, 1, 2, 3]
    assert len(fuzz_targets.seeds("py_package")) >= 2
    for rec in fuzz_targets.seeds("py_recording")[:2]:  # the monitor's own files
        path = fuzz.OUT.parent / ("seed-check" + (".csv" if rec[0] else ".jsonl"))
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(rec[1:])
        try:
            assert len(monitor.read_recording(path)) == 14
        finally:
            path.unlink()


def _tools():
    clang = shutil.which("clang") is not None
    _need("clang", clang)
    _need("atheris", importlib.util.find_spec("atheris") is not None)


# Exceptions found by fuzzing and not fixed yet, which the short run goes on past
# ("target:Exception"); none now (the package loader's three are fixed, tests below).
KNOWN = ()


@pytest.mark.slow
def test_short_fuzz_run_of_every_target_finds_nothing(tmp_path):
    """From the seeds, in a folder of its own (not build/fuzz's corpora)."""
    _tools()
    known = [arg for k in KNOWN for arg in ("--tolerate", k)]
    proc = subprocess.run([sys.executable, BENCH / "fuzz.py", "--seconds", "3", "--json",
                           "--out", tmp_path, *known], capture_output=True, text=True,
                          timeout=900)
    res = json.loads(proc.stdout)
    by = {r["target"]: r for r in res["targets"]}
    assert set(by) == set(fuzz.TARGETS)
    for name, r in by.items():
        assert "unavailable" not in r, r
        assert r["crashes"] == 0, f"{name}: {r['reason']} (reproducer {r['reproducers']})"
        assert r["executions"] > 100 and r["cov"] > 20, r
    assert proc.returncode == 0, proc.stderr[-2000:]


CRASHY = """
import sys, atheris
def one(data):
    if data[:4] == b"boom":
        raise KeyError("planted")
atheris.Setup([sys.argv[0], *sys.argv[1:]], one)
atheris.Fuzz()
"""


def test_driver_reports_a_crash_and_its_reproducer(tmp_path, monkeypatch):
    _need("atheris", importlib.util.find_spec("atheris") is not None)
    script = tmp_path / "crashy.py"
    script.write_text(CRASHY)
    monkeypatch.setattr(fuzz, "OUT", tmp_path / "out")
    monkeypatch.setattr(fuzz, "command", lambda target: [sys.executable, str(script)])
    monkeypatch.setattr(fuzz_targets, "seeds", lambda target: [b"fine", b"boom!"])
    r = fuzz.run_target("py_blob", 5, fresh=True)
    assert r["crashes"] == 1 and r["exit"] != 0
    assert "KeyError: 'planted'" in r["reason"]
    (repro,) = r["reproducers"]
    assert repro.startswith(str(tmp_path / "out" / "crashes" / "py_blob"))
    with open(repro, "rb") as f:
        assert f.read() == b"boom!"
    assert "reproducer: " + repro in fuzz.table([r])


# ---------------------------------------------------------------------------------------
# Regressions: inputs that made read_recording raise something other than RecordError (the
# structured mode of py_recording, bench/fuzz_targets.py, and the inputs it was built from).

BAD_RECORDINGS = {
    "nested.jsonl": "[" * 100_000 + "]" * 100_000,  # RecursionError
    "huge-t.jsonl": '{"t": 1' + "0" * 400 + ', "kind": "port", "event": "open"}',  # Overflow
    "nan-t.jsonl": '{"t": NaN, "kind": "port", "event": "open"}',
    "big-cell.csv": 'kind,text\ntext,"' + "x" * 200_000 + '"\n',  # csv.Error: field limit
    "huge-t.csv": "kind,t,event\nport,1e999,open\n",
}


@pytest.mark.parametrize("name", sorted(BAD_RECORDINGS))
def test_read_recording_refuses_hostile_files_with_record_error(name, tmp_path):
    from earshot.board.monitor import RecordError, read_recording

    path = tmp_path / name
    path.write_text(BAD_RECORDINGS[name])
    with pytest.raises(RecordError, match=name.replace(".", r"\.") + ":[12]: "):
        read_recording(path)


def test_tolerated_exception_is_saved_once_and_reported(tmp_path, capsys):
    """--tolerate: the first input of the class is saved and listed, fuzzing goes on; any
    other exception still ends the run."""

    def one(data):
        if data.startswith(b"r"):
            raise RecursionError("deep")
        if data.startswith(b"k"):
            raise KeyError(data)

    run = fuzz_targets.tolerant(one, {"RecursionError"}, tmp_path)
    for data in (b"ok", b"r1", b"r2", b"fine"):
        run(data)
    with pytest.raises(KeyError):
        run(b"k")
    (saved,) = tmp_path.iterdir()
    assert saved.read_bytes() == b"r1"
    log = capsys.readouterr().err
    res = fuzz.parse_log(log)
    assert res["tolerated"] == [{"exception": "RecursionError", "message": "'deep'",
                                 "input": str(saved)}]
    assert res["crashes"] == 0


@pytest.mark.parametrize("target,floors", [
    ("c_model", {"es_model.c": 0.68, "es_detector.c": 0.85, "es_engine.c": 0.85}),
    ("c_adapt", {"es_adapt.c": 0.8, "es_adapt_train.c": 0.7, "es_adapt_write.c": 0.85,
                 "es_adapt_prune.c": 0.65}),
])
def test_seeds_alone_run_most_of_the_core(target, floors, tmp_path, monkeypatch):
    """The seeds reach deep (the detector's replay from a full pre-roll and its gate closing
    included), so that fuzzing starts from there: line coverage by the seeds alone (the
    parser's error paths are the fuzzer's to find)."""
    for tool in ("clang", "llvm-profdata", "llvm-cov"):
        _need(tool, shutil.which(tool) is not None)
    monkeypatch.setattr(fuzz, "OUT", tmp_path)
    fuzz.write_seeds(target)
    (tmp_path / "corpus" / target).mkdir(parents=True)
    cov = fuzz.line_coverage(target)
    for name, floor in floors.items():
        run, lines = cov[name]
        assert run / lines >= floor, (name, run, lines)


def _package(tmp_path, manifest_text: str):
    from earshot.model import package

    for name in ("model.bin", "model.tflite"):
        (tmp_path / name).write_bytes((fuzz_targets.MODELS / "alexa" / name).read_bytes())
    (tmp_path / "manifest.json").write_text(manifest_text)
    return package.load(tmp_path)


def test_package_load_refuses_a_deeply_nested_manifest_with_value_error(tmp_path):
    """Found by fuzzing: json's RecursionError got out of package.load."""
    with pytest.raises(ValueError):
        _package(tmp_path, "[" * 100_000 + "]" * 100_000)


def test_package_load_refuses_a_huge_integer_cutoff_with_value_error(tmp_path):
    """Found by fuzzing: float()'s OverflowError got out of package.load."""
    text = (fuzz_targets.MODELS / "alexa" / "manifest.json").read_text()
    man = json.loads(text)
    text = text.replace(f'"cutoff": {man["cutoff"]}', '"cutoff": 1' + "0" * 400)
    with pytest.raises(ValueError):
        _package(tmp_path, text)


def test_package_load_refuses_an_overlong_blob_name_with_value_error(tmp_path):
    """Found by fuzzing (py_package, the long run): a "blob" name longer than the file
    system allows makes Path.is_file() raise OSError ENAMETOOLONG."""
    text = (fuzz_targets.MODELS / "alexa" / "manifest.json").read_text()
    assert '"blob": "model.bin"' in text
    text = text.replace('"blob": "model.bin"', '"blob": "' + "x" * 5000 + '"')
    with pytest.raises(ValueError):
        _package(tmp_path, text)
