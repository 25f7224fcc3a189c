"""Packed int4 weights (blob format 3): kernels bit-exact with the numpy reference on the
widened weights (both kernel variants, every misalignment, and under ASan/UBSan at -O2 and
-Os), the dequantize-to-int8 path, the streaming engine on a mixed int8/int4 model, old
blobs still loading, and the parser's int4 checks."""

from __future__ import annotations

import ctypes
import re
import struct
import subprocess
import zlib

import numpy as np
import pytest
from earshot import core
from earshot.model import Engine, Model, blob
from earshot.paths import MODELS
from nn_cases import TESTS_C, build_core, declare, run_kernel
from test_nn_kernels import SHAPES, _case, ref_layer, ref_network

KINDS = ("conv", "depthwise", "pointwise", "fc")
KIND_CODE = {"conv": 0, "depthwise": 1, "pointwise": 2, "fc": 3}


def _int4_case(kind, shape):
    """A kernel case of test_nn_kernels with int4 weights (values in [-8, 7])."""
    rng = np.random.default_rng(zlib.crc32(repr(("int4", kind, shape)).encode()))
    layer, x = _case(rng, shape, kind)
    layer["weights"] = rng.integers(-8, 8, size=np.shape(layer["weights"])).astype(np.int8)
    layer["weight_bits"] = blob.INT4
    # int4 sums are 16x smaller than int8 ones: shift 4 less so outputs still span int8.
    layer["shift"] = np.clip(np.asarray(layer["shift"]) + 4, -31, 0).astype(np.int32)
    return layer, x


@pytest.fixture(scope="module", params=["opt", "ref"])
def so(request, tmp_path_factory):
    if request.param == "opt":
        return declare(core.lib())
    out = tmp_path_factory.mktemp("ref4") / "libearshot_ref.so"
    return declare(ctypes.CDLL(str(build_core(out, opt=False))))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES,
                         ids=[f"L{a}c{b}o{c}k{d}s{e}" for a, b, c, d, e in SHAPES])
def test_int4_kernel_matches_reference(so, kind, shape):
    layer, x = _int4_case(kind, shape)
    expect = ref_layer(layer, x)
    for misalign in (0, 1, 3):
        got = run_kernel(so, kind, layer, x, expect.shape, misalign)
        np.testing.assert_array_equal(got, expect)
    assert expect.size < 8 or len(np.unique(expect)) > 1


@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 301])
def test_unpack_int4_c_equals_python(n):
    lib = core.lib()
    lib.es_nn_unpack_int4.restype = None
    lib.es_nn_unpack_int4.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    values = np.random.default_rng(n).integers(-8, 8, size=n).astype(np.int8)
    packed = blob.pack_int4(values)
    assert len(packed) == (n + 1) // 2
    out = np.full(n + 4, 0x5A, np.int8)
    lib.es_nn_unpack_int4(packed, n, out.ctypes.data)
    np.testing.assert_array_equal(out[:n], values)
    assert np.all(out[n:] == 0x5A)
    np.testing.assert_array_equal(blob.unpack_int4(packed, n), values)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        blob.pack_int4([8])


def _mixed_layers(seed=11):
    """random_layers with the first conv, every pointwise and the fc layer in int4 (weights
    / 16, requantization x 16: outputs keep their spread)."""
    layers = blob.random_layers(seed=seed)
    for layer in layers:
        if layer["type"] != "depthwise":
            w = np.asarray(layer["weights"], np.float64)
            layer["weights"] = np.clip(np.round(w / 16), -8, 7).astype(np.int8)
            layer["weight_bits"] = blob.INT4
            layer["shift"] = np.clip(np.asarray(layer["shift"]) + 4, -31, 30).astype(np.int32)
    return layers


def test_mixed_model_streams_bit_exact_and_round_trips():
    layers = _mixed_layers()
    raw = blob.pack(layers, logistic=blob.logistic_table(0.1, 0), cutoff=0.5, window=3,
                    refractory=0, input_norm=1)
    d = blob.describe(raw)
    assert d["format_version"] == blob.VERSION_INT4
    assert [lay["weight_bits"] for lay in d["layers"]] == [
        4 if lay["type"] != "depthwise" else 8 for lay in layers]
    for a, b in zip(layers, d["layers"]):
        np.testing.assert_array_equal(np.asarray(a["weights"]).reshape(-1), b["weights"])
    assert blob.pack(d["layers"], logistic=bytes(d["logistic"]), cutoff=0.5, window=3,
                     refractory=0, input_norm=1) == raw
    model = Model(raw)
    assert model.info["format_version"] == 3
    frames, stride = model.info["input_frames"], model.info["output_stride"]
    rng = np.random.default_rng(3)
    feats = rng.integers(-128, 128, (frames + 10 * stride, 40)).astype(np.int8)
    hops, logits = Engine(model).run(feats)
    expect = [ref_network(layers, feats[n - frames + 1 : n + 1])[0, 0] for n in hops]
    np.testing.assert_array_equal(logits, np.array(expect, np.int8))
    assert len(np.unique(logits)) > 1
    # the int8 blob of the same (widened) weights runs the same logits
    wide = [dict(lay, weight_bits=8) for lay in layers]
    raw8 = blob.pack(wide, logistic=blob.logistic_table(0.1, 0), cutoff=0.5, window=3,
                     refractory=0, input_norm=1)
    assert len(raw) < len(raw8)
    np.testing.assert_array_equal(Engine(Model(raw8)).run(feats)[1], logits)


def test_old_blobs_still_load():
    raw = (MODELS / "alexa" / "model.bin").read_bytes()
    assert raw[4] == 2  # format 2 as shipped
    model = Model(raw)
    assert model.info["format_version"] == 2
    assert all(lay["weight_bits"] == 8 for lay in blob.describe(raw)["layers"])
    # an int8 model without input_norm is still written as version 1, with it as 2
    assert blob.random_model()[4] == 1
    assert blob.random_model(input_norm=1)[4] == 2


def _resign(raw: bytearray) -> bytes:
    raw[8:12] = struct.pack("<I", zlib.crc32(bytes(raw[12:])))
    return bytes(raw)


def _first_int4_record(raw: bytes) -> int:
    h = blob.describe(raw)
    for i, lay in enumerate(h["layers"]):
        if lay["weight_bits"] == blob.INT4:
            return blob.HEADER_BYTES + i * blob.LAYER_BYTES
    raise AssertionError("no int4 layer")


def test_parser_rejects_bad_int4_layers():
    raw = blob.pack(_mixed_layers(), logistic=blob.logistic_table(0.1, 0), cutoff=0.5,
                    window=3, refractory=0)
    rec = _first_int4_record(raw)
    bad = bytearray(raw)
    bad[rec + 3] = 5
    with pytest.raises(ValueError, match="weight_bits not 8 or 4"):
        Model(_resign(bad))
    # int4 weight bytes must be ceil(n / 2): the int8 size is refused
    bad = bytearray(raw)
    size = struct.unpack_from("<I", bad, rec + 20)[0]
    struct.pack_into("<I", bad, rec + 20, 2 * size)
    with pytest.raises(ValueError, match="weights out of bounds or wrong size"):
        Model(_resign(bad))
    # the same record under version 2 reads as int8: its packed size is then wrong
    bad = bytearray(raw)
    bad[4] = 2
    with pytest.raises(ValueError, match="weights out of bounds or wrong size|input_norm"):
        Model(_resign(bad))


def test_adaptation_refuses_int4_models():
    lib = core.lib()
    lib.es_adapt_embedding_size.restype = ctypes.c_size_t
    lib.es_adapt_embedding_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
    raw = blob.pack(_mixed_layers(), logistic=blob.logistic_table(0.1, 0), cutoff=0.5,
                    window=3, refractory=0)
    model = Model(raw)
    why = ctypes.c_char_p()
    assert lib.es_adapt_embedding_size(model.handle, ctypes.byref(why)) == 0
    assert b"int4" in why.value


# ---------------------------------------------------------------------------------------
# under the sanitizers (the vector driver of tests/test_sanitizers.py, tag 3 records)


def _record(kind, layer, x, expect) -> bytes:
    packed = blob.pack_int4(layer["weights"])
    has_bias = layer["bias"] is not None
    head = [3, KIND_CODE[kind], x.shape[0], layer["in_ch"], layer["out_ch"], layer["kernel"],
            layer["stride"], -layer["input_zp"], layer["output_zp"], layer["act_min"],
            layer["act_max"], int(has_bias), len(packed), expect.shape[0]]

    def pad(b):
        return b + b"\0" * (-len(b) % 4)

    out = struct.pack(f"<{len(head)}i", *head)
    out += np.asarray(layer["multiplier"], "<i4").tobytes()
    out += np.asarray(layer["shift"], "<i4").tobytes()
    if has_bias:
        out += np.asarray(layer["bias"], "<i4").tobytes()
    out += pad(packed) + pad(x.astype(np.int8).tobytes()) + pad(expect.tobytes())
    return out


@pytest.mark.parametrize("opt,optimize", [(True, "-O2"), (True, "-Os"), (False, "-O2")],
                         ids=["opt", "opt-Os", "ref"])
def test_int4_vectors_under_asan_ubsan(tmp_path, opt, optimize):
    data, n = b"", 0
    for kind in KINDS:
        for shape in SHAPES:
            layer, x = _int4_case(kind, shape)
            data += _record(kind, layer, x, ref_layer(layer, x))
            n += 1
    path = tmp_path / "vectors.bin"
    path.write_bytes(data + struct.pack("<i", 0))
    exe = build_core(tmp_path / "vectors", opt=opt, optimize=optimize, sanitize=True,
                     shared=False, extra=[TESTS_C / "test_nn_vectors.c"])
    proc = subprocess.run([exe, path], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.fullmatch(r"kernels (\d+) models (\d+) outputs (\d+)\n", proc.stdout)
    assert m and int(m[1]) == n, proc.stdout
    assert "runtime error" not in proc.stderr
