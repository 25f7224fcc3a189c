"""Bit-exact parity: the C streaming engine vs the TFLite Micro interpreter (PyPI tflite-micro).

Random-weight Keras models of the architecture family (with non-trivial BatchNorm statistics,
folded by the converter) are converted by ``arch.to_tflite_int8``, exported by
``blob.from_tflite``, and run on real features (the C frontend on the shared recordings):
TFLM on each non-streaming window, the engine streaming over the whole feature sequence.
Every int8 logit must be equal. The trained model (models/alexa/model.tflite) is checked the
same way when present.

Each kernel alone is also checked against TFLM: a seeded table of shapes (kernel 1..9,
stride 1..3, odd channel counts) as one-op .tflite models (CONV_2D, pointwise CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, fused NONE or RELU), run by both kernel builds
(ES_NN_OPT 1 and 0) with misaligned buffers and guard bytes.
"""

import ctypes
import zlib

import numpy as np
import pytest
from earshot import audio, core
from earshot.train import arch
from earshot.model import Engine, Model, blob
from earshot.paths import MODELS
from nn_cases import (
    KINDS,
    build_core,
    declare,
    run_kernel,
    seeded_shapes,
    single_op_case,
    tflm_run,
)

tf = pytest.importorskip("tensorflow")

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

SMALL_ARCH = {
    "first": {"filters": 13, "kernel": 4, "stride": 2},
    "blocks": [
        {"kernel": 3, "stride": 1, "filters": 9},
        {"kernel": 5, "stride": 3, "filters": 17},
        {"kernel": 2, "stride": 1, "filters": 7},
    ],
    "batchnorm": True,
}


@pytest.fixture(scope="module")
def features(data):
    """int8 features (n, 40) of a few real clips, positives and negatives, joined."""
    clips = sorted((data / "wake-word-benchmark" / "alexa").glob("*.*"))[:6]
    clips += sorted((data / "wake-word-benchmark" / "computer").glob("*.*"))[:4]
    rows = []
    for path in clips:
        try:
            rows.append(core.features(audio.load(path)))
        except audio.AudioError:
            continue
    assert len(rows) >= 5, "too few readable clips"
    return np.concatenate(rows)


def _windows(features, frames, step):
    starts = range(0, len(features) - frames + 1, step)
    return np.stack([features[s : s + frames] for s in starts])


def _random_keras(cfg, seed, windows):
    """build_model(cfg) with random weights and BatchNorm statistics as after training: each
    BatchNorm's moving mean / variance are those of its input on ``windows`` (int8 features
    (N, T, 40)), with random gamma / beta, so the signal neither dies nor explodes."""
    import keras

    keras.utils.set_random_seed(seed)
    model = arch.build_model(cfg)
    rng = np.random.default_rng(seed)
    x = arch.features_to_input(windows)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            pre = keras.Model(model.inputs, layer.input).predict(x, verbose=0)
            mean, var = pre.mean(axis=(0, 1, 2)), pre.var(axis=(0, 1, 2)) + 1e-3
            layer.set_weights(
                [
                    rng.uniform(0.7, 1.5, mean.shape).astype(np.float32),
                    rng.normal(0.2, 0.3, mean.shape).astype(np.float32),
                    mean.astype(np.float32),
                    var.astype(np.float32),
                ]
            )
        elif layer.name == "logit":
            w, _ = layer.get_weights()
            layer.set_weights([w, np.array([0.3], np.float32)])
    return model


def _tflm_logits(flat, features, hops, frames):
    interp = runtime.Interpreter.from_bytes(flat)
    out = []
    for n in hops:
        interp.set_input(features[n - frames + 1 : n + 1][None, :, None, :], 0)
        interp.invoke()
        out.append(int(interp.get_output(0).reshape(-1)[0]))
    return np.array(out, dtype=np.int8)


def _check_parity(flat, features):
    model = Model(blob.from_tflite(flat, cutoff=0.9, window=5, refractory=20))
    frames, stride = model.info["input_frames"], model.info["output_stride"]
    hops, logits = Engine(model).run(features)
    np.testing.assert_array_equal(hops, np.arange(frames - 1, len(features), stride))
    expect = _tflm_logits(flat, features, hops, frames)
    mismatch = np.flatnonzero(logits != expect)
    assert mismatch.size == 0, (
        f"{mismatch.size}/{len(hops)} logits differ, first at hop {hops[mismatch[0]]}: "
        f"engine {logits[mismatch[0]]}, TFLM {expect[mismatch[0]]}"
    )
    return model, logits


@pytest.mark.parametrize("cfg_name,seed", [("default", 1), ("default", 2), ("small", 3)])
def test_random_model_parity(features, cfg_name, seed):
    cfg = arch.DEFAULT_ARCH if cfg_name == "default" else SMALL_ARCH
    frames = arch.receptive_field(cfg)
    windows = _windows(features, frames, 17)[:200]
    keras_model = _random_keras(cfg, seed, windows)
    flat = arch.to_tflite_int8(keras_model, windows)
    model, logits = _check_parity(flat, features)
    assert model.info["macs_per_output"] == arch.macs_per_output(cfg)
    # The comparison is not trivial: the logits take many values.
    assert len(np.unique(logits)) > 10
    # The int8 model tracks the float model (quantization noise only): strong correlation.
    interp = tf.lite.Interpreter(model_content=flat)
    ((scale, zp),) = [d["quantization"] for d in interp.get_output_details()]
    x = _windows(features, frames, model.info["output_stride"])[: len(logits)]
    float_logits = keras_model.predict(arch.features_to_input(x), verbose=0).reshape(-1)
    dequant = (logits[: len(x)].astype(np.float64) - zp) * scale
    corr = np.corrcoef(dequant, float_logits)[0, 1]
    assert corr > 0.9, f"int8 logits correlate {corr:.3f} with the float model's"


def test_trained_model_parity(features):
    path = MODELS / "alexa" / "model.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not trained yet")
    _, logits = _check_parity(path.read_bytes(), features)
    # The shipped blob is the same network as the shipped .tflite: same logits, bit for bit.
    shipped = Model((MODELS / "alexa" / "model.bin").read_bytes())
    np.testing.assert_array_equal(Engine(shipped).run(features)[1], logits)


LAYER_SHAPES = seeded_shapes(18)


@pytest.fixture(scope="module", params=["opt", "ref"])
def kernels(request, tmp_path_factory):
    if request.param == "opt":
        return declare(core.lib())
    out = tmp_path_factory.mktemp("ref") / "libearshot_ref.so"
    return declare(ctypes.CDLL(str(build_core(out, opt=False))))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape", LAYER_SHAPES, ids=[f"L{a}c{b}o{c}k{d}s{e}" for a, b, c, d, e in LAYER_SHAPES]
)
def test_single_layer_parity(kernels, kind, shape):
    seed = zlib.crc32(repr((kind, shape)).encode())
    flat, layer, x = single_op_case(kind, shape, seed, relu=bool(seed & 1))
    expect = tflm_run(flat, x)
    for misalign in (0, 1, 2, 3):
        got = run_kernel(kernels, kind, layer, x, expect.shape, misalign)
        mismatch = np.argwhere(got != expect)
        assert mismatch.size == 0, (
            f"{len(mismatch)}/{expect.size} outputs differ from TFLM, first at {mismatch[0]}"
        )
    # Not degenerate: the outputs take several values unless there are very few.
    assert expect.size < 8 or len(np.unique(expect)) > 2
