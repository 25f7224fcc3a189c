"""Synthetic speech: reproducibility from a seed, the sanity filter, augmentation."""

import numpy as np
import pytest

from earshot import synth

ESPEAK = {"engine": "espeak", "voice": "en-us", "rate": 160, "pitch": 50, "gap": 0}


def test_specs_depend_only_on_seed_and_index():
    a = synth.positive_specs(30, seed=7)
    b = synth.positive_specs(30, seed=7)
    assert a == b
    assert synth.positive_specs(10, seed=7) == a[:10]  # spec i does not depend on n
    assert synth.positive_specs(30, seed=8) != a
    assert {s["engine"] for s in a} <= set(synth.ENGINE_WEIGHTS)
    neg = synth.negative_specs(30, seed=7)
    assert all(s["text"].lower() not in ("alexa", "alexa!", "alexa?") for s in neg)


@pytest.mark.parametrize(
    "spec",
    [
        dict(ESPEAK, text="alexa", prefix="hey", suffix="stop", join_ms=100),
        {"engine": "flite", "voice": "slt", "stretch": 1.1, "f0": 150, "text": "alexa"},
        {"engine": "kokoro", "voice": "blend", "blend": [0.2, 0.2, 0.2, 0.2, 0.2],
         "speed": 1.0, "text": "alexa"},
    ],
    ids=["espeak", "flite", "kokoro"],
)
def test_render_is_reproducible(spec):
    x1, end1 = synth.render(spec)
    x2, end2 = synth.render(spec)
    assert x1.dtype == np.int16 and x1.ndim == 1
    assert np.array_equal(x1, x2) and end1 == end2
    assert 0 < end1 <= len(x1)
    if spec.get("suffix"):
        assert end1 < len(x1) - 1600  # the suffix follows the wake word
    assert synth.check_positive(x1, end1) is None


def test_generate_cache_is_reproducible(tmp_path):
    specs = [dict(ESPEAK, text="alexa"), dict(ESPEAK, voice="en-gb+f2", text="alexa")]
    a = synth.generate(specs, tmp_path / "a", check=True)
    b = synth.generate(specs, tmp_path / "b", check=True)
    assert len(a["audio"]) == 2
    for x, y in zip(a["audio"], b["audio"]):
        assert np.array_equal(x, y)
    again = synth.generate(specs, tmp_path / "a", check=True)  # read from the cache
    assert np.array_equal(again["end"], a["end"])


def test_sanity_filter_rejects_broken_positives():
    good, end = synth.render(dict(ESPEAK, text="alexa"))
    assert synth.check_positive(good, end) is None
    assert "silent" in synth.check_positive(np.zeros(16000, np.int16), 16000)
    clipped = np.clip(good.astype(np.int32) * 50, -32768, 32767).astype(np.int16)
    assert synth.check_positive(clipped, end) == "clipped"
    short = good[:1600]
    assert "too short" in synth.check_positive(short, len(short), use_mww=False)
    assert "bad end" in synth.check_positive(good, len(good) + 1)
    other, end = synth.render(dict(ESPEAK, text="hello there"))
    assert "microWakeWord rejects" in synth.check_positive(other, end)


def test_augment_is_seeded_and_tracks_the_end():
    x, end = synth.render(dict(ESPEAK, text="alexa"))
    x = np.concatenate([np.zeros(8000, np.int16), x, np.zeros(8000, np.int16)])
    end += 8000
    speech = [x]
    a, ea = synth.augment(x, end, np.random.default_rng(3), speech=speech)
    b, eb = synth.augment(x, end, np.random.default_rng(3), speech=speech)
    assert np.array_equal(a, b) and ea == eb
    for seed in range(20):
        y, e = synth.augment(x, end, np.random.default_rng(seed), speech=speech)
        assert y.dtype == np.int16
        # speed changes stay within 0.9..1.1: the end moves by at most 11 %
        assert abs(e - end) <= 0.115 * end
        assert 0 < e <= len(y)


def test_trim_and_noise_helpers():
    rng = np.random.default_rng(0)
    tone = np.sin(np.arange(3200) / 5).astype(np.float32)
    x = np.concatenate([np.zeros(5000, np.float32), tone, np.zeros(5000, np.float32)])
    t = synth.trim(x, pad=0)
    assert 3200 <= len(t) <= 3200 + 2 * 160
    n = synth.colored_noise(16000, 1.0, rng)
    assert abs(np.sqrt(np.mean(n**2)) - 1) < 1e-3
    h = synth.exp_rir(0.3, rng)
    assert abs(np.sum(h**2) - 1) < 1e-3 and h[0] > 0.5
