"""The core's energy VAD (es_vad.c) on real speech and on synthetic stationary noise."""

import numpy as np
import pytest
from scipy.signal import lfilter

from earshot import core
from earshot.audio import load

# 1/f (pink) noise filter from J. O. Smith, "Spectral Audio Signal Processing", section
# "Example: Synthesis of 1/F Noise (Pink Noise)"; brown noise is a leaky integrator.
PINK = (
    [0.049922035, -0.095993537, 0.050612699, -0.004408786],
    [1.0, -2.494956002, 2.017265875, -0.522189400],
)
BROWN = ([1.0], [1.0, -0.99])


def noise(kind: str, amp: float, seconds: float, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal(int(seconds * core.SAMPLE_RATE_HZ))
    if kind != "white":
        w = lfilter(*(PINK if kind == "pink" else BROWN), w)
        w /= w.std()
    return np.clip(np.round(w * amp), -32768, 32767).astype(np.int16)


def test_defaults_documented():
    d = core.vad_defaults()
    assert d["onset"] > 0 and d["hangover"] > 0 and d["down_shift"] < d["up_shift"]


def test_bad_parameters_raise():
    f = np.zeros((3, core.MEL_BINS), dtype=np.int8)
    with pytest.raises(ValueError, match="rejected"):
        core.vad(f, onset=0)
    with pytest.raises(ValueError, match="rejected"):
        core.vad(f, up_shift=16)
    with pytest.raises(ValueError, match="int8"):
        core.vad(f.astype(np.int16))


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
@pytest.mark.parametrize("amp", [10, 300, 6000])
def test_stays_closed_on_stationary_noise(kind, amp):
    gate, _ = core.vad(core.features(noise(kind, amp, 5.0, seed=amp)))
    assert gate.sum() == 0


def test_opens_on_speech_and_holds_through_the_word(data):
    hang = core.vad_defaults()["hangover"]
    files = sorted((data / "wake-word-benchmark" / "alexa").glob("*.flac"))[:12]
    for path in files:
        x = load(path)
        pad = np.zeros(2 * core.SAMPLE_RATE_HZ, dtype=np.int16)
        feats = core.features(np.concatenate([pad, x, pad]))
        gate, _ = core.vad(feats)
        level = feats.astype(int).mean(axis=1)
        # The word's body: hops within 20 dB (53 steps of 0.376 dB) of the loudest hop.
        body = np.flatnonzero(level >= level.max() - 53)
        first, last = body[0], body[-1]
        assert gate[first : last + 1].all(), path  # one open stretch over the whole word
        assert gate[last : last + hang].all(), path  # hangover after it
        assert gate[: len(pad) // core.HOP_SAMPLES].sum() == 0, path  # digital silence


def test_floor_follows_a_level_change():
    quiet, loud = noise("pink", 100, 3.0, 1), noise("pink", 1000, 10.0, 2)
    gate, floor = core.vad(core.features(np.concatenate([quiet, loud])))
    change = len(quiet) // core.HOP_SAMPLES
    _, floor_loud = core.vad(core.features(loud))
    # A 20 dB step opens the gate, then the floor rises and the gate closes again.
    assert gate[change : change + 10].all()
    assert gate[-500:].sum() == 0
    assert abs(floor[-1] - floor_loud[-1]) < 3.0
    assert floor[change - 1] < floor[-1] - 40  # 20 dB = 53 steps, less the noise's spread
    # A drop is followed within a few hops and does not open the gate.
    gate2, floor2 = core.vad(core.features(np.concatenate([loud, quiet])))
    _, floor_quiet = core.vad(core.features(quiet))
    drop = len(loud) // core.HOP_SAMPLES
    assert gate2[drop:].sum() == 0
    assert abs(floor2[drop + 20] - floor_quiet[-1]) < 3.0
