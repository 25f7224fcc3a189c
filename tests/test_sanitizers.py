"""The C core under -fsanitize=address,undefined and valgrind memcheck.

- Parity vectors from the TFLite Micro interpreter (every single-op case of
  tests/test_parity_tflm.py's shape table, and the shipped model on real or synthetic
  features) run through a C driver (tests/c/test_nn_vectors.c) built with both kernel
  variants under ASan + UBSan (-fno-sanitize-recover=all): any out-of-bounds access, signed
  overflow or bad shift aborts; every output must equal TFLM's, guard bytes intact.
- bench/core_step.c under valgrind memcheck: no memory errors, and the heap use of a run
  does not depend on the number of hops (nothing allocates after initialisation); the core
  itself references no allocator at all.
- The frontend's output is pinned: features of fixed integer signals hash to the value the
  frontend produced before its size optimisations (the model is trained on these features).
"""

import re
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from earshot import core
from earshot.paths import MODELS, ROOT
from nn_cases import (
    KINDS,
    TESTS_C,
    build_core,
    core_sources,
    seeded_shapes,
    single_op_case,
    tflm_run,
)

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

BLOB = MODELS / "alexa" / "model.bin"
TFLITE = MODELS / "alexa" / "model.tflite"
STEP_C = ROOT / "bench" / "core_step.c"
KIND_CODE = {"conv": 0, "depthwise": 1, "pointwise": 2, "fc": 3}


def _need(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not installed (scripts/setup.sh installs it)")


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _kernel_record(kind, layer, x, expect) -> bytes:
    has_bias = layer["bias"] is not None
    head = [
        1,
        KIND_CODE[kind],
        x.shape[0],
        layer["in_ch"],
        layer["out_ch"],
        layer["kernel"],
        layer["stride"],
        -layer["input_zp"],
        layer["output_zp"],
        layer["act_min"],
        layer["act_max"],
        int(has_bias),
        len(layer["weights"]),
        expect.shape[0],
    ]
    out = struct.pack(f"<{len(head)}i", *head)
    out += np.asarray(layer["multiplier"], "<i4").tobytes()
    out += np.asarray(layer["shift"], "<i4").tobytes()
    if has_bias:
        out += np.asarray(layer["bias"], "<i4").tobytes()
    for arr in (layer["weights"], x, expect):
        out += _pad(np.ascontiguousarray(arr, np.int8).tobytes())
    return out


def _model_record(blob: bytes, flat: bytes, feats: np.ndarray) -> bytes:
    interp = runtime.Interpreter.from_bytes(flat)
    frames = int(interp.get_input_details(0)["shape"][1])
    stride = 6 if blob == BLOB.read_bytes() else None
    assert stride is not None
    hops = list(range(frames - 1, len(feats), stride))
    logits = []
    for n in hops:
        interp.set_input(feats[n - frames + 1 : n + 1][None, :, None, :], 0)
        interp.invoke()
        logits.append(int(interp.get_output(0).reshape(-1)[0]))
    out = struct.pack("<4i", 2, len(blob), len(feats), len(hops))
    out += _pad(blob) + _pad(feats.astype(np.int8).tobytes())
    out += np.asarray(hops, "<i4").tobytes() + _pad(np.asarray(logits, np.int8).tobytes())
    return out


def _features() -> np.ndarray:
    """Features of a fixed, non-silent integer signal (no data needed): 4 s of LCG noise
    with a slow amplitude envelope, so the model's logits vary."""
    n = 64000
    x = np.empty(n, np.int64)
    state = 99
    for i in range(n):
        state = (1664525 * state + 1013904223) & 0xFFFFFFFF
        x[i] = (state >> 16) - 32768
    env = 1 + (np.arange(n) // 4000) % 8
    return core.features((x * env // 8).astype(np.int16))


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    if not (BLOB.is_file() and TFLITE.is_file()):
        pytest.fail(f"{BLOB} / {TFLITE} missing")
    data = b""
    n = 0
    for kind in KINDS:
        for shape in seeded_shapes(18):
            seed = zlib.crc32(repr((kind, shape)).encode())
            flat, layer, x = single_op_case(kind, shape, seed, relu=bool(seed & 1))
            data += _kernel_record(kind, layer, x, tflm_run(flat, x))
            n += 1
    data += _model_record(BLOB.read_bytes(), TFLITE.read_bytes(), _features())
    path = tmp_path_factory.mktemp("vectors") / "vectors.bin"
    path.write_bytes(data + struct.pack("<i", 0))
    return path, n


@pytest.mark.parametrize(
    "opt,optimize", [(True, "-O2"), (True, "-Os"), (False, "-O2")], ids=["opt", "opt-Os", "ref"]
)
def test_parity_vectors_under_asan_ubsan(vectors, tmp_path, opt, optimize):
    """Both kernel variants, and the size-optimised (-Os, device) code paths of the twins."""
    _need("gcc")
    path, n_kernels = vectors
    exe = build_core(
        tmp_path / "vectors",
        opt=opt,
        optimize=optimize,
        sanitize=True,
        shared=False,
        extra=[TESTS_C / "test_nn_vectors.c"],
    )
    proc = subprocess.run([exe, path], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.fullmatch(r"kernels (\d+) models (\d+) outputs (\d+)\n", proc.stdout)
    assert m, proc.stdout
    assert int(m[1]) == n_kernels and int(m[2]) == 1 and int(m[3]) > 50
    assert "runtime error" not in proc.stderr


def test_vector_driver_reports_a_wrong_output(vectors, tmp_path):
    """The C driver is not vacuous: one flipped expected logit fails it."""
    path, _ = vectors
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # the last expected logit (the file ends with it, padding, tag 0)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    exe = build_core(
        tmp_path / "vectors", opt=True, shared=False, extra=[TESTS_C / "test_nn_vectors.c"]
    )
    proc = subprocess.run([exe, bad], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1 and "FAIL model 0" in proc.stdout, proc.stdout


def _heap_usage(stderr: str) -> tuple[int, int]:
    m = re.search(r"total heap usage: ([\d,]+) allocs, [\d,]+ frees, ([\d,]+) bytes", stderr)
    assert m, stderr
    return int(m[1].replace(",", "")), int(m[2].replace(",", ""))


@pytest.fixture(scope="module")
def step_exe(tmp_path_factory):
    _need("gcc")
    out = tmp_path_factory.mktemp("step") / "core_step"
    return build_core(out, opt=True, shared=False, extra=[STEP_C])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["engine", "detector"])
def test_valgrind_memcheck_no_errors_no_heap_after_init(step_exe, tmp_path, mode):
    _need("valgrind")
    feats = _features()
    if mode == "engine":
        inp = feats.tobytes()
    else:
        inp = (np.arange(16000, dtype=np.int64) * 7919 % 20000 - 10000).astype("<i2").tobytes()
    (tmp_path / "in.raw").write_bytes(inp)
    usage = {}
    for hops in (1, 3000):
        proc = subprocess.run(
            [
                "valgrind",
                "--error-exitcode=3",
                "--leak-check=full",
                step_exe,
                mode,
                BLOB,
                tmp_path / "in.raw",
                str(hops),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "ERROR SUMMARY: 0 errors" in proc.stderr
        assert f"hops {hops} " in proc.stdout
        usage[hops] = _heap_usage(proc.stderr)
    # stdio's buffers are the only heap use, the same for 1 and 3000 hops.
    assert usage[1] == usage[3000], usage


def test_core_references_no_allocator(tmp_path):
    _need("gcc")
    lib = build_core(tmp_path / "core.so", opt=True)
    undefined = subprocess.run(
        ["nm", "-u", lib], capture_output=True, text=True, check=True
    ).stdout
    for name in ("malloc", "calloc", "realloc", "free", "alloca"):
        assert not re.search(rf"\b{name}\b", undefined), f"the core calls {name}"
    assert len(core_sources()) >= 8


# ---------------------------------------------------------------------------------------
# frontend output pinned across size optimisations


def _lcg(n, seed):
    out = np.empty(n, np.int64)
    x = seed
    for i in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out[i] = (x >> 16) - 32768
    return out


def _golden_signals():
    n = 16000
    noise = _lcg(n, 12345)
    sigs = [noise >> shift for shift in (0, 3, 8, 12, 15)]  # full scale down to +-1 LSB
    red = np.cumsum(noise) // 64
    red = red - (np.arange(n) * red[-1]) // n
    sigs.append(np.clip(red, -32768, 32767))
    t = np.arange(n)
    sigs.append(np.where((t // (8 + t // 1000)) % 2 == 0, 20000, -20000))
    sigs.append(np.where(t % 800 == 0, 32767, 0))
    sigs.append(np.full(n, -32768))
    sigs.append((t * 7919) % 65536 - 32768)
    return [s.astype(np.int16) for s in sigs]


# CRC-32 of the features of _golden_signals(), computed by es_frontend.c at commit 88475df7,
# before the shared 64-bit multiply-add (es_mac_q15) and es_msb32 went in.
GOLDEN_FEATURES_CRC = 2396618255


def test_frontend_features_unchanged_by_size_optimisations():
    crc = 0
    for s in _golden_signals():
        f = core.features(s)
        assert f.shape == (100, 40)
        crc = zlib.crc32(f.tobytes(), crc)
    assert crc == GOLDEN_FEATURES_CRC
