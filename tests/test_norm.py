"""The core's input normalisation (es_norm.c) and its use by the detector and blob format.

The rule is restated in NumPy from the comment at the top of es_norm.c and compared bit for
bit; the detector test shows a model with input_norm sees exactly ``core.model_features``.
"""

import ctypes
import struct
import zlib

import importlib.util

import numpy as np
import pytest
from earshot import core
from earshot.model import Engine, Model, blob
from earshot.paths import ROOT

V = 80  # ES_NORM_SUBWINDOW_HOPS
MIN_FLOOR = -112  # ES_NORM_MIN_FLOOR


def gate_tool():
    """research/tools/measure_norm_gate.py as a module."""
    path = ROOT / "research" / "tools" / "measure_norm_gate.py"
    spec = importlib.util.spec_from_file_location("measure_norm_gate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def reference(x: np.ndarray, gate=None) -> np.ndarray:
    """es_norm.c's rule as its header comment states it (Martin's minimum statistics);
    ``gate``: the per-bin steps subtracted by ES_NORM_MINSTAT_GATE (None: 0)."""
    gate = np.zeros(x.shape[1], np.int64) if gate is None else np.asarray(gate, np.int64)
    prev = np.full(x.shape[1], 127, np.int64)
    cur = np.full(x.shape[1], 127, np.int64)
    out = np.empty_like(x)
    for h, row in enumerate(x.astype(np.int64)):
        cur = np.minimum(cur, row)
        floor = np.maximum(np.minimum(cur, prev), MIN_FLOOR)
        out[h] = np.maximum(row - floor - gate, 0) - 128
        if h % V == V - 1:
            prev, cur = cur, np.full(x.shape[1], 127, np.int64)
    return out


def test_matches_reference_bit_for_bit():
    rng = np.random.default_rng(1)
    # Random walks over the whole int8 range, with jumps, so every branch is taken.
    x = np.clip(np.cumsum(rng.integers(-12, 13, (3000, 40)), axis=0) % 300 - 150,
                -128, 127).astype(np.int8)
    x[100:110] = -128
    x[200:210] = 127
    assert np.array_equal(core.normalize(x), reference(x))
    # Streaming in pieces (the device's use) equals one call.
    so = core.lib()
    mem = ctypes.create_string_buffer(so.es_norm_mem_size())
    n = so.es_norm_init(mem, ctypes.sizeof(mem), 1)
    out = np.empty_like(x)
    for a, b in [(0, 1), (1, 79), (79, 81), (81, 1000), (1000, 3000)]:
        part = np.ascontiguousarray(x[a:b])
        so.es_norm_run(n, part.ctypes.data, b - a, out[a:b].ctypes.data)
    assert np.array_equal(out, reference(x))


def test_gated_mode_matches_reference_and_its_measured_table():
    """ES_NORM_MINSTAT_GATE: the same rule less es_norm.c's gate row, bit for bit, in the
    detector's streaming use too; the row is what the measuring tool measures today."""
    tool = gate_tool()
    gate = tool.table_in_source()
    assert len(gate) == 40 and gate == tool.measure()
    assert all(a >= b - 3 for a, b in zip(gate, gate[1:]))  # narrow low bands spread most
    rng = np.random.default_rng(2)
    x = np.clip(np.cumsum(rng.integers(-12, 13, (2000, 40)), axis=0) % 300 - 150,
                -128, 127).astype(np.int8)
    assert np.array_equal(core.normalize(x, core.NORM_MINSTAT_GATE), reference(x, gate))
    so = core.lib()
    mem = ctypes.create_string_buffer(so.es_norm_mem_size())
    n = so.es_norm_init(mem, ctypes.sizeof(mem), core.NORM_MINSTAT_GATE)
    out = np.empty_like(x)
    for a, b in [(0, 3), (3, 700), (700, 2000)]:
        part = np.ascontiguousarray(x[a:b])
        so.es_norm_run(n, part.ctypes.data, b - a, out[a:b].ctypes.data)
    so.es_norm_reset(n)  # reset keeps the mode
    again = np.empty_like(x)
    so.es_norm_run(n, x.ctypes.data, len(x), again.ctypes.data)
    assert np.array_equal(out, reference(x, gate)) and np.array_equal(again, out)


def test_gate_silences_stationary_noise_of_any_colour_but_not_a_tone():
    """In white and brown noise (not the noise it was measured on: other seeds, levels and
    colours) about nine outputs in ten are -128; a tone 20 dB over the noise passes."""
    from earshot.train import synth

    rng = np.random.default_rng(11)
    for alpha, rms in ((0.0, 200.0), (2.0, 4000.0)):
        noise = synth.colored_noise(16000 * 10, alpha, rng)
        x = np.round(noise / noise.std() * rms).astype(np.int16)
        gated = core.model_features(x, core.NORM_MINSTAT_GATE)[200:]
        assert 0.8 < float((gated == -128).mean()) < 0.97
    t = np.arange(16000) / 16000
    noise = rng.standard_normal(16000 * 4) * 300
    noise[16000 * 2 : 16000 * 3] += 3000 * np.sin(2 * np.pi * 1000 * t)
    feats = core.model_features(np.round(noise).astype(np.int16), core.NORM_MINSTAT_GATE)
    assert feats[210:290].max(axis=1).min() > -128 + 20  # the tone's bin stays open


def test_stationary_noise_reads_the_same_at_any_level():
    """White noise at two levels 24 dB apart: once the minima cover it, the normalised
    features agree to within a step on average, while the log-mel differ by 64 steps."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000 * 6)
    quiet = core.features(np.round(noise * 300).astype(np.int16))
    loud = core.features(np.round(noise * 300 * 16).astype(np.int16))
    assert abs(float(loud[300:].mean()) - float(quiet[300:].mean()) - 64) < 2  # 8 per octave
    nq, nl = core.normalize(quiet)[300:], core.normalize(loud)[300:]
    assert abs(float(nq.mean()) - float(nl.mean())) < 1.0
    # Noise alone sits a few steps above its minimum: far below speech above it.
    assert nq.mean() < -100


def test_a_word_is_seen_whole_and_a_louder_background_is_followed():
    """A 0.5 s tone over noise keeps its full height to the end (the floor does not rise
    under it); after the noise gets 24 dB louder, the floor catches up within 1.6 s."""
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(16000 * 8) * 200
    t = np.arange(8000) / 16000
    x = noise.copy()
    x[16000 * 3 : 16000 * 3 + 8000] += 8000 * np.sin(2 * np.pi * 500 * t)
    x[16000 * 5 :] *= 16
    n = core.normalize(core.features(np.round(x).clip(-32768, 32767).astype(np.int16)))
    tone = n[302:348].max(axis=1).astype(int)
    assert tone.min() > 0 and tone[-5:].mean() > tone[:5].mean() - 3
    assert n[250:295].max() < -60  # noise alone before it
    assert n[505:520].mean() > -90  # just after the jump: the new noise stands out
    assert n[5 * 100 + 170 :].mean() < -100  # 1.7 s later it is the floor again


def test_bad_arguments_are_refused():
    f = np.zeros((10, 40), np.int8)
    for bad in (0, 3):
        with pytest.raises(ValueError, match="mode"):
            core.normalize(f, bad)
    with pytest.raises(ValueError, match="int8"):
        core.normalize(f.astype(np.int16))
    with pytest.raises(ValueError, match="int8"):
        core.normalize(np.zeros((10, 39), np.int8))
    assert core.normalize(np.zeros((0, 40), np.int8)).shape == (0, 40)


def test_blob_round_trip_and_version():
    plain = blob.random_model(seed=3)
    normed = blob.random_model(seed=3, input_norm=1)
    assert blob.describe(plain)["format_version"] == 1
    d = blob.describe(normed)
    assert d["format_version"] == 2 and d["input_norm"] == 1
    assert Model(normed).info["input_norm"] == 1 and Model(plain).info["input_norm"] == 0
    gated = blob.random_model(seed=3, input_norm=2)
    assert blob.describe(gated)["format_version"] == 2 and Model(gated).info["input_norm"] == 2
    with pytest.raises(ValueError, match="input_norm"):
        blob.random_model(input_norm=3)


def _patched(b: bytes, **fields) -> bytes:
    b = bytearray(b)
    if "version" in fields:
        struct.pack_into("<H", b, 4, fields["version"])
    if "norm" in fields:
        b[46] = fields["norm"]
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[12:])))
    return bytes(b)


@pytest.mark.parametrize(
    "fields", [{"norm": 1}, {"version": 2}, {"version": 2, "norm": 3}, {"version": 4}],
    ids=["v1-with-norm", "v2-without-norm", "unknown-norm", "v4-unknown"],
)
def test_inconsistent_header_is_refused_by_both_parsers(fields):
    bad = _patched(blob.random_model(seed=4), **fields)
    with pytest.raises(ValueError, match="version|input_norm"):
        Model(bad)
    with pytest.raises(ValueError, match="version|input_norm"):
        blob.describe(bad)


@pytest.mark.parametrize("mode", [1, 2])
def test_detector_feeds_the_model_normalised_features(mode):
    """With the VAD off, a normalised model's probabilities in the detector equal the engine
    run on core.model_features; the same weights on raw features give other outputs."""
    rng = np.random.default_rng(5)
    x = np.round(rng.standard_normal(16000 * 5) * 2000).astype(np.int16)
    x[16000:32000] = (x[16000:32000] * 8).clip(-32768, 32767)
    m = Model(blob.random_model(seed=5, input_norm=mode))
    res = core.Detector(m, vad=False).run(x)
    hops, logits = Engine(m).run(core.model_features(x, mode))
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
                       input_norm=1)
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
