"""Training parts without a training run: distillation targets, mixup, the teacher cache,
noise and streams, SpecAugment, mining, fake quantization and QAT, weight averaging,
the detector choice on validation scores, the architecture's options (earshot.train)."""

import numpy as np
import pytest
from earshot import train
from earshot.train import arch


def test_distill_targets_average_the_teachers():
    y = np.array([0, 1, 1, 0], np.uint8)
    a = np.array([0.0, 50.0, -50.0, 2.0], np.float32)
    b = np.array([0.0, 50.0, 50.0, -2.0], np.float32)
    one, p1 = train.distill_targets(y, [a], 0.5, 1.0)
    assert one.dtype == np.float32
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-a)))
    np.testing.assert_allclose(one, 0.5 * y + 0.5 / (1 + np.exp(-a)), rtol=1e-6)
    two, p2 = train.distill_targets(y, [a, b], 0.5, 1.0)
    np.testing.assert_allclose(p2, [0.5, 1.0, 0.5, 0.5], atol=1e-6)  # sigmoid(2) + sigmoid(-2) = 1
    np.testing.assert_allclose(two, [0.25, 1.0, 0.75, 0.25], atol=1e-6)
    # the temperature softens every teacher before the mean
    _, pt = train.distill_targets(y, [a, b], 0.5, 2.0)
    np.testing.assert_allclose(pt[3], 0.5, atol=1e-6)
    assert pt[0] == 0.5
    with pytest.raises(ValueError, match="at least one teacher"):
        train.distill_targets(y, [], 0.5, 1.0)
    with pytest.raises(ValueError, match="every teacher needs 4 logits"):
        train.distill_targets(y, [a, b[:3]], 0.5, 1.0)


def test_int8_validation_compares_with_the_uint8_cutoff():
    """es_posterior fires when the window sum of uint8 probabilities reaches round(cutoff *
    255) * window: a word held at 247/255 (0.9686) counts at cutoff 0.97 (247.35 -> 247) on
    the int8 model, and not on the float rule (0.9686 < 0.97)."""
    neg = np.zeros(2000, np.float32)
    neg[100] = 0.915  # the lowest cutoff within the budget is 0.92; + margin 0.05 = 0.97
    pos = [np.r_[0.0, np.full(3, 247 / 255), 0.0]] * 4
    det = {"window": 1, "refractory_ms": 1500, "max_fa_per_hour": 0.0, "margin": 0.05}
    on_float = train.choose_detector(pos, [neg], 1.0, det, 6, lambda *_: None)
    on_int8 = train.choose_detector(pos, [neg], 1.0, {**det, "validation_model": "int8"}, 6,
                                    lambda *_: None)
    assert on_float[:4] == (1, 0.97, 0.0, 0)
    assert on_int8[:4] == (1, 0.97, 1.0, 0)


def test_detection_rule_matches_posterior_semantics():
    probs = np.array([0, 0.9, 0.9, 0.9, 0, 0, 0.95, 0.95, 0.95, 0.95], float)
    assert list(train.detections(probs, 0.9, 3, 0)) == [3, 8, 9]
    assert list(train.detections(probs, 0.9, 3, 10)) == [3]
    assert list(train.detections(probs, 0.96, 3, 0)) == []
    assert train.end_row(160) == 0 and train.end_row(161) == 1


def test_broadband_noise_is_at_the_asked_snr():
    """SNR relative to the clip's own RMS, as earshot.evaluate.add_noise measures it."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    x = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for snr in (0.0, 10.0, 20.0):
        y = train.add_broadband_noise(x, snr, rng)
        assert y.dtype == np.int16 and len(y) == len(x)
        noise = y.astype(np.float64) - x
        measured = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))
                                 / np.sqrt(np.mean(noise**2)))
        assert abs(measured - snr) < 0.3


def test_noisy_stream_keeps_every_clip_and_gap():
    clips = [np.full(n, 1000, np.int16) for n in (800, 1600, 2400)]
    s = train.noisy_stream(clips, (10, 10), np.random.default_rng(1), gap=480)
    assert s.dtype == np.int16 and len(s) == 4800 + 3 * 480
    assert np.std(s.astype(np.float64) - 1000 * (s > 500)) > 50  # noise is there, gaps too
    cfg = train.load_config(overrides={"real_negatives": {"noisy_copy_snr_db": [0, 20]},
                                       "detector": {"validation_snr_db": [10]}})
    assert cfg["detector"]["window"] == train.DEFAULT_CONFIG["detector"]["window"]


def test_spec_augment_masks_bands_and_spans_with_the_floor():
    """Each window gets its own masks; a masked band covers every frame, a masked span every
    bin, no wider than allowed; nothing else changes."""
    x = np.random.default_rng(0).integers(-127, 128, size=(400, 93, 40)).astype(np.int8)
    sa = {"freq_masks": 1, "freq_max_bins": 6, "time_masks": 0, "time_max_frames": 8}
    out = train.spec_augment(x, np.random.default_rng(1), sa)
    assert out.dtype == np.int8 and out.shape == x.shape
    assert np.all((out == x) | (out == -128))  # only the floor is written
    masked_bins = np.all(out == -128, axis=1)  # (N, 40): bins masked over all frames
    widths = masked_bins.sum(axis=1)
    assert widths.max() == 6 and widths.min() == 0  # 0..6, both ends drawn in 400 windows
    for row in masked_bins[widths > 0]:  # one contiguous band
        k = np.flatnonzero(row)
        assert k[-1] - k[0] + 1 == len(k)
    assert len({tuple(r) for r in masked_bins[widths == 6]}) > 5  # positions differ per window
    assert np.array_equal(out[~np.broadcast_to(masked_bins[:, None, :], x.shape)],
                          x[~np.broadcast_to(masked_bins[:, None, :], x.shape)])
    sa = {"freq_masks": 0, "freq_max_bins": 6, "time_masks": 2, "time_max_frames": 8}
    out = train.spec_augment(x, np.random.default_rng(2), sa)
    spans = np.all(out == -128, axis=2).sum(axis=1)  # frames masked across every bin
    assert spans.max() <= 16 and spans.max() >= 9  # two spans of up to 8, sometimes disjoint
    again = train.spec_augment(x, np.random.default_rng(2), sa)
    assert np.array_equal(out, again)  # seeded
    off = {"freq_masks": 0, "freq_max_bins": 6, "time_masks": 0, "time_max_frames": 8}
    assert np.array_equal(train.spec_augment(x, np.random.default_rng(3), off), x)
    with pytest.raises(ValueError, match="do not fit"):
        train.spec_augment(x, np.random.default_rng(3), {**sa, "time_max_frames": 94})
    with pytest.raises(ValueError, match="int8"):
        train.spec_augment(x.astype(np.float32), np.random.default_rng(3), sa)


def test_clean_twins_are_the_same_windows_without_the_broadband_noise():
    """distill.clean_targets: the twins align with the windows; a copy without broadband noise
    is its own twin, a noisy one differs; the windows and labels do not change."""
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    clips = [(6000 * np.sin(2 * np.pi * f * t) * np.hanning(8000)).astype(np.int16)
             for f in (300.0, 700.0)]
    cache = {"audio": clips, "end": [8000, 8000]}
    speech = [rng.integers(-3000, 3000, 16000).astype(np.int16)]
    for fraction in (0.0, 1.0):
        cfg = train.load_config(overrides={"broadband_fraction": fraction,
                                           "broadband_snr_db": [5.0, 5.0]})
        ctx = train.Context(speech, cfg)
        xs, ys = train.positive_windows(cache, [0, 1], cfg, 93, ctx, seed=3)
        twins = []
        xs2, ys2 = train.positive_windows(cache, [0, 1], cfg, 93, ctx, seed=3, twins=twins)
        assert all(np.array_equal(a, b) for a, b in zip(xs, xs2, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(ys, ys2, strict=True))
        assert [a.shape for a in twins] == [a.shape for a in xs]
        same = [np.array_equal(a, b) for a, b in zip(xs, twins)]
        assert all(same) if fraction == 0.0 else not any(same)
        if fraction:  # the noise raises the windows' quiet parts (level above the floor)
            x, tw = np.concatenate(xs), np.concatenate(twins)
            assert np.mean(x == -128) < np.mean(tw == -128)
    cfg = train.load_config(overrides={"distill": {"width": 0, "clean_targets": True}})
    with pytest.raises(ValueError, match="clean_targets needs a teacher"):
        train.train(cfg, "/nonexistent/out", log=lambda m: None)


def test_mining_picks_the_top_windows_of_all_streams_batch_by_batch():
    """train.mine cuts candidates one predict batch at a time; the result equals scoring every
    window of every stream at once (the rule it replaced), across stream and batch edges."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    feats = [rng.integers(-128, 128, size=(n, 40)).astype(np.int8) for n in (500, 97, 13000)]

    def model(x, training=False):  # a fixed score: a weighted sum of the bins
        return tf.reduce_sum(x * tf.cast(tf.range(40), tf.float32), axis=[1, 2, 3])[:, None]

    every = np.concatenate([train.windows_ending(f, range(92, len(f), 6), 93) for f in feats])
    assert len(every) > 2048  # more than one batch
    want = every[np.argsort(-train.predict(model, every))[:50]]
    lines = []
    got = train.mine(model, feats, 93, 6, 50, lines.append, "round")
    assert got.dtype == np.int8 and np.array_equal(got, want)
    assert lines == [f"round: {int(np.sum(train.predict(model, every) > 0))} of {len(every)} "
                     "negative outputs above p=0.5; adding the top 50"]


def test_per_channel_fake_quantization_matches_tflite_rule():
    rng = np.random.default_rng(0)
    k = rng.normal(0, 1, (3, 1, 8, 5)).astype(np.float32) * np.array([1, 10, 0.1, 3, 0])
    q = train.quantize_per_channel(k, -1)
    assert q.shape == k.shape and q.dtype == k.dtype
    for c in range(5):
        levels = np.unique(q[..., c])
        scale = np.abs(k[..., c]).max() / 127
        assert len(levels) <= 255
        if scale == 0:
            assert not q[..., c].any()
            continue
        assert np.allclose(np.abs(q[..., c]).max(), np.abs(k[..., c]).max(), rtol=1e-6)
        assert np.abs(q[..., c] - k[..., c]).max() <= scale / 2 * (1 + 1e-5)
        assert np.allclose(q[..., c] / scale, np.round(q[..., c] / scale), atol=1e-3)


def test_weight_qat_is_a_straight_through_step():
    """With learning rate 0 the float weights come back unchanged (not snapped to the grid);
    with a real step they move, and the loss the optimizer saw was the quantized one."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0,
              callbacks=[train.weight_qat_callback(model)])
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    kernel = model.layers[0].kernel.numpy()
    assert not np.array_equal(kernel, train.quantize_per_channel(kernel, -1))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0,
              callbacks=[train.weight_qat_callback(model)])
    assert not np.array_equal(model.layers[0].kernel.numpy(), kernel)


@pytest.mark.slow
def test_weight_average_ends_on_the_moving_average_with_its_batchnorm_statistics():
    """fit_model with ema: the model ends on the optimizer's moving average of the weights, not
    on the last step's; refresh_batchnorm then sets each BatchNorm's moving mean to the mean
    over its batches of the batch means (the cumulative average), and restores momentum."""
    import keras

    keras.utils.set_random_seed(0)
    frames = arch.receptive_field()
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(96, frames, 40)).astype(np.int8)
    y = (rng.random(96) > 0.5).astype(np.float32)
    cfg = train.load_config(overrides={"batch_size": 32,
                                       "weight_average": {"momentum": 0.5, "bn_batches": 2}})
    plain, averaged = arch.build_model(), arch.build_model()
    averaged.set_weights(plain.get_weights())
    train.fit_model(plain, x, y, np.ones(96, np.float32), cfg, 2, 0.01, lambda m: None, 1)
    train.fit_model(averaged, x, y, np.ones(96, np.float32), cfg, 2, 0.01, lambda m: None, 1,
               ema=0.5)
    ema = [v.numpy() for v in averaged.optimizer._model_variables_moving_average]
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(ema, averaged.trainable_weights))
    # the same seeds and steps: the last step's weights are the plain run's, the average not
    assert not all(np.allclose(a, v.numpy()) for a, v in zip(ema, plain.trainable_weights))

    # refresh_batchnorm alone, on a model whose first BatchNorm sees known inputs
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    bn = model.layers[0]
    x3 = np.random.default_rng(2).normal(5.0, 2.0, size=(40, 3)).astype(np.float32)

    class Net:  # refresh_batchnorm's model interface, with features_to_input left out
        layers = model.layers

        def __call__(self, xb, training):
            return model(xb, training=training)

    from unittest import mock

    with mock.patch("earshot.train.arch.features_to_input", lambda f: f):
        train.refresh_batchnorm(Net(), x3, 4, 10, 0)
    sel_rng = np.random.default_rng([0, 77])
    means = [x3[np.sort(sel_rng.choice(40, 10, replace=False))].mean(0) for _ in range(4)]
    assert np.allclose(bn.moving_mean.numpy(), np.mean(means, axis=0), atol=1e-5)
    assert bn.momentum == 0.99
    assert np.all(np.abs(bn.moving_mean.numpy() - 5.0) < 1.5)  # was 0 before


@pytest.mark.slow
def test_training_accuracy_rounds_soft_targets():
    """The logged accuracy counts a logit > 0 against a target > 0.5, so a distilled
    student's soft targets (never exactly 0 or 1) do not read as 0 % accuracy."""
    y = np.array([0.9, 0.6, 0.4, 0.05, 1.0, 0.0], np.float32)
    logit = np.array([2.0, -0.5, -1.0, 0.3, 0.1, -4.0], np.float32)
    got = np.asarray(train.rounded_accuracy(y, logit))
    assert got.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    # as fit calls it: targets (n,), the model's logits (n, 1), weighted per window
    import keras

    w = np.array([1.0, 3.0, 1.0, 1.0, 2.0, 1.0], np.float32)
    metric = keras.metrics.MeanMetricWrapper(train.rounded_accuracy)
    metric.update_state(y, logit[:, None], sample_weight=w)
    assert float(metric.result()) == pytest.approx((1 + 1 + 2 + 1) / w.sum())
    # a model compiled with the metric still clones for the int8 conversion
    from earshot.train import arch

    lines = []
    model = arch.build_model(arch.DEFAULT_ARCH)
    frames = arch.receptive_field(arch.DEFAULT_ARCH)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (64, frames, 40)).astype(np.int8)
    soft = rng.uniform(0.1, 0.9, 64).astype(np.float32)
    train.fit_model(model, x, soft, np.ones(64, np.float32), train.load_config(), 1, 0.003,
               lines.append, 0)
    acc = float(lines[-1].split(" acc ")[1])
    assert 0.0 < acc <= 1.0
    assert arch.to_tflite_int8(model, x[:8])[4:8] == b"TFL3"


def test_mixup_matches_the_teachers_on_the_mixed_inputs():
    """``mix_batch``: the chosen rows become convex mixtures of two different rows of the
    batch, with the teachers' mean probability on exactly that input as the target and the
    mixed weight; the other rows are untouched; fraction 0 changes nothing, 1 every row."""
    import keras

    class Mean(keras.Model):  # a "teacher" whose logit is 4 * the input's mean
        def call(self, z, training=False):
            return 4.0 * keras.ops.mean(z, axis=(1, 2, 3))[:, None]

    class Neg(Mean):
        def call(self, z, training=False):
            return -super().call(z, training)

    rng = np.random.default_rng(0)
    n = 64
    xin = rng.normal(size=(n, 5, 1, 40)).astype(np.float32)
    y = (rng.random(n) > 0.5).astype(np.float32)
    w = rng.uniform(1.0, 3.0, n).astype(np.float32)
    x2, y2, w2 = train.mix_batch(xin, y, w, 0.5, [Mean()], 2.0, np.random.default_rng(1))
    changed = np.flatnonzero(np.any(x2 != xin, axis=(1, 2, 3)))
    assert 16 <= len(changed) <= 48  # about half
    same = np.setdiff1d(np.arange(n), changed)
    assert np.array_equal(y2[same], y[same]) and np.array_equal(w2[same], w[same])
    flat = xin.reshape(n, -1)
    for r in changed:  # a mixture of row r and exactly one other row o, lam in [0, 1]
        fits = []
        for o in range(n):
            d = flat[o] - flat[r]
            t = ((x2[r].ravel() - flat[r]) @ d) / (d @ d)
            if o != r and np.allclose(x2[r].ravel(), flat[r] + t * d, atol=1e-5):
                fits.append((o, t))
        assert len(fits) == 1, r
        o, t = fits[0]
        assert 0.0 <= t <= 1.0
        assert np.isclose(w2[r], (1 - t) * w[r] + t * w[o], atol=1e-4)
        p = 1.0 / (1.0 + np.exp(-4.0 * x2[r].mean() / 2.0))  # temperature 2
        assert np.isclose(y2[r], p, atol=1e-5)
    # two teachers: the mean of their probabilities (here exactly 0.5)
    _, y3, _ = train.mix_batch(xin, y, w, 1.0, [Mean(), Neg()], 1.0, np.random.default_rng(1))
    assert np.allclose(y3, 0.5, atol=1e-6)
    x0, y0, w0 = train.mix_batch(xin, y, w, 0.0, [Mean()], 1.0, np.random.default_rng(1))
    assert np.array_equal(x0, xin) and np.array_equal(y0, y) and np.array_equal(w0, w)
    assert not np.shares_memory(x2, xin)  # the caller's batch is not written to
    with pytest.raises(ValueError, match="mixup fraction"):
        train.mix_batch(xin, y, w, 1.5, [Mean()], 1.0, rng)
    with pytest.raises(ValueError, match="at least one teacher"):
        train.mix_batch(xin, y, w, 0.5, [], 1.0, rng)


def test_teacher_cache_key_and_a_damaged_cache(tmp_path):
    """The key ignores the students' keys and follows the teachers' config and the data; a
    damaged or missing cache file is reported and reads as None (the run trains again)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(20, 5, 40)).astype(np.int8)
    y = (rng.random(20) > 0.5).astype(np.uint8)
    w = np.ones(20, np.float32)
    cfg = train.load_config(overrides={"train_seed": 3, "distill": {"width": 2}})
    key = train.teacher_cache_key(cfg, x, y, w)
    for students_only in ({"distill": {"students": 4, "student_mining": 1}},
                          {"distill": {"first_student": 4, "student_epochs": 30}},
                          {"distill": {"mixup": 0.5}},
                          {"weight_average": {"momentum": 0.99}}, {"qat": {"epochs": 2}},
                          {"detector": {"window": 3}}):
        other = train.load_config(overrides={"train_seed": 3, "distill": {"width": 2}})
        for k, v in students_only.items():
            other[k].update(v)
        assert train.teacher_cache_key(other, x, y, w) == key, students_only
    for teachers_too in ({"train_seed": 4}, {"epochs": 3}, {"distill": {"width": 3}}):
        other = train.load_config(overrides={"train_seed": 3, "distill": {"width": 2}})
        for k, v in teachers_too.items():
            other[k] = {**other[k], **v} if isinstance(v, dict) else v
        assert train.teacher_cache_key(other, x, y, w) != key, teachers_too
    x2 = x.copy()
    x2[0, 0, 0] ^= 1
    assert train.teacher_cache_key(cfg, x2, y, w) != key

    import keras

    keras.utils.set_random_seed(0)

    def build(k):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                 keras.layers.BatchNormalization(), keras.layers.Dense(1)])

    saved = [build(0), build(1)]
    path = tmp_path / "teachers" / "t.npz"
    train.save_teachers(path, saved, x[:3], y[:3], w[:3])
    assert [p.name for p in path.parent.iterdir()] == ["t.npz"]  # no temporary file left
    logs = []
    teachers, xa, ya, wa = train.load_teachers(path, build, logs.append)
    assert not logs and np.array_equal(xa, x[:3]) and ya.dtype == np.uint8
    for a, b in zip(saved, teachers):
        assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    assert train.load_teachers(tmp_path / "absent.npz", build, logs.append) is None
    assert not logs  # a missing file is the usual first run, not a problem
    path.write_bytes(path.read_bytes()[:100])
    assert train.load_teachers(path, build, logs.append) is None
    assert len(logs) == 1 and str(path) in logs[0] and "training again" in logs[0]
    train.save_teachers(path, saved, x[:3], y[:3], w[:3])
    wider = lambda k: keras.Sequential([keras.Input((4,)), keras.layers.Dense(5),  # noqa: E731
                                        keras.layers.BatchNormalization(),
                                        keras.layers.Dense(1)])
    assert train.load_teachers(path, wider, logs.append) is None  # another layout
    assert len(logs) == 2 and "ValueError" in logs[1]


def test_train_seed_sets_the_initial_weights():
    """seed_init: the same train_seed builds the same weights, another seed other weights;
    a config without train_seed leaves the random state alone."""
    import keras

    def weights(cfg, seed):
        train.seed_init(cfg, seed)
        return np.concatenate([w.ravel() for w in arch.build_model().get_weights()])

    cfg = train.load_config(overrides={"train_seed": 3})
    a, b, c = weights(cfg, 3), weights(cfg, 3), weights(cfg, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    keras.utils.set_random_seed(3)
    plain = train.load_config()
    assert np.array_equal(weights(plain, 99), a)  # 99 ignored: the process's seed 3 decided


def test_teacher_arch_widens_and_sets_its_own_channel_dropout():
    student = dict(arch.DEFAULT_ARCH, channel_dropout=0.2)
    t = train.teacher_arch(student, 2)
    assert t["first"]["filters"] == 2 * student["first"]["filters"]
    assert [b["filters"] for b in t["blocks"]] == [2 * b["filters"] for b in student["blocks"]]
    assert t["channel_dropout"] == 0.2 and student["blocks"][0]["filters"] == 32
    assert train.teacher_arch(student, 2, 0.0)["channel_dropout"] == 0.0
    assert train.teacher_arch(dict(student, slimming=1e-4), 2)["slimming"] == 0.0


def test_slimming_weighs_the_scales_of_the_prunable_channels_only():
    """arch.slimming puts an L1 penalty on the BatchNorm scales after conv0 and the pointwise
    layers (the channel groups on-device pruning removes), not after the depthwise ones."""
    import keras

    cfg = dict(arch.DEFAULT_ARCH, slimming=1e-3)
    m = arch.build_model(cfg)
    weighed = {ly.name for ly in m.layers
               if isinstance(ly, keras.layers.BatchNormalization) and ly.gamma_regularizer}
    assert weighed == {"conv0_bn"} | {f"block{i}_pw_bn" for i in range(1, 5)}
    # Scales start at 1, so the penalty is slimming x the number of prunable channels.
    n = cfg["first"]["filters"] + sum(b["filters"] for b in cfg["blocks"])
    assert float(sum(m.losses)) == pytest.approx(1e-3 * n, rel=1e-5)
    assert not arch.build_model(arch.DEFAULT_ARCH).losses
    with pytest.raises(ValueError, match="slimming must be in"):
        arch.build_model(dict(arch.DEFAULT_ARCH, slimming=-1))
    with pytest.raises(ValueError, match="slimming needs batchnorm"):
        arch.build_model(dict(arch.DEFAULT_ARCH, slimming=1e-4, batchnorm=False))


def test_choose_detector_takes_the_window_with_the_best_validation_recall():
    """One-output spikes of 0.905 in the negatives force a window of 1 above 0.9, where words
    held at 0.8 for 5 outputs are lost; a window of 3 averages the spikes to 0.3."""
    neg = np.zeros(2000, np.float32)
    neg[100::300] = 0.905
    pos = [np.r_[np.zeros(4), np.full(5, 0.8), np.zeros(3)].astype(np.float32)] * 10
    det = {"window": [1, 3, 4], "refractory_ms": 1500, "max_fa_per_hour": 0.0, "margin": 0.05}
    window, cutoff, recall, fa, rows = train.choose_detector(pos, [neg], 1.0, det, 6,
                                                            lambda *_: None)
    by_window = {r["window"]: r for r in rows}
    assert by_window[1]["cutoff"] == 0.96 and by_window[1]["recall"] == 0.0
    assert by_window[3]["cutoff"] == 0.55 and by_window[3]["recall"] == 1.0
    assert by_window[4]["recall"] == 1.0  # a tie with 3: the shorter window wins
    assert (window, cutoff, recall, fa) == (3, 0.55, 1.0, 0)
    one = train.choose_detector(pos, [neg], 1.0, {**det, "window": 1}, 6, lambda *_: None)
    assert one[:4] == (1, 0.96, 0.0, 0) and len(one[4]) == 1


def test_choose_detector_prefers_a_window_within_the_false_accept_budget():
    """Full-scale one-output spikes in the negatives keep a window of 1 over the budget even at
    the 0.99 cap, where it still detects every word; a window of 3 meets the budget and loses
    the words that peak for one output only. Meeting the budget comes first."""
    neg = np.zeros(2000, np.float32)
    neg[100::300] = 1.0
    short = np.r_[np.zeros(4), 1.0, np.zeros(4)].astype(np.float32)
    held = np.r_[np.zeros(4), np.ones(3), np.zeros(2)].astype(np.float32)
    pos = [short, held] * 5
    det = {"window": [1, 3], "refractory_ms": 1500, "max_fa_per_hour": 0.0, "margin": 0.05}
    window, cutoff, recall, fa, rows = train.choose_detector(pos, [neg], 1.0, det, 6,
                                                            lambda *_: None)
    by_window = {r["window"]: r for r in rows}
    assert by_window[1] == {"window": 1, "cutoff": 0.99, "recall": 1.0, "false_accepts": 7,
                            "within_budget": False}
    assert by_window[3]["within_budget"] and by_window[3]["recall"] == 0.5
    assert (window, recall, fa) == (3, 0.5, 0)
    assert train.validation_rank({"validation_within_budget": True, "validation_recall": 0.5,
                                  "validation_false_accepts": 0, "cutoff": 0.4}) > \
        train.validation_rank({"validation_within_budget": False, "validation_recall": 1.0,
                               "validation_false_accepts": 7, "cutoff": 0.99})


@pytest.mark.parametrize("bad", [0, 33, [], [3, 40], 2.5, True, "3"])
def test_detector_window_outside_the_core_limits_is_refused(bad):
    with pytest.raises(ValueError, match="detector.window"):
        train.detector_windows({"window": bad})


@pytest.mark.slow
def test_strided_depthwise_trains_on_any_x86_cpu():
    # TensorFlow's own DepthwiseConv2D kernel has no gradient for a (2, 1) stride; importing
    # earshot asks for oneDNN's, which TensorFlow leaves off on some CPUs (an AMD EPYC here).
    # A fresh interpreter, as the CLI: without the request this step raised
    # InvalidArgumentError ("only supports equal length strides") on that machine.
    import os
    import subprocess
    import sys

    code = (
        "import earshot, os, numpy as np, keras\n"
        "from earshot.train import arch\n"
        "assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '1'\n"
        "m = arch.build_model(arch.DEFAULT_ARCH)\n"
        "m.compile('adam', 'mse')\n"
        "x = np.zeros((4, *m.input_shape[1:]), np.float32)\n"
        "m.fit(x, np.zeros((4, *m.output_shape[1:]), np.float32), verbose=0)\n"
        "print('trained')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "trained" in res.stdout, res.stderr[-2000:]


def test_band_limited_broadband_noise_is_off_by_default_and_puts_power_in_its_band():
    """broadband_bands p 0 draws nothing more (same noise as before the key existed); p 1
    puts nearly all the noise's power below the low-pass corner or above the high-pass one."""
    from earshot.train import augmentation as aug

    x = (np.sin(np.arange(16000) / 7) * 2000).astype(np.int16)
    plain = aug.add_broadband_noise(x, 10.0, np.random.default_rng(5))
    off = aug.add_broadband_noise(x, 10.0, np.random.default_rng(5), dict(aug.BANDS))
    assert np.array_equal(plain, off)
    f = np.fft.rfftfreq(16000, 1 / 16000)
    lows = highs = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        bands = {"p": 1.0, "low_hz": (1000.0, 1000.0), "high_hz": (5000.0, 5000.0)}
        n = aug.band_limit(rng.standard_normal(16000), rng, bands)
        assert abs(np.sqrt(np.mean(n**2)) - 1) < 1e-9
        s = np.abs(np.fft.rfft(n)) ** 2
        if s[f < 1300].sum() / s.sum() > 0.97:
            lows += 1
        elif s[f > 4000].sum() / s.sum() > 0.97:
            highs += 1
    assert lows + highs == 12 and lows and highs
