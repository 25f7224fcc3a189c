"""The C int8 kernels (es_nn.c) and streaming engine (es_engine.c) against a numpy reference
of TFLite's integer semantics (tensorflow/lite/kernels/internal/common.h and
reference/integer_ops/{conv,depthwise_conv,fully_connected}.h).

Kernels run through ctypes over a seeded table of shapes (odd channel counts, kernel 1..9,
stride 1..3) with misaligned int8 buffers and guard bytes around every output, in both
builds: the optimised twins (ES_NN_OPT 1, shipped) and the reference kernels (ES_NN_OPT 0).
"""

import ctypes
import fractions
import zlib

import numpy as np
import pytest
from earshot import core
from earshot.train import arch
from earshot.model import Engine, Model, blob
from nn_cases import build_core, declare, run_kernel

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1


# ---------------------------------------------------------------------------------------
# numpy reference


def ref_requantize(acc, mult, shift):
    """MultiplyByQuantizedMultiplier, double rounding (gemmlowp), in int64 numpy."""
    acc = np.asarray(acc, np.int64)
    mult = np.asarray(mult, np.int64)
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    x = ((acc << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    ab = x * mult
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division truncates toward zero
    high = np.where((x == I32_MIN) & (mult == I32_MIN), I32_MAX, high)
    mask = (np.int64(1) << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def ref_accumulate(layer, x):
    """int64 accumulator of one layer dict (blob.pack format) on int8 rows x (..., L, in_ch)
    -> (..., L_out, out_ch); leading axes are a batch (bench/prune_refit.py uses them)."""
    k, s, kind = layer["kernel"], layer["stride"], layer["type"]
    xi = x.astype(np.int64) - layer["input_zp"]
    w = np.asarray(layer["weights"], np.int64)
    if kind == "fc":
        flat = xi.reshape(*xi.shape[:-2], -1)
        acc = (flat @ w.reshape(layer["out_ch"], layer["in_ch"]).T)[..., None, :]
    else:
        n = (x.shape[-2] - k) // s + 1
        win = np.stack([xi[..., t * s : t * s + k, :] for t in range(n)], axis=-3)
        if kind == "conv":
            acc = np.einsum("...nki,oki->...no", win, w.reshape(layer["out_ch"], k, layer["in_ch"]))
        else:
            acc = np.einsum("...nkc,kc->...nc", win, w.reshape(k, layer["out_ch"]))
    if layer.get("bias") is not None:
        acc = acc + np.asarray(layer["bias"], np.int64)
    return acc


def ref_activate(layer, acc):
    """int8 output of a layer from its int64 accumulator (requantize, zero point, clamp)."""
    out = ref_requantize(acc, layer["multiplier"], layer["shift"]) + layer["output_zp"]
    return np.clip(out, layer["act_min"], layer["act_max"]).astype(np.int8)


def ref_layer(layer, x):
    """One layer dict (blob.pack format) on int8 rows x (L, in_ch) -> int8 (L_out, out_ch)."""
    return ref_activate(layer, ref_accumulate(layer, x))


def ref_network(layers, x):
    for layer in layers:
        x = ref_layer(layer, x)
    return x


# ---------------------------------------------------------------------------------------
# ctypes: the shipped build (ES_NN_OPT 1, build/libearshot.so) and the reference kernels
# (ES_NN_OPT 0, built here), each checked against the numpy reference.


@pytest.fixture(scope="module", params=["opt", "ref"])
def so(request, tmp_path_factory):
    if request.param == "opt":
        return declare(core.lib())
    out = tmp_path_factory.mktemp("ref") / "libearshot_ref.so"
    return declare(ctypes.CDLL(str(build_core(out, opt=False))))


# (in_len, in_ch, out_ch, kernel, stride)
SHAPES = [
    (1, 1, 1, 1, 1),
    (3, 40, 32, 3, 3),
    (9, 7, 5, 9, 1),
    (12, 13, 11, 5, 2),
    (20, 3, 17, 7, 3),
    (6, 33, 1, 2, 1),
    (17, 48, 48, 1, 1),
    (11, 31, 9, 4, 3),
    (8, 64, 3, 8, 2),
    (25, 5, 63, 6, 1),
]


def _case(rng, shape, kind):
    in_len, in_ch, out_ch, k, s = shape
    if kind == "depthwise":
        out_ch = in_ch
    if kind in ("pointwise", "fc"):
        k, s = 1, 1
    if kind == "fc":
        in_len = 1
    w_shape = {
        "conv": (out_ch, k, in_ch),
        "depthwise": (k, in_ch),
        "pointwise": (out_ch, in_ch),
        "fc": (out_ch, in_ch),
    }[kind]
    taps = k * (1 if kind == "depthwise" else in_ch)
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    act_min = int(rng.choice([-128, out_zp]))
    # Multipliers as QuantizeMultiplier makes them, a few zero; right shifts around the
    # accumulators' magnitude so outputs span the int8 range and also clamp.
    mult = rng.integers(1 << 30, 1 << 31, size=out_ch, dtype=np.int64)
    mult[1:][rng.random(out_ch - 1) < 0.1] = 0
    shift = -(np.round(np.log2(np.sqrt(taps) * 74 * 74 / 60)) + rng.integers(-2, 3, out_ch))
    return {
        "type": "conv" if kind == "pointwise" else kind,
        "kernel": k,
        "stride": s,
        "in_ch": in_ch,
        "out_ch": out_ch,
        "input_zp": in_zp,
        "output_zp": out_zp,
        "act_min": act_min,
        "act_max": 127,
        "weights": rng.integers(-128, 128, size=w_shape).astype(np.int8),
        "bias": None
        if rng.random() < 0.2
        else rng.integers(-50000, 50000, out_ch).astype(np.int32),
        "multiplier": mult.astype(np.int32),
        "shift": np.clip(shift, -31, 0).astype(np.int32),
    }, rng.integers(-128, 128, size=(in_len, in_ch)).astype(np.int8)


@pytest.mark.parametrize("kind", ["conv", "depthwise", "pointwise", "fc"])
@pytest.mark.parametrize(
    "shape", SHAPES, ids=[f"L{a}c{b}o{c}k{d}s{e}" for a, b, c, d, e in SHAPES]
)
def test_kernel_matches_reference(so, kind, shape):
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
    layer, x = _case(rng, shape, kind)
    expect = ref_layer(layer, x)
    assert so.es_nn_out_len(x.shape[0], layer["kernel"], layer["stride"]) == expect.shape[0]
    for misalign in (0, 1, 3):
        got = run_kernel(so, kind, layer, x, expect.shape, misalign)
        np.testing.assert_array_equal(got, expect)
    # The case is not degenerate: outputs vary (tiny outputs may all clamp).
    assert expect.size < 8 or len(np.unique(expect)) > 1


def test_requantize_matches_reference_and_exact_rounding(so):
    rng = np.random.default_rng(7)
    acc = np.concatenate(
        [
            rng.integers(-(1 << 31), 1 << 31, 3000, dtype=np.int64),
            rng.integers(-5000, 5000, 3000),
            [0, 1, -1, I32_MIN, I32_MAX, 1 << 30, -(1 << 30)],
        ]
    )
    mult = rng.integers(1 << 30, 1 << 31, acc.size, dtype=np.int64)
    mult[-3:] = I32_MAX
    shift = rng.integers(-31, 1, acc.size)
    got = np.array(
        [so.es_nn_requantize(int(a), int(m), int(s)) for a, m, s in zip(acc, mult, shift)]
    )
    np.testing.assert_array_equal(got, ref_requantize(acc, mult, shift))
    # Independent check: double rounding stays within one unit of the exact product.
    for a, m, s, g in zip(acc[:500], mult[:500], shift[:500], got[:500]):
        exact = fractions.Fraction(int(a) * int(m), 1 << (31 - int(s)))
        assert abs(g - exact) <= 1
    # Left shifts (multipliers above 1) on values that do not overflow.
    small = rng.integers(-1000, 1000, 200)
    for a in small:
        for s in (1, 5, 20):
            g = so.es_nn_requantize(int(a), 1 << 30, s)
            assert g == ref_requantize(a, 1 << 30, s)
            assert g == int(a) << (s - 1)  # x * 0.5 * 2^s exactly


def test_out_len(so):
    assert so.es_nn_out_len(93, 3, 3) == 31
    assert so.es_nn_out_len(2, 3, 1) == 0
    assert so.es_nn_out_len(5, 0, 1) == 0
    assert so.es_nn_out_len(5, 2, 0) == 0
    assert so.es_nn_out_len(7, 2, 3) == 2


# ---------------------------------------------------------------------------------------
# streaming engine vs the non-streaming reference network

ENGINE_CONFIGS = {
    "default": arch.DEFAULT_ARCH,
    "odd": {
        "first": {"filters": 7, "kernel": 2, "stride": 3},  # stride > kernel skips rows
        "blocks": [
            {"kernel": 3, "stride": 2, "filters": 9},
            {"kernel": 1, "stride": 1, "filters": 5},
            {"kernel": 4, "stride": 3, "filters": 11},
        ],
    },
    "no_stride": {
        "first": {"filters": 16, "kernel": 5, "stride": 1},
        "blocks": [{"kernel": 9, "stride": 1, "filters": 24}],
    },
}


@pytest.mark.parametrize("name", ENGINE_CONFIGS)
def test_engine_streaming_equals_reference(name):
    cfg = ENGINE_CONFIGS[name]
    layers = blob.random_layers(cfg, seed=11)
    model = Model(
        blob.pack(layers, logistic=blob.logistic_table(0.1, 0), cutoff=0.5, window=3, refractory=0)
    )
    frames, stride = arch.receptive_field(cfg), arch.output_stride(cfg)
    assert model.info["input_frames"] == frames
    assert model.info["output_stride"] == stride
    assert model.info["macs_per_output"] == arch.macs_per_output(cfg)
    rng = np.random.default_rng(3)
    feats = rng.integers(-128, 128, size=(frames + 12 * stride + 5, 40)).astype(np.int8)
    engine = Engine(model)
    hops, logits = engine.run(feats)
    np.testing.assert_array_equal(hops, np.arange(frames - 1, len(feats), stride))
    expect = [ref_network(layers, feats[n - frames + 1 : n + 1])[0, 0] for n in hops]
    np.testing.assert_array_equal(logits, np.array(expect, np.int8))
    assert len(np.unique(logits)) > 1
    # push() and run() agree, and reset() restarts the phase and clears the state.
    engine.reset()
    pushed = [engine.push(row) for row in feats[: frames + stride]]
    assert [i for i, v in enumerate(pushed) if v is not None] == [frames - 1, frames - 1 + stride]
    assert [v for v in pushed if v is not None] == list(logits[:2])


def test_engine_rejects_bad_features():
    engine = Engine(Model(blob.random_model()))
    with pytest.raises(ValueError, match="int8"):
        engine.push(np.zeros(40, np.int16))
    with pytest.raises(ValueError, match="shape"):
        engine.run(np.zeros((3, 39), np.int8))
    with pytest.raises(ValueError, match="one row"):
        engine.push(np.zeros((2, 40), np.int8))
