"""The core's VAD (es_vad.c): the rule of earshot.h bit for bit, real speech, synthetic noise,
narrowband sounds and clicks. (The ctypes struct mirrors are checked in test_frontend.py.)"""

import subprocess

import numpy as np
import pytest
from earshot import core
from earshot.audio import load
from scipy.signal import lfilter

# 1/f (pink) noise filter from J. O. Smith, "Spectral Audio Signal Processing", section
# "Example: Synthesis of 1/F Noise (Pink Noise)"; brown noise is a leaky integrator.
PINK = (
    [0.049922035, -0.095993537, 0.050612699, -0.004408786],
    [1.0, -2.494956002, 2.017265875, -0.522189400],
)
BROWN = ([1.0], [1.0, -0.99])
RATE = core.SAMPLE_RATE_HZ


def noise(kind: str, amp: float, seconds: float, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    if kind != "white":
        w = lfilter(*(PINK if kind == "pink" else BROWN), w)
        w /= w.std()
    return np.clip(np.round(w * amp), -32768, 32767).astype(np.int16)


def vad_reference(feats: np.ndarray, p: dict) -> dict:
    """Plain-Python statement of the rule in earshot.h (floors in Q4 steps)."""
    prime = (core.WINDOW_SAMPLES + core.HOP_SAMPLES - 1) // core.HOP_SAMPLES
    lo, cap = 16 * p["min_floor"], 16 * p["cap"]
    floor = [0] * core.MEL_BINS
    hold = run = is_open = 0
    out = {"gate": [], "speech": [], "excess": []}
    for i, row in enumerate(feats.astype(int)):
        x = [16 * v for v in row]
        if i < prime:
            floor = [max(v, lo) for v in x]
        d = [a - f for a, f in zip(x, floor)]
        excess = sum(min(max(v, -cap), cap) for v in d)
        floor = [
            max(lo, f + (v // 2 ** (p["down_shift"] if v < 0 else p["up_shift"])))
            for f, v in zip(floor, d)
        ]
        speech = excess >= 16 * core.MEL_BINS * p["onset"]
        run = min(run + 1, p["confirm"]) if speech else 0
        if run >= p["confirm"] or (speech and is_open):
            hold, is_open = p["hangover"], 1
        elif hold > 0:
            hold, is_open = hold - 1, 1
        else:
            is_open = 0
        out["gate"].append(is_open)
        out["speech"].append(int(speech))
        out["excess"].append(excess / 16 / core.MEL_BINS)
    return {k: np.array(v) for k, v in out.items()}


def test_defaults_documented():
    d = core.vad_defaults()
    assert set(d) == set(core.VAD_PARAMS)
    assert d["onset"] > 0 and d["hangover"] > 0 and d["down_shift"] < d["up_shift"]
    # A click reaches at most the 3 windows that hold it: confirmation must outlast them.
    assert d["confirm"] > core.WINDOW_SAMPLES // core.HOP_SAMPLES
    assert 0 < d["cap"] < 127


def test_bad_parameters_raise():
    f = np.zeros((3, core.MEL_BINS), dtype=np.int8)
    for bad in [dict(onset=0), dict(up_shift=16), dict(cap=0), dict(cap=128), dict(confirm=0)]:
        with pytest.raises(ValueError):
            core.vad(f, **bad)
    with pytest.raises(ValueError, match="rejected"):
        core.vad(f, confirm=0)
    with pytest.raises(ValueError, match="unknown VAD parameter"):
        core.vad(f, threshold=3)
    with pytest.raises(ValueError, match="int8"):
        core.vad(f.astype(np.int16))


def test_public_api_in_a_misaligned_buffer_resets_to_a_fresh_state():
    """es_vad_init in a buffer at an odd address, one too short is refused; es_vad_reset
    gives the gate and state of a fresh VAD (earshot.h)."""
    import ctypes

    so = core.lib()
    rng = np.random.default_rng(5)
    f = rng.integers(-128, 128, (300, core.MEL_BINS), dtype=np.int8)
    size = so.es_vad_mem_size()
    raw = ctypes.create_string_buffer(size + 1)
    base = ctypes.addressof(raw) + (1 if ctypes.addressof(raw) % 2 == 0 else 0)
    assert not so.es_vad_init(base, size - 1, None)
    v = so.es_vad_init(base, size, None)
    assert v
    for row in f[:123]:
        so.es_vad_update(v, row.ctypes.data)
    so.es_vad_reset(v)
    state = core.es_vad_state_t()
    so.es_vad_get_state(v, ctypes.addressof(state))
    assert (state.primed, state.open, state.hold, state.excess_q4) == (0, 0, 0, 0)
    gate = [so.es_vad_update(v, row.ctypes.data) for row in f]
    assert np.array_equal(gate, core.vad(f)[0])
    so.es_vad_get_state(v, ctypes.addressof(state))
    assert state.primed == core.VAD_PRIME_HOPS
    assert np.array_equal(np.frombuffer(state.floor_q4, np.int16) / 16, core.vad(f)[1][-1])


@pytest.mark.parametrize(
    "params",
    [
        {},
        dict(onset=3, cap=5, confirm=1, hangover=0),
        dict(onset=20, cap=127, confirm=6, hangover=7, down_shift=0, up_shift=15),
        dict(onset=2, min_floor=-128, down_shift=0, up_shift=15, cap=3),
    ],
)
def test_matches_the_documented_rule(params):
    rng = np.random.default_rng(len(params))
    # Random walks per bin with jumps, so floors rise, fall and the gate toggles.
    steps = rng.integers(-6, 7, (3000, core.MEL_BINS))
    steps[rng.integers(0, 3000, 60)] += rng.integers(-90, 90, (60, 1))
    feats = np.clip(np.cumsum(steps, axis=0) // 4 - 60, -128, 127).astype(np.int8)
    p = {**core.vad_defaults(), **params}
    got = core.vad_trace(feats, **params)
    ref = vad_reference(feats, p)
    for key in ("gate", "speech", "excess"):
        assert np.array_equal(got[key], ref[key]), key
    assert 0 < got["gate"].sum() < len(feats)


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("amp", [10, 300, 6000])
def test_stays_closed_on_stationary_noise(kind, amp):
    gate, _ = core.vad(core.features(noise(kind, amp, 5.0, seed=amp)))
    assert gate.sum() == 0


def test_narrowband_bursts_and_clicks_stay_closed():
    t = np.arange(10 * RATE) / RATE
    bed = noise("white", 30, 10.0, seed=5).astype(np.float64)
    # 1 kHz beeps switched on and off abruptly (broadband edges), 40 dB above the bed.
    beeps = 3000 * np.sin(2 * np.pi * 1000 * t) * ((t % 1.5) < 0.2)
    # Single-sample clicks, 60 dB above the bed.
    clicks = np.zeros_like(t)
    clicks[RATE // 3 :: RATE // 2] = 30000
    for sig in (beeps, clicks):
        x = np.clip(np.round(bed + sig), -32768, 32767).astype(np.int16)
        trace = core.vad_trace(core.features(x))
        assert trace["gate"].sum() == 0
    # Without onset confirmation the clicks would open it: the test above is not vacuous.
    x = np.clip(np.round(bed + clicks), -32768, 32767).astype(np.int16)
    assert core.vad(core.features(x), confirm=1)[0].sum() > 0


def _word_body(feats: np.ndarray) -> tuple[int, int]:
    level = feats.astype(int).mean(axis=1)
    # The word's body: hops within 20 dB (53 steps of 0.376 dB) of the loudest hop.
    body = np.flatnonzero(level >= level.max() - 53)
    return int(body[0]), int(body[-1])


def test_opens_on_speech_and_holds_through_the_word(data):
    hang, confirm = core.vad_defaults()["hangover"], core.vad_defaults()["confirm"]
    files = sorted((data / "wake-word-benchmark" / "alexa").glob("*.flac"))[:12]
    for path in files:
        x = load(path)
        pad = np.zeros(2 * RATE, dtype=np.int16)
        feats = core.features(np.concatenate([pad, x, pad]))
        gate, _ = core.vad(feats)
        first, last = _word_body(feats)
        # Open by the word's confirm-th hop (the detector replays the hops before), then one
        # open stretch over the whole word.
        assert gate[first + confirm - 1 : last + 1].all(), path
        assert gate[last : last + hang].all(), path  # hangover after it
        assert gate[: len(pad) // core.HOP_SAMPLES].sum() == 0, path  # digital silence


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_opens_on_speech_at_10db_snr_after_long_noise(data, kind):
    files = sorted((data / "wake-word-benchmark" / "alexa").glob("*.flac"))[12:24]
    for i, path in enumerate(files):
        x = load(path).astype(np.float64)
        clean = core.features(np.concatenate([np.zeros(5 * RATE), x]).astype(np.int16))
        first, last = _word_body(clean)
        rms = np.sqrt(np.mean(x**2))
        bed = noise(kind, 1.0, 5.0 + len(x) / RATE + 0.01, seed=i).astype(np.float64)
        bed *= rms / 10 ** (10 / 20) / bed.std()
        mix = np.concatenate([np.zeros(5 * RATE), x])
        mix = np.clip(np.round(mix + bed[: len(mix)]), -32768, 32767).astype(np.int16)
        gate, _ = core.vad(core.features(mix))
        assert gate[: 4 * RATE // core.HOP_SAMPLES].sum() == 0, path  # noise alone: closed
        # Open within the word's first 0.5 s (the detector's pre-roll of about a second then
        # still reaches the word's start) and from there to its end.
        opened = first + int(np.argmax(gate[first : last + 1]))
        assert gate[first : last + 1].any() and opened <= first + 50, path
        assert gate[opened : last + 1].all(), path


def test_floor_follows_a_level_change():
    quiet, loud = noise("pink", 100, 3.0, 1), noise("pink", 1000, 10.0, 2)
    gate, floor = core.vad(core.features(np.concatenate([quiet, loud])))
    floor = floor.mean(axis=1)
    change = len(quiet) // core.HOP_SAMPLES
    floor_loud = core.vad(core.features(loud))[1].mean(axis=1)
    # A 20 dB step opens the gate, then the floors rise and the gate closes again.
    assert gate[change : change + 10].sum() > 0
    assert gate[-500:].sum() == 0
    assert abs(floor[-1] - floor_loud[-1]) < 3.0
    assert floor[change - 1] < floor[-1] - 40  # 20 dB = 53 steps, less the noise's spread
    # A drop is followed within half a second and does not open the gate.
    gate2, floor2 = core.vad(core.features(np.concatenate([loud, quiet])))
    floor_quiet = core.vad(core.features(quiet))[1].mean(axis=1)
    drop = len(loud) // core.HOP_SAMPLES
    assert gate2[drop:].sum() == 0
    assert abs(floor2[drop + 50].mean() - floor_quiet[-1]) < 3.0


@pytest.mark.slow
def test_bench_vad_quick_run_reports_every_part(data, tmp_path):
    """bench/vad.py --quick runs end to end (its recall part once crashed on a moved helper):
    every VAD scored, recall with the gate on and off reported per condition, and recall is
    the share of the 117 readable dev clips not listed as missed."""
    import json
    import os
    import sys

    from earshot.paths import ROOT

    env = dict(os.environ, EARSHOT_DATA=str(data))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "vad.py"), "--quick", "--json"],
                         capture_output=True, text=True, timeout=900, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["quick"] is True
    assert {"silero", "webrtcvad_0", "pymicro_vad"} <= set(res["references"])
    assert 0.0 < res["earshot_gate"]["recall"] <= 1.0
    for cond in ("clean", "snr10_white"):
        r = res["recall"][cond]
        assert 0.0 < r["on"] <= 1.0 and 0.0 < r["off"] <= 1.0
        assert r["on"] == round(1 - len(r["missed_on"]) / 117, 4)  # missed clips of 117
