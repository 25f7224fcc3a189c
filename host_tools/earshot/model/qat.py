"""Quantization-aware fine-tuning of a dequantized layer chain (TensorFlow).

The network is the chain of :class:`earshot.model.quantize.FloatLayer` written with plain
TensorFlow ops in the .tflite's layout (NHWC, W = 1): each layer's weights pass through a
per-channel symmetric fake quantizer at its width (8 or 4 bits, ``max |w| / qmax``, the
straight-through estimator for the rounding), and each output through the layer's own int8
quantizer (its calibrated scale, zero point and clamp), so training sees the rounding the
device does. The activation quantization is kept fixed: the fine-tuned weights drop into the
same .tflite (:func:`earshot.model.quantize.export`).
"""

from __future__ import annotations

import numpy as np

from earshot.model.quantize import QMAX, FloatLayer


def _tf(threads: int):
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised by the caller
    return tf


def _forward(tf, layers, bits, variables, x):
    """Logits (float, (n,)) of int8 windows ``x`` (n, frames, 40) as float32."""
    h = x[:, :, None, :] * np.float32(layers[0].in_scale)
    for lay, nb, (w, b) in zip(layers, bits, variables):
        qmax = float(QMAX[nb])
        other = [a for a in range(len(lay.w.shape)) if a != lay.axis]
        scale = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(w), axis=other, keepdims=True)
                                            / qmax, 1e-9))
        wq = w + tf.stop_gradient(tf.clip_by_value(tf.round(w / scale), -qmax, qmax) * scale - w)
        if lay.op == "CONV_2D":
            h = tf.nn.conv2d(h, tf.transpose(wq, [1, 2, 3, 0]), [1, lay.stride, 1, 1], "VALID")
        elif lay.op == "DEPTHWISE_CONV_2D":
            h = tf.nn.depthwise_conv2d(h, tf.transpose(wq, [1, 2, 3, 0]),
                                       [1, lay.stride, 1, 1], "VALID")
        else:
            flat = tf.reshape(h, [tf.shape(h)[0], -1])
            h = tf.reshape(tf.matmul(flat, wq, transpose_b=True), [tf.shape(h)[0], 1, 1, -1])
        h = h + b
        s, zp = np.float32(lay.out_scale), np.float32(lay.out_zp)
        lo, hi = (lay.act_min - zp) * s, (lay.act_max - zp) * s
        clipped = tf.clip_by_value(h, lo, hi)
        h = clipped + tf.stop_gradient(tf.round(clipped / s) * s - clipped)
    return tf.reshape(h, [-1])


def fine_tune(layers: list[FloatLayer], bits: list[int], x: np.ndarray, y: np.ndarray,
              epochs: int, *, lr: float = 1e-4, batch: int = 256, seed: int = 0,
              threads: int = 2, log=print) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fine-tune ``layers`` at ``bits`` on int8 windows ``x`` towards targets ``y`` (0..1:
    labels, or the int8 model's own probabilities, which keeps its calibration at the
    package's cutoff) for ``epochs`` epochs (Adam, ``lr``, cross-entropy). Returns the float
    (w, b) of every layer, in :class:`FloatLayer` layout. ``epochs`` 0 returns them as they
    are."""
    if epochs <= 0:
        return [(lay.w, lay.b) for lay in layers]
    tf = _tf(threads)
    tf.random.set_seed(seed)
    variables = [(tf.Variable(lay.w), tf.Variable(lay.b)) for lay in layers]
    trainable = [v for pair in variables for v in pair]
    opt = tf.keras.optimizers.Adam(lr)
    weight = np.ones(len(y), np.float32)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            logit = _forward(tf, layers, bits, variables, xb)
            loss = tf.reduce_mean(wb * tf.nn.sigmoid_cross_entropy_with_logits(yb, logit))
        opt.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
        return loss

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(y))
        losses = []
        for k in range(0, len(order), batch):
            idx = np.sort(order[k:k + batch])
            losses.append(float(step(x[idx].astype(np.float32), y[idx].astype(np.float32),
                                     weight[idx])))
        log(f"qat epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}")
    return [(w.numpy(), b.numpy()) for w, b in variables]
