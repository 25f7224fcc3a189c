"""Fitting a Keras model on training windows: batches, SpecAugment, weight averaging, QAT.

:func:`fit_model` is the one fit every stage uses (teachers, students, mining rounds,
quantization-aware fine-tuning): Adam with a cosine decay, binary cross-entropy on the logit,
a fresh shuffle per epoch, SpecAugment masks (:func:`spec_augment`) and, for a distilled
student, function matching with mixup (``mix``: :func:`earshot.train.distill.mixer`) as each
batch is drawn. Config keys: ``batch_size``, ``spec_augment``, ``weight_average``, ``qat``,
``distill.mixup``.

Keras (and so TensorFlow) is imported inside the functions that need it, never at module
level: :func:`earshot.train.pipeline.train` sets TensorFlow's thread pools before its first
import, and ``earshot.train``'s light modules stay importable without it.
"""

from __future__ import annotations

import numpy as np

from earshot.train import arch


def seed_init(cfg: dict, seed: int) -> None:
    """Seed Keras before a model is built, so its initial weights follow ``train_seed``; a
    config without train_seed keeps the process's random state (earlier runs unchanged)."""
    if cfg["train_seed"] is not None:
        import keras  # lazy: see the module docstring

        keras.utils.set_random_seed(seed)


def spec_augment(x: np.ndarray, rng: np.random.Generator, sa: dict) -> np.ndarray:
    """SpecAugment masks on a batch of int8 feature windows ``x`` (N, T, bins): a masked copy.

    Each window gets its own ``sa["freq_masks"]`` bands of w ~ U{0..freq_max_bins} adjacent
    bins starting at f0 ~ U{0..bins - w}, and ``sa["time_masks"]`` spans of t ~
    U{0..time_max_frames} frames starting at t0 ~ U{0..T - t}, all set to -128 (Park et al.
    2019, section 2, masks F and T; the masked value is the features' floor, not a mean).
    Raises ValueError when a mask can be wider than the window or x is not (N, T, bins) int8.
    """
    if x.dtype != np.int8 or x.ndim != 3:
        raise ValueError(f"spec_augment: int8 (N, T, bins) windows, got {x.dtype} {x.shape}")
    n, frames, bins = x.shape
    out = x.copy()
    for axis, count, widest in ((2, sa["freq_masks"], sa["freq_max_bins"]),
                                (1, sa["time_masks"], sa["time_max_frames"])):
        size = bins if axis == 2 else frames
        if int(count) < 0 or not 0 <= int(widest) <= size:
            raise ValueError(f"spec_augment: masks {count} of up to {widest} "
                             f"{'bins' if axis == 2 else 'frames'} do not fit in {size}")
        pos = np.arange(size)
        for _ in range(int(count)):
            width = rng.integers(0, int(widest) + 1, size=n)
            start = (rng.random(n) * (size - width + 1)).astype(np.int64)
            hit = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (n, size)
            if axis == 2:
                out[np.broadcast_to(hit[:, None, :], out.shape)] = -128
            else:
                out[np.broadcast_to(hit[:, :, None], out.shape)] = -128
    return out


def weight_average(cfg: dict) -> tuple[float, int]:
    """``cfg["weight_average"]`` checked: (momentum in [0, 1), bn_batches >= 1). ValueError
    names the bad key."""
    wa = cfg["weight_average"]
    m, nb = wa["momentum"], wa["bn_batches"]
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m < 1.0:
        raise ValueError(f"config: weight_average.momentum must be a number in [0, 1), got {m!r}")
    if isinstance(nb, bool) or not isinstance(nb, int) or nb < 1:
        raise ValueError(f"config: weight_average.bn_batches must be an int >= 1, got {nb!r}")
    return float(m), nb


def refresh_batchnorm(model, x: np.ndarray, batches: int, batch: int, seed: int) -> None:
    """Estimate BatchNorm's moving mean and variance again for ``model``'s current weights:
    ``batches`` forward passes in training mode over random batches of ``batch`` windows of
    ``x`` (int8 (n, frames, 40) features), every BatchNormalization layer's momentum set to
    (k - 1) / k at pass k so the statistics end as the plain mean over the passes (the
    cumulative average of SWA's bn_update), then restored. Trainable weights do not change.
    """
    import keras  # lazy: see the module docstring

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [layer.momentum for layer in bns]
    rng = np.random.default_rng([seed, 77])
    try:
        for k in range(1, batches + 1):
            for layer in bns:
                layer.momentum = (k - 1) / k
            sel = np.sort(rng.choice(len(x), size=min(batch, len(x)), replace=False))
            model(arch.features_to_input(x[sel]), training=True)
    finally:
        for layer, m in zip(bns, saved):
            layer.momentum = m


def rounded_accuracy(y_true, logit):
    """Keras metric: per window, 1.0 when its logit > 0 agrees with its target > 0.5 (hard
    labels and soft distillation targets alike), else 0.0. ``y_true`` (n,) or (n, 1),
    ``logit`` (n, 1) as the model outputs it; returns float32 (n,), one value per window, so
    the sample weights line up (without flattening, (n,) against (n, 1) would broadcast to
    (n, n))."""
    import keras  # lazy: see the module docstring

    ops = keras.ops
    y_true, logit = ops.reshape(y_true, (-1,)), ops.reshape(logit, (-1,))
    return ops.cast(ops.equal(y_true > 0.5, logit > 0.0), "float32")


def _compile(model, lr: float, steps: int, ema: float) -> None:
    """Compile ``model`` for :func:`fit_model`: Adam on a cosine decay from ``lr`` over
    ``steps`` batches (with a moving average of the weights when ``ema`` > 0), binary
    cross-entropy on the logit, :func:`rounded_accuracy` logged as "accuracy"."""
    import keras  # lazy: see the module docstring

    # by name, so a clone of the compiled model (arch.to_tflite_int8) finds the metric
    keras.saving.get_custom_objects()[rounded_accuracy.__name__] = rounded_accuracy
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps),
            **({"use_ema": True, "ema_momentum": float(ema)} if ema else {}),
        ),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        # accuracy against the targets rounded at 0.5: a distilled student's soft targets
        # never equal 0 or 1, so BinaryAccuracy (which rounds only the prediction) reads 0
        metrics=[keras.metrics.MeanMetricWrapper(rounded_accuracy, name="accuracy")],
    )


def _batches(x, y, w, cfg: dict, seed: int, mix):
    """The batches of one fit as a ``keras.utils.PyDataset``: ``cfg["batch_size"]`` windows
    of ``x`` (int8 (n, frames, 40)) in an order drawn from ``default_rng(seed)`` again each
    epoch, masked by :func:`spec_augment` (its own stream ``[seed, 99]``, so shuffling does
    not depend on it) and, unless ``mix`` is None, passed through ``mix(xin, y, w, rng)``
    (:func:`earshot.train.distill.mixer`; stream ``[seed, 98]``). Each item is (float32
    model input (b, frames, 1, 40), float32 targets (b,), float32 weights (b,))."""
    import keras  # lazy: see the module docstring

    batch = cfg["batch_size"]
    rng = np.random.default_rng(seed)
    sa = cfg["spec_augment"]
    masking = bool(int(sa["freq_masks"]) or int(sa["time_masks"]))
    mask_rng = np.random.default_rng([seed, 99])  # its own stream: shuffling is unchanged
    mix_rng = np.random.default_rng([seed, 98])

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = rng.permutation(len(x))

        def __len__(self):
            return (len(x) + batch - 1) // batch

        def __getitem__(self, k):
            sel = np.sort(self.order[k * batch : (k + 1) * batch])
            xb = spec_augment(x[sel], mask_rng, sa) if masking else x[sel]
            xin, yb, wb = arch.features_to_input(xb), y[sel].astype(np.float32), w[sel]
            if mix is not None:
                xin, yb, wb = mix(xin, yb, wb, mix_rng)
            return xin, yb, wb

        def on_epoch_end(self):
            self.order = rng.permutation(len(x))

    return Batches()


def _epoch_log(log, epochs: int):
    """A Keras callback that logs each epoch's loss and accuracy through ``log``."""
    import keras  # lazy: see the module docstring

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log(f"  epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f} acc "
                f"{logs['accuracy']:.4f}")

    return EpochLog()


def fit_model(model, x, y, w, cfg, epochs, lr, log, seed, callbacks=(), ema=0.0,
              mix=None) -> None:
    """Fit ``model`` on windows ``x`` (int8 (n, frames, 40)), targets ``y`` and weights ``w``
    for ``epochs`` with Adam and a cosine decay from ``lr`` (:func:`_compile`), the Keras
    random state seeded with ``seed`` and the batches of :func:`_batches`. ``ema`` > 0: keep
    the moving average of the trainable weights with that momentum, end with it, then
    :func:`refresh_batchnorm` (``cfg["weight_average"]["bn_batches"]`` batches).
    ``mix`` (a distilled student's with ``distill.mixup`` > 0,
    :func:`earshot.train.distill.mixer`): every batch goes through it."""
    import keras  # lazy: see the module docstring

    keras.utils.set_random_seed(seed)
    _compile(model, lr, max(1, epochs * (len(x) // cfg["batch_size"] + 1)), ema)
    data = _batches(x, y, w, cfg, seed, mix)
    model.fit(data, epochs=epochs, verbose=0, callbacks=[_epoch_log(log, epochs), *callbacks])
    if ema:  # fit ended on the averaged weights (Keras's finalize_variable_values)
        refresh_batchnorm(model, x, int(cfg["weight_average"]["bn_batches"]),
                          cfg["batch_size"], seed)
        log(f"  weights: moving average (momentum {ema}), BatchNorm statistics estimated again")


def quantize_per_channel(kernel: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel int8 fake quantization of a float kernel, as the TFLite
    converter quantizes weights (scale = max|w| / 127 per channel along ``axis``, values
    rounded to -127..127, zero point 0), returned in float: same shape and dtype.
    Folding a BatchNorm multiplies a channel by one factor, which moves its scale but not
    its grid, so quantizing before the fold is exact."""
    k = np.asarray(kernel)
    other = tuple(a for a in range(k.ndim) if a != axis % k.ndim)
    scale = np.max(np.abs(k), axis=other, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(k / scale), -127, 127) * scale).astype(k.dtype)


def weight_qat_callback(model):
    """A Keras callback for quantization-aware training of the weights (straight-through
    estimator; Jacob et al., "Quantization and training of neural networks for efficient
    integer-arithmetic-only inference", CVPR 2018): before each batch every conv, depthwise
    and dense kernel is replaced by its int8 fake quantization Q(w); after the optimizer's
    step (computed at Q(w)), the float kernel becomes w + (step result - Q(w)). Activations
    are not fake-quantized (the converter calibrates them afterwards)."""
    import keras  # lazy: see the module docstring

    targets = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        # Per output channel: the last axis for Conv2D / Dense, the input-channel axis for
        # DepthwiseConv2D (kernel (kh, kw, channels, multiplier 1)).
        axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else -1
        targets.append((kernel, axis))

    class WeightQAT(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.saved = []
            for var, axis in targets:
                w = var.numpy()
                q = quantize_per_channel(w, axis)
                self.saved.append((w, q))
                var.assign(q)

        def on_train_batch_end(self, batch, logs=None):
            for (var, _), (w, q) in zip(targets, self.saved):
                var.assign(w + (var.numpy() - q))

    return WeightQAT()
