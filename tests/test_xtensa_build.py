"""The _earshot natmod builds for Xtensa (ARCH=xtensa, Debian's xtensa-lx106-elf-gcc).

The LX106 (ESP8266) stands in for the ESP32-S3's LX7: this proves the binding and the core
compile and link as a MicroPython 1.23 natmod for Xtensa, with no writable static data. The
integer helpers the Xtensa natmod carries (firmware/binding/natmod_xtensa_rt.c) are checked
against Python's arithmetic on the host, since nothing here can run Xtensa code.
"""

import ctypes
import os
import random
import shutil
import subprocess

import pytest
from earshot.board import natmod
from earshot.paths import FIRMWARE
from elftools.elf.elffile import ELFFile

XTENSA_GCC = "xtensa-lx106-elf-gcc"
RT_SOURCE = FIRMWARE / "binding" / "natmod_xtensa_rt.c"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        msg = f"{tool} not installed (apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true requires it)")
        pytest.skip(msg)


def _section_size(obj, name: str) -> int:
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        return 0 if sec is None else sec.data_size


@pytest.fixture(scope="module", params=[True, False], ids=["adapt", "detect-only"])
def xtensa_build(request, tmp_path_factory):
    """The natmod for Xtensa, with adaptation and detection only (natmod --no-adapt)."""
    _need(XTENSA_GCC)
    out = tmp_path_factory.mktemp("xtensa")
    return natmod.build("xtensa", out=out, clean=True, adapt=request.param), request.param


def test_xtensa_natmod_links(xtensa_build):
    path, _ = xtensa_build
    assert path.is_file()
    assert path.read_bytes()[:2] == b"M\x06"
    assert natmod.mpy_arch(path) == "xtensa"


def test_xtensa_objects_hold_no_writable_data(xtensa_build):
    path, adapt = xtensa_build
    objs = sorted((path.parent / "obj").rglob("*.o"))
    core = [o for o in objs if o.parent.name == "core"]
    want = {p.stem for p in (FIRMWARE / "core").glob("*.c")}
    if not adapt:  # detection only: none of the core's adaptation (es_adapt*.c)
        want = {stem for stem in want if not stem.startswith("es_adapt")}
    assert {o.stem for o in core} == want
    binding = {o.stem for o in objs if o.parent.name == "binding"}
    assert ("earshot_adapt" in binding) == adapt
    for obj in objs:
        assert _section_size(obj, ".data") == 0, obj.name
    for obj in core:  # the core keeps no state of its own at all
        assert _section_size(obj, ".bss") == 0, obj.name


def test_unknown_arch_and_missing_compiler_are_clear_errors():
    with pytest.raises(natmod.NatmodError, match="unknown arch 'z80'"):
        natmod.build("z80")
    if not any(shutil.which(f"xtensa-{c}-elf-gcc") for c in ("esp32s3", "esp32")):
        # ESP-IDF names the S3's compiler xtensa-esp32s3-elf-gcc; py/dynruntime.mk names
        # xtensa-esp32-elf-gcc: either serves (the same windowed-ABI code).
        with pytest.raises(natmod.NatmodError,
                           match="xtensa-esp32s3-elf-gcc or xtensa-esp32-elf-gcc not found"):
            natmod.build("xtensawin")


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    """natmod_xtensa_rt.c compiled for the host as a shared library."""
    _need("gcc")
    so = tmp_path_factory.mktemp("rt") / "rt.so"
    subprocess.run(
        ["gcc", "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-o", so, RT_SOURCE],
        check=True,
    )
    lib = ctypes.CDLL(str(so))
    u32, i32, u64, i64 = ctypes.c_uint32, ctypes.c_int32, ctypes.c_uint64, ctypes.c_int64
    for name, res, args in [
        ("__udivsi3", u32, [u32, u32]), ("__umodsi3", u32, [u32, u32]),
        ("__divsi3", i32, [i32, i32]), ("__modsi3", i32, [i32, i32]),
        ("__muldi3", u64, [u64, u64]), ("__ashldi3", u64, [u64, ctypes.c_int]),
        ("__lshrdi3", u64, [u64, ctypes.c_int]), ("__ashrdi3", i64, [i64, ctypes.c_int]),
    ]:  # fmt: skip
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _c_div(n: int, d: int) -> int:
    q = abs(n) // abs(d)
    return q if (n < 0) == (d < 0) else -q


def _wrap(x: int, bits: int, signed: bool) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if signed and x >> (bits - 1) else x


def test_runtime_helpers_match_python(rt):
    rng = random.Random(7)
    edge32 = [0, 1, 2, 3, 7, 160, 320, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    u32s = edge32 + [rng.getrandbits(32) for _ in range(300)]
    u32s += [rng.getrandbits(9) for _ in range(50)]
    for n in u32s:
        divisors = [x for x in edge32 if x]
        divisors += [rng.getrandbits(rng.randint(1, 32)) | 1 for _ in range(3)]
        for d in divisors:
            assert rt.__udivsi3(n, d) == n // d, (n, d)
            assert rt.__umodsi3(n, d) == n % d, (n, d)
            sn, sd = _wrap(n, 32, True), _wrap(d, 32, True)
            if sn == -(1 << 31) and sd == -1:
                continue  # overflow: undefined in C
            q = _c_div(sn, sd)
            assert rt.__divsi3(sn, sd) == q, (sn, sd)
            assert rt.__modsi3(sn, sd) == sn - q * sd, (sn, sd)
    edge64 = [0, 1, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
    u64s = edge64 + [rng.getrandbits(64) for _ in range(300)]
    for a in u64s:
        for b in edge64 + [rng.getrandbits(64), rng.getrandbits(31)]:
            assert rt.__muldi3(a, b) == (a * b) & ((1 << 64) - 1), (a, b)
        for s in range(64):
            assert rt.__ashldi3(a, s) == (a << s) & ((1 << 64) - 1), (a, s)
            assert rt.__lshrdi3(a, s) == a >> s, (a, s)
            sa = _wrap(a, 64, True)
            assert rt.__ashrdi3(sa, s) == sa >> s, (sa, s)


def _bench_core():
    """bench/core.py as a module (its xtensa_sizes measures the hot path)."""
    import importlib.util

    from earshot.paths import ROOT

    spec = importlib.util.spec_from_file_location("bench_core", ROOT / "bench" / "core.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def hot_path(tmp_path_factory):
    _need(XTENSA_GCC)
    return _bench_core().xtensa_sizes(tmp_path_factory.mktemp("hot"))


def test_hot_path_reaches_every_stage(hot_path):
    # The per-hop entry reaches the first-stage gate, the frontend, the VAD, the input
    # normalisation, the engine, its kernels and the posterior: all of them are counted.
    fns = set(hot_path["xtensa_hot_path_functions"])
    for fn in ["es_detector_run", "es_gate_update", "es_frontend_hop", "es_vad_update",
               "es_norm_update", "es_engine_push", "es_nn_rows", "es_posterior_push"]:  # fmt: skip
        assert fn in fns, fn
    # Adaptation, parsing and the feature copy for adaptation are off the hot path.
    assert not any(fn.startswith(("es_adapt", "es_model_parse")) for fn in fns)
    assert "es_detector_rows" not in fns


@pytest.mark.xfail(
    strict=True,
    reason="issue 35: the first-stage gate took the per-hop Xtensa hot path over 4 KB "
    "(bench/core.py xtensa_hot_path_bytes; docs/performance.md has the measured size); "
    "the rest of the cut needs the 64-bit-free frontend, left for the retrained model",
)
def test_hot_path_within_4_kb(hot_path):
    assert hot_path["xtensa_hot_path_bytes"] <= 4096, hot_path["xtensa_hot_path_functions"]
