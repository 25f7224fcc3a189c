"""The core's input normalisation (es_norm.c) and its use by the detector and blob format.

The rule is restated in NumPy from the comment at the top of es_norm.c and compared bit for
bit; the detector test shows a model with input_norm sees exactly ``core.model_features``.
"""

import numpy as np
import pytest
from earshot import blob, core
from earshot.model import Engine, Model

PRIME = 3  # ES_VAD_PRIME_HOPS = ceil(480 / 160)
MIN_FLOOR = -112  # ES_NORM_MIN_FLOOR


def reference(x: np.ndarray, up_shift: int) -> np.ndarray:
    """es_norm.c's rule, as its header comment states it."""
    floor = np.zeros(x.shape[1], np.int64)
    out = np.empty_like(x)
    for h, row in enumerate(x.astype(np.int64)):
        if h < PRIME:
            floor = np.maximum(row * 16, MIN_FLOOR * 16)
        d = row * 16 - floor
        out[h] = np.clip(np.floor_divide(d + 8, 16) - 128, -128, 127).astype(np.int8)
        out[h][d < 0] = -128
        step = np.where(d < 0, np.floor_divide(d, 2), np.floor_divide(d, 2**up_shift))
        floor = np.maximum(floor + step, MIN_FLOOR * 16)
    return out


@pytest.mark.parametrize("up_shift", [1, 5, 7, 15])
def test_matches_reference_bit_for_bit(up_shift):
    rng = np.random.default_rng(up_shift)
    # Random walks over the whole int8 range, with jumps, so every branch is taken.
    x = np.clip(np.cumsum(rng.integers(-12, 13, (3000, 40)), axis=0) % 300 - 150,
                -128, 127).astype(np.int8)
    x[100:110] = -128
    x[200:210] = 127
    assert np.array_equal(core.normalize(x, up_shift), reference(x, up_shift))


def test_stationary_noise_reads_as_a_small_excess_at_any_level():
    """White noise at two levels 24 dB apart: after the floors settle, the normalised
    features agree to within a step on average, while the log-mel differ by 64 steps."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000 * 6)
    quiet = core.features(np.round(noise * 300).astype(np.int16))[300:]
    loud = core.features(np.round(noise * 300 * 16).astype(np.int16))[300:]
    assert abs(float(loud.mean()) - float(quiet.mean()) - 64) < 2  # 8 steps per octave
    nq = core.normalize(core.features(np.round(noise * 300).astype(np.int16)), 7)[300:]
    nl = core.normalize(core.features(np.round(noise * 300 * 16).astype(np.int16)), 7)[300:]
    assert abs(float(nq.mean()) - float(nl.mean())) < 1.0
    # Noise alone sits near the floor: well below the level of speech above it.
    assert nq.mean() < -100


def test_speech_rises_above_the_floor():
    rng = np.random.default_rng(1)
    noise = np.round(rng.standard_normal(16000 * 4) * 200).astype(np.int16)
    t = np.arange(8000) / 16000
    tone = np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    x = noise.copy()
    x[16000 * 3 : 16000 * 3 + 8000] += tone
    n = core.normalize(core.features(x), 7)
    assert n[310:340].max() > 0  # the tone's bins, 40+ dB above the noise floor
    assert n[250:295].max() < -60  # noise alone before it


def test_bad_arguments_are_refused():
    f = np.zeros((10, 40), np.int8)
    for bad in (0, 16):
        with pytest.raises(ValueError, match="up_shift"):
            core.normalize(f, bad)
    with pytest.raises(ValueError, match="int8"):
        core.normalize(f.astype(np.int16), 7)
    with pytest.raises(ValueError, match="int8"):
        core.normalize(np.zeros((10, 39), np.int8), 7)
    assert core.normalize(np.zeros((0, 40), np.int8), 7).shape == (0, 40)


def test_blob_round_trip_and_version():
    plain = blob.random_model(seed=3)
    normed = blob.random_model(seed=3, input_norm=7)
    assert blob.describe(plain)["format_version"] == 1
    d = blob.describe(normed)
    assert d["format_version"] == 2 and d["input_norm"] == 7
    assert Model(normed).info["input_norm"] == 7 and Model(plain).info["input_norm"] == 0
    with pytest.raises(ValueError, match="input_norm"):
        blob.random_model(input_norm=16)


def _patched(b: bytes, **fields) -> bytes:
    import struct
    import zlib

    b = bytearray(b)
    if "version" in fields:
        struct.pack_into("<H", b, 4, fields["version"])
    if "norm" in fields:
        b[46] = fields["norm"]
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[12:])))
    return bytes(b)


@pytest.mark.parametrize(
    "fields", [{"norm": 7}, {"version": 2}, {"version": 2, "norm": 16}, {"version": 3}],
    ids=["v1-with-norm", "v2-without-norm", "norm-16", "v3"],
)
def test_inconsistent_header_is_refused_by_both_parsers(fields):
    bad = _patched(blob.random_model(seed=4), **fields)
    with pytest.raises(ValueError, match="version|input_norm"):
        Model(bad)
    with pytest.raises(ValueError, match="version|input_norm"):
        blob.describe(bad)


def test_detector_feeds_the_model_normalised_features():
    """With the VAD off, a normalised model's probabilities in the detector equal the engine
    run on core.model_features; the same weights on raw features give other outputs."""
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal(16000 * 5) * 2000).astype(np.int16)
    x[16000:32000] = (x[16000:32000] * 8).clip(-32768, 32767)
    m = Model(blob.random_model(seed=5, input_norm=7))
    res = core.Detector(m, vad=False).run(x)
    hops, logits = Engine(m).run(core.model_features(x, 7))
    probs = np.array([m.probability(int(v)) for v in logits], np.uint8)
    out = (res.flags & core.FLAG_OUTPUT) != 0
    assert np.array_equal(np.flatnonzero(out), hops)
    assert np.array_equal(res.probs[out], probs)
    _, raw_logits = Engine(m).run(core.features(x))
    assert not np.array_equal(raw_logits, logits)


def test_adapter_rewrite_keeps_input_norm():
    """es_adapt's blob writer keeps the header's input_norm and format version: pruning
    nothing gives back the same bytes for a normalised model."""
    from earshot import adapt
    from earshot.paths import MODELS

    d = blob.describe((MODELS / "alexa" / "model.bin").read_bytes())
    normed = blob.pack(d["layers"], logistic=bytes(d["logistic"]), cutoff=d["cutoff"] / 255,
                       window=d["window"], refractory=d["refractory"],
                       input_norm=d["input_norm"] or 6)
    m = Model(normed)
    stats, fwd = adapt.Stats(m), adapt.Forward(m)
    x = np.round(np.random.default_rng(6).standard_normal(16000 * 3) * 3000).astype(np.int16)
    feats = core.model_features(x, m.info["input_norm"])
    hops, _ = Engine(m).run(feats)
    for h in hops[:5]:
        fwd(feats[h + 1 - m.info["input_frames"] : h + 1], stats)
    keep = np.ones(stats.channels, np.uint8)
    out = adapt.prune(m, stats, keep, bias_fix=True)
    assert out == normed
    assert blob.describe(out)["input_norm"] == m.info["input_norm"] != 0
