"""The detector's first-stage gate (es_vad.c es_gate_update, es_detector.c; rules in
earshot.h, "Detector"): it opens on an onset, stays closed on ambient sound, replays the raw
pre-roll exactly, resets cleanly, and loses no wake word that follows a long silence.

The synthetic tests need no data; the wake-word test reads development "alexa" clips from
EARSHOT_DATA (skipped with the reason when absent, a failure under CI=true).
"""

import re

import numpy as np
import pytest
from earshot import core
from earshot.audio import load
from earshot.model import Model, blob
from earshot.model import package as modelpkg
from earshot.paths import FIRMWARE, MODELS

RATE = core.SAMPLE_RATE_HZ
HOP = core.HOP_SAMPLES
P = core.GATE_PREROLL_HOPS
START_HOPS = 50  # the stage starts open for its hangover (es_vad.c ES_GATE_HANGOVER)


def _min_bias() -> np.ndarray:
    """es_detector.c's es_detector_min_bias table (steps per bin), read from the source."""
    src = (FIRMWARE / "core" / "es_detector.c").read_text()
    body = re.search(r"es_detector_min_bias\[ES_MEL_BINS\] = \{([^}]*)\}", src)[1]
    return np.array([int(v) for v in body.replace(",", " ").split()])


@pytest.fixture(scope="module")
def plain_model():
    """A random network without input normalisation: the rows es_detector_rows returns are
    then the frontend's log-mel as it is, comparable with core.features."""
    return Model(blob.random_model(seed=0, input_norm=0))


def _noise(colour: str, seconds: float, rms: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    if colour == "hum":  # 50 Hz mains hum and its odd harmonics, plus a faint hiss
        t = np.arange(n) / RATE
        x = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 3, 5, 7))
        x = x + 0.01 * rng.standard_normal(n)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.arange(len(spec)), 1.0)
        spec *= {"white": 1.0, "pink": f**-0.5, "brown": 1.0 / f}[colour]
        x = np.fft.irfft(spec, n)
    return x * rms / x.std()


def _pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("colour", ["white", "pink", "brown", "hum"])
def test_gate_closes_on_stationary_ambient_sound(plain_model, colour):
    x = _pcm(_noise(colour, 10.0, 300.0))
    det = core.Detector(plain_model)
    r = det.run(x)
    gate = (r.flags & core.FLAG_GATE) != 0
    assert gate[:START_HOPS].all()  # open from reset, for its hangover
    settled = gate[200:]
    assert settled.mean() < 0.02, (colour, settled.mean())
    stats = det.stats
    # Closed: the frontend runs on every GATE_DECIMATE-th hop only.
    assert stats["frontend_hops"] < 0.2 * stats["hops"], stats
    assert not (r.flags[200:] & core.FLAG_RAN).any()


def test_gate_opens_within_two_hops_of_an_onset(plain_model):
    bed = _noise("pink", 8.0, 100.0)
    onset = 6 * RATE // HOP  # hop index of the burst
    burst = _noise("white", 0.5, 1000.0, seed=1)
    bed[onset * HOP : onset * HOP + len(burst)] += burst
    r = core.Detector(plain_model).run(_pcm(bed))
    gate = (r.flags & core.FLAG_GATE) != 0
    assert not gate[onset - 100 : onset].any()
    first = onset + int(np.argmax(gate[onset:]))
    assert gate[onset:].any() and first - onset <= 2, first - onset  # ES_GATE_CONFIRM = 2
    # It stays open through the burst and its hangover, then closes again.
    assert gate[first : onset + 50 + 50].all()
    assert not gate[onset + 200 :].any()


def test_preroll_rows_are_exact_and_closed_rows_repeat_decimated_ones(plain_model):
    bed = _noise("brown", 6.0, 200.0, seed=2)
    onset = 4 * RATE // HOP
    bed[onset * HOP : onset * HOP + RATE // 4] += _noise("white", 0.25, 3000.0, seed=3)
    x = _pcm(bed)
    exact = core.features(x)  # what the frontend computes for every hop, ungated
    det = core.Detector(plain_model)
    r = det.run(x[: (onset + 3) * HOP])  # up to two hops after the onset
    opened = np.flatnonzero(r.flags & core.FLAG_GATE)
    opened = opened[opened > START_HOPS]
    assert len(opened) and opened[0] <= onset + 2
    n = det.stats["rows"]
    assert n == det.stats["hops"] == onset + 3  # open: every row finalised at once
    # The pre-roll: every hop from GATE_PREROLL_HOPS before the opening on is exact.
    first_exact = opened[0] - P
    rows = det.rows(first_exact, n - first_exact)
    assert rows is not None and np.array_equal(rows, exact[first_exact:n])
    # Before it, closed rows: each is the exact row of a hop at most GATE_DECIMATE - 1 hops
    # earlier (the frontend ran on it; the others repeat it) less es_detector_min_bias.
    bias = _min_bias()
    closed = det.rows(first_exact - 60, 60)
    for i, row in enumerate(closed):
        hop = first_exact - 60 + i
        back = [h for h in range(hop, hop - core.GATE_DECIMATE, -1)
                if np.array_equal(row, np.maximum(exact[h] - bias, -128))]  # fmt: skip
        assert back, hop
    # Rows not finalised yet, or no longer kept, are refused.
    assert det.rows(n, 1) is None
    assert det.rows(0, 1) is None
    assert det.rows(n - 2, 3) is None


def test_closed_rows_trail_by_the_preroll(plain_model):
    x = _pcm(_noise("white", 4.0, 200.0))
    det = core.Detector(plain_model)
    det.run(x)
    s = det.stats
    assert s["hops"] - s["rows"] == P  # the raw ring holds the last P hops
    assert s["gate_open_hops"] <= START_HOPS + 2


def test_reset_equals_a_new_detector_and_chunks_do_not_matter(plain_model):
    bed = _noise("pink", 5.0, 150.0, seed=4)
    bed[3 * RATE : 3 * RATE + RATE // 2] += _noise("white", 0.5, 2000.0, seed=5)
    x = _pcm(bed)
    fresh = core.Detector(plain_model).run(x)
    det = core.Detector(plain_model)
    det.run(_pcm(_noise("brown", 3.0, 3000.0, seed=6)))  # some other history first
    det.reset()
    assert det.stats == dict.fromkeys(det.stats, 0)
    cuts = [(0, 137 * HOP), (137 * HOP, 301 * HOP), (301 * HOP, None)]
    parts = [det.run(x[a:b]) for a, b in cuts]
    assert np.array_equal(np.concatenate([p.flags for p in parts]), fresh.flags)
    assert np.array_equal(np.concatenate([p.probs for p in parts]), fresh.probs)


def test_gate_always_open_equals_no_gate(plain_model):
    # Noise whose level jumps by 20 dB every 300 ms: the first stage never closes (hangover
    # 500 ms), so every hop is finalised live, as without the gate, bit for bit.
    x = _noise("white", 6.0, 100.0, seed=7)
    step = int(0.3 * RATE)
    for i in range(step, len(x), 2 * step):  # quiet first: the floor starts low
        x[i : i + step] *= 10.0
    x = _pcm(x)
    gated = core.Detector(plain_model, vad=False, gate=True).run(x)
    free = core.Detector(plain_model, vad=False, gate=False).run(x)
    assert (gated.flags & core.FLAG_GATE).all()
    assert np.array_equal(gated.probs, free.probs)
    assert np.array_equal(gated.flags & (0xFF ^ core.FLAG_GATE), free.flags)


def _minstat_floor(x: np.ndarray) -> np.ndarray:
    """es_norm.c's floor per hop and bin (minimum statistics, 2 x 80 hops), in steps."""
    floor = np.zeros(x.shape)
    prev = np.full(core.MEL_BINS, 127)
    cur = np.full(core.MEL_BINS, 127)
    for t, row in enumerate(np.maximum(x.astype(int), -112)):
        cur = np.minimum(cur, row)
        floor[t] = np.minimum(cur, prev)
        if t % 80 == 79:
            prev, cur = cur, np.full(core.MEL_BINS, 127)
    return floor


def test_min_bias_table_is_what_the_frontend_measures():
    # es_detector_min_bias: per bin, how much higher the minimum-statistics floor of rows
    # repeated GATE_DECIMATE times lies than the floor of every row, in stationary noise.
    # Re-measured here on other seeds and levels than the table's (white at RMS 500, pink at
    # 2000): the estimate moves by up to about two steps from seed to seed, so within three.
    k = core.GATE_DECIMATE
    measured = []
    for colour, rms in [("white", 500.0), ("pink", 2000.0)]:
        x = core.features(_pcm(_noise(colour, 60.0, rms, seed=21)))[50:]
        rep = x[np.arange(len(x)) // k * k]
        measured.append((_minstat_floor(rep) - _minstat_floor(x))[400:].mean(0))
    assert np.abs(np.mean(measured, 0) - _min_bias()).max() <= 3.0


def _alexa():
    if not (MODELS / "alexa" / "manifest.json").is_file():
        pytest.skip("no trained alexa model committed (models/alexa)")
    _, model_blob = modelpkg.load(MODELS / "alexa")
    return Model(model_blob)


# Development clips spread over the split's speakers (neighbouring files share a speaker).
CLIPS = ["0.flac", "3.flac", "10.flac", "21.flac", "40.flac", "55.flac", "63.flac", "77.flac",
         "90.flac", "104.flac"]  # fmt: skip


@pytest.mark.parametrize("lead", ["silence", "hiss", "pink"])
def test_no_wake_word_after_a_long_silence_is_lost(data, lead):
    # Pink noise at 10 dB below the word is no silence: there the detector is allowed one
    # clip of the ten (63.flac, whose probabilities stay just under the cutoff after the
    # opening: measured 1 of 10; the VAD-only detector loses none). On the development split
    # (1 s pads) recall is the same gated and ungated, clean and at 10 dB (docs/performance.md).
    # 12 s of digital silence, of a faint hiss (white noise 60 dB below full scale), or of
    # pink noise 10 dB below the word, then a development "alexa": the default detector
    # (first stage and VAD on) fires wherever the ungated one does (VAD and first stage off),
    # at most one model output (output_stride hops) later. The probabilities after the
    # opening may differ (rows older than the raw pre-roll are repeated decimated ones, and
    # the normalisation's minima were taken over those): the hops by which detections moved
    # and the largest probability difference are printed, not asserted.
    model = _alexa()
    hits = moved = worst = 0
    lost = []
    for name in CLIPS:
        word = load(data / "wake-word-benchmark" / "alexa" / name).astype(np.float64)
        x = np.concatenate([np.zeros(12 * RATE), word, np.zeros(RATE)])
        if lead == "hiss":
            x += _noise("white", len(x) / RATE, 32768 * 10 ** (-60 / 20), seed=8)[: len(x)]
        elif lead == "pink":
            bed = _noise("pink", len(x) / RATE, 1.0, seed=9)[: len(x)]
            x += bed * np.sqrt(np.mean(word**2)) / 10 ** (10 / 20)
        x = _pcm(x)
        gated_det = core.Detector(model)
        gated = gated_det.run(x)
        free = core.Detector(model, vad=False, gate=False).run(x)
        lead_hops = 12 * RATE // HOP
        # The lead is ambient: the first stage stays closed over its last 10 s.
        assert not (gated.flags[lead_hops - 1000 : lead_hops - 10] & core.FLAG_GATE).any(), name
        if lead == "pink" and len(free.detections) > len(gated.detections):
            lost.append(name)
            continue
        assert len(gated.detections) == len(free.detections), name
        stride = model.info["output_stride"]
        for g, f in zip(gated.detections, free.detections):
            assert 0 <= g - f <= stride, (name, g, f)
            moved += g != f
        ran = (gated.flags & core.FLAG_RAN) != 0
        diff = np.abs(gated.probs[ran].astype(int) - free.probs[ran].astype(int))
        worst = max(worst, int(diff.max()) if len(diff) else 0)
        hits += len(free.detections) > 0
    print(f"\nlead {lead}: {hits}/{len(CLIPS)} detected ungated, lost gated: {lost or 'none'}, "
          f"{moved} one output later; largest probability difference where the model ran: "
          f"{worst}/255")
    assert hits >= 8  # about real detections, not two empty lists
    assert len(lost) <= 1, lost
