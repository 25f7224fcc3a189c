"""The wake-word network family: a time-only DS-CNN over int8 log-mel features.

Layers (mel bins are channels, convolutions run over time only, ``valid`` padding):

1. ``Conv2D`` kernel ``(k, 1)``, stride ``(s, 1)``, 40 -> C0 channels, ReLU;
2. depthwise-separable blocks: ``DepthwiseConv2D`` ``(k, 1)`` stride ``(s, 1)`` + ReLU, then
   ``Conv2D`` 1x1 + ReLU (each conv optionally followed by BatchNorm, folded by the converter);
3. ``Flatten`` + ``Dense(1)``: a LOGIT (no sigmoid in the graph). Train with
   ``keras.losses.BinaryCrossentropy(from_logits=True)``.

The Keras model is non-streaming: input float32 of shape ``(T, 1, 40)`` with
``T = receptive_field(cfg)``, so the last convolution has time length 1. The float input is
``features_int8 * FEATURE_INPUT_SCALE``; ``to_tflite_int8`` forces the int8 ``.tflite`` input
to scale ``FEATURE_INPUT_SCALE`` and zero point 0, so the int8 features *are* the tflite input
and the C engine (``firmware/core/es_engine.c``) runs the same arithmetic, streaming.

Configuration dict (``DEFAULT_ARCH``)::

    {
        "input_bins": 40,                       # must equal ES_MEL_BINS
        "first": {"filters": C0, "kernel": k, "stride": s},
        "blocks": [{"kernel": k, "stride": s, "filters": C}, ...],
        "batchnorm": True,                      # BatchNorm after every conv (folded on export)
        "dropout": 0.0,                         # dropout before the Dense layer (training only)
        "channel_dropout": 0.0,                 # whole-channel dropout after conv0 and every
                                                # pointwise layer (training only)
        "slimming": 0.0,                        # L1 weight on the BatchNorm scales after
                                                # conv0 and every pointwise layer
    }

``channel_dropout`` zeroes whole output channels (all time steps, Keras SpatialDropout2D,
Tompson et al. 2015) during training, a regulariser meant to keep any single channel from
carrying the decision. Inference, export and the streaming engine are unchanged by it.
Measured effect: research/alexa/sessions.md and docs/adaptation.md.

``slimming`` adds ``slimming * sum(|gamma|)`` over the BatchNorm scales of the channels that
on-device pruning removes (conv0 and the pointwise layers) to the training loss: "network
slimming" (Liu et al., "Learning Efficient Convolutional Networks through Network Slimming",
ICCV 2017, who use 1e-4). Channels whose scale goes to zero carry little, so removing them
later costs little. It needs ``batchnorm``; export folds the scales as before.

TensorFlow is imported inside the functions that need it, so the pure shape arithmetic
(``receptive_field``, ``output_stride``, ``macs_per_output``) stays cheap to import.
"""

from __future__ import annotations

import copy

import numpy as np

from earshot import core

#: Feature bins per 10 ms hop (ES_MEL_BINS in firmware/core/earshot.h).
MEL_BINS = core.MEL_BINS
#: Hops per second (ES_SAMPLE_RATE_HZ / ES_HOP_SAMPLES = 16000 / 160).
HOPS_PER_SECOND = core.SAMPLE_RATE_HZ // core.HOP_SAMPLES
#: float input = int8 feature * FEATURE_INPUT_SCALE. A power of two, so that the converter's
#: min/max calibration over [-128, 127] * 2**-4 gives exactly this scale and zero point 0
#: ((127 + 128) / 16 / 255 = 2**-4 is exact in float32).
FEATURE_INPUT_SCALE = 1.0 / 16.0

#: The default wake-word network: receptive field 93 hops (0.93 s), one output per 6 hops
#: (60 ms); see ``macs_per_output`` / ``receptive_field`` for the derived numbers.
DEFAULT_ARCH = {
    "input_bins": MEL_BINS,
    "first": {"filters": 32, "kernel": 3, "stride": 3},
    "blocks": [
        {"kernel": 5, "stride": 1, "filters": 32},
        {"kernel": 7, "stride": 2, "filters": 48},
        {"kernel": 7, "stride": 1, "filters": 48},
        {"kernel": 5, "stride": 1, "filters": 48},
    ],
    "batchnorm": True,
    "dropout": 0.0,
}


def _check(cfg: dict) -> dict:
    """Return a validated deep copy of ``cfg``; ValueError names the bad key."""
    if not isinstance(cfg, dict):
        raise TypeError(f"arch config must be a dict, got {type(cfg).__name__}")
    cfg = copy.deepcopy(cfg)
    for key in ("first", "blocks"):
        if key not in cfg:
            raise ValueError(f"arch config: missing key {key!r}")
    cfg.setdefault("input_bins", MEL_BINS)
    cfg.setdefault("batchnorm", True)
    cfg.setdefault("dropout", 0.0)
    cfg.setdefault("channel_dropout", 0.0)
    cfg.setdefault("slimming", 0.0)
    if cfg["input_bins"] != MEL_BINS:
        raise ValueError(f"arch config: input_bins must be {MEL_BINS}, got {cfg['input_bins']}")
    layers = [("first", cfg["first"])] + [(f"blocks[{i}]", b) for i, b in enumerate(cfg["blocks"])]
    for name, layer in layers:
        for key in ("filters", "kernel", "stride"):
            value = layer.get(key)
            if not isinstance(value, int) or not 1 <= value <= 255:
                raise ValueError(
                    f"arch config: {name}.{key} must be an int in 1..255, got {value!r}"
                )
    for key in ("dropout", "channel_dropout"):
        if not 0.0 <= float(cfg[key]) < 1.0:
            raise ValueError(f"arch config: {key} must be in [0, 1), got {cfg[key]!r}")
    if not 0.0 <= float(cfg["slimming"]) < 1.0:
        raise ValueError(f"arch config: slimming must be in [0, 1), got {cfg['slimming']!r}")
    if cfg["slimming"] and not cfg["batchnorm"]:
        raise ValueError("arch config: slimming needs batchnorm (it weighs the BatchNorm scales)")
    return cfg


def _time_layers(cfg: dict) -> list[tuple[int, int]]:
    """(kernel, stride) of every time convolution, input to output (pointwise ones excluded)."""
    return [(cfg["first"]["kernel"], cfg["first"]["stride"])] + [
        (b["kernel"], b["stride"]) for b in cfg["blocks"]
    ]


def receptive_field(cfg: dict = DEFAULT_ARCH) -> int:
    """Input frames T (hops) for which the last convolution has time length 1.

    Walks the layers backwards: an output of length L needs ``(L - 1) * stride + kernel``
    input rows ('valid' convolution); starting from L = 1.
    """
    cfg = _check(cfg)
    length = 1
    for kernel, stride in reversed(_time_layers(cfg)):
        length = (length - 1) * stride + kernel
    return length


def output_stride(cfg: dict = DEFAULT_ARCH) -> int:
    """Hops between two streaming outputs: the product of all time strides."""
    cfg = _check(cfg)
    return int(np.prod([s for _, s in _time_layers(cfg)]))


def layer_table(cfg: dict = DEFAULT_ARCH) -> list[dict]:
    """The streaming layers, in order: dicts with type ("conv", "depthwise", "fc"), kernel,
    stride, in_ch, out_ch. This is the layer table the blob will hold for this config."""
    cfg = _check(cfg)
    first = cfg["first"]
    table = [
        {
            "type": "conv",
            "kernel": first["kernel"],
            "stride": first["stride"],
            "in_ch": cfg["input_bins"],
            "out_ch": first["filters"],
        }
    ]
    ch = first["filters"]
    for b in cfg["blocks"]:
        table.append(
            {
                "type": "depthwise",
                "kernel": b["kernel"],
                "stride": b["stride"],
                "in_ch": ch,
                "out_ch": ch,
            }
        )
        table.append(
            {"type": "conv", "kernel": 1, "stride": 1, "in_ch": ch, "out_ch": b["filters"]}
        )
        ch = b["filters"]
    table.append({"type": "fc", "kernel": 1, "stride": 1, "in_ch": ch, "out_ch": 1})
    return table


def layer_macs(layer: dict) -> int:
    """Multiply-accumulates of one run (one output row) of a layer from ``layer_table``."""
    if layer["type"] == "depthwise":
        return layer["kernel"] * layer["in_ch"]
    return layer["kernel"] * layer["in_ch"] * layer["out_ch"]


def macs_per_output(cfg: dict = DEFAULT_ARCH) -> int:
    """Multiply-accumulates the streaming engine spends per output (``output_stride`` hops).

    A layer whose cumulative stride (product of its and earlier strides) is S runs once per
    S hops, i.e. ``output_stride / S`` times per output. Per 30 ms (3 hops) of audio this is
    ``macs_per_output * 3 / output_stride``.
    """
    table = layer_table(cfg)
    total_stride = output_stride(cfg)
    macs, cum = 0, 1
    for layer in table:
        cum *= layer["stride"]
        macs += layer_macs(layer) * (total_stride // cum)
    return macs


def build_model(cfg: dict = DEFAULT_ARCH, name: str = "earshot_dscnn"):
    """Build the non-streaming Keras model for ``cfg``.

    Input: float32 ``(T, 1, input_bins)`` with ``T = receptive_field(cfg)``, values
    ``features_int8 * FEATURE_INPUT_SCALE``. Output: float32 ``(1,)`` logit per example.
    Raises ValueError for a bad config (TypeError if it is not a dict).
    """
    cfg = _check(cfg)
    import keras
    from keras import layers

    def conv_bn_relu(x, layer, label, channel_dropout=0.0, prunable=False):
        x = layer(x)
        if cfg["batchnorm"]:
            reg = (keras.regularizers.L1(float(cfg["slimming"]))
                   if prunable and cfg["slimming"] else None)
            x = layers.BatchNormalization(name=f"{label}_bn", gamma_regularizer=reg)(x)
        x = layers.ReLU(name=f"{label}_relu")(x)
        if channel_dropout > 0:
            x = layers.SpatialDropout2D(channel_dropout, name=f"{label}_chdrop")(x)
        return x

    frames = receptive_field(cfg)
    inputs = keras.Input(shape=(frames, 1, cfg["input_bins"]), name="features")
    use_bias = not cfg["batchnorm"]
    first = cfg["first"]
    x = conv_bn_relu(
        inputs,
        layers.Conv2D(
            first["filters"],
            (first["kernel"], 1),
            strides=(first["stride"], 1),
            padding="valid",
            use_bias=use_bias,
            name="conv0",
        ),
        "conv0",
        cfg["channel_dropout"],
        prunable=True,
    )
    for i, b in enumerate(cfg["blocks"], start=1):
        x = conv_bn_relu(
            x,
            layers.DepthwiseConv2D(
                (b["kernel"], 1),
                strides=(b["stride"], 1),
                padding="valid",
                use_bias=use_bias,
                name=f"block{i}_dw",
            ),
            f"block{i}_dw",
        )
        x = conv_bn_relu(
            x,
            layers.Conv2D(
                b["filters"], (1, 1), padding="valid", use_bias=use_bias, name=f"block{i}_pw"
            ),
            f"block{i}_pw",
            cfg["channel_dropout"],
            prunable=True,
        )
    x = layers.Flatten(name="flatten")(x)
    if cfg["dropout"] > 0:
        x = layers.Dropout(cfg["dropout"], name="dropout")(x)
    outputs = layers.Dense(1, name="logit")(x)
    return keras.Model(inputs, outputs, name=name)


def features_to_input(features: np.ndarray) -> np.ndarray:
    """int8 features ``(N, T, 40)`` -> float32 model input ``(N, T, 1, 40)``."""
    features = np.asarray(features)
    if features.dtype != np.int8 or features.ndim != 3:
        raise ValueError(
            f"features must be int8 of shape (N, T, bins), got {features.dtype} {features.shape}"
        )
    return (features.astype(np.float32) * FEATURE_INPUT_SCALE)[:, :, None, :]


def to_tflite_int8(model, representative: np.ndarray) -> bytes:
    """Convert a Keras model from ``build_model`` to a full-integer int8 ``.tflite``.

    ``representative``: int8 array ``(N, T, 40)`` of real features (a few hundred windows
    suffice) used to calibrate activation ranges. One extra copy of the first window, with
    two values set to -128 and 127, makes the input range exactly [-128, 127] *
    FEATURE_INPUT_SCALE, so the int8 input has scale FEATURE_INPUT_SCALE and zero point 0.
    Weights are per-channel int8, biases int32, input and output int8.

    Returns the flatbuffer bytes. Raises ValueError if ``representative`` has the wrong
    dtype/shape or if the converted input quantization is not (FEATURE_INPUT_SCALE, 0).
    """
    import tensorflow as tf

    frames, _, bins = model.input_shape[1:]
    representative = np.asarray(representative)
    if representative.dtype != np.int8:
        raise ValueError(f"representative must be int8, got {representative.dtype}")
    if representative.ndim != 3 or representative.shape[1:] != (frames, bins):
        raise ValueError(
            f"representative must have shape (N, {frames}, {bins}), got {representative.shape}"
        )
    if representative.shape[0] == 0:
        raise ValueError("representative is empty")
    span = representative[:1].copy()
    span[0, 0, 0], span[0, 0, 1] = -128, 127
    calib = features_to_input(np.concatenate([span, representative]))

    def gen():
        for x in calib:
            yield [x[None]]

    import keras

    # A batch-1 clone: with a static batch the converter folds Flatten into one RESHAPE
    # (a dynamic batch leaves SHAPE / STRIDED_SLICE / PACK ops in the graph).
    fixed = keras.models.clone_model(
        model, input_tensors=keras.Input(batch_shape=(1, frames, 1, bins), name="features")
    )
    fixed.set_weights(model.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = gen
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flat = converter.convert()

    interp = tf.lite.Interpreter(model_content=flat)
    scale, zero = interp.get_input_details()[0]["quantization"]
    if scale != FEATURE_INPUT_SCALE or zero != 0:
        raise ValueError(
            f"converted input quantization is (scale {scale}, zero point {zero}), expected "
            f"({FEATURE_INPUT_SCALE}, 0): the features would not be the tflite input"
        )
    return bytes(flat)
