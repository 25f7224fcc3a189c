"""bench/noise.py's noise: unit RMS, the asked SNR, the power where its colour says; bad
input is named."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_noise", ROOT / "bench" / "noise.py")
bn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bn)


def _share(x, lo, hi):
    s = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    return s[(f >= lo) & (f < hi)].sum() / s.sum()


def test_each_colour_puts_its_power_where_it_says():
    n = 32000
    got = {c: bn.noise(n, c, np.random.default_rng(3)) for c in bn.COLOURS}
    for c, x in got.items():
        assert x.shape == (n,) and abs(np.sqrt(np.mean(x**2)) - 1) < 1e-6, c
    # 8th order run twice: -6 dB at the corner, so a little leaks just past it
    assert _share(got["high"], 3700, 8001) > 0.99 and _share(got["high"], 4000, 8001) > 0.97
    assert _share(got["low"], 0, 2300) > 0.99 and _share(got["low"], 0, 2000) > 0.97
    assert 0.45 < _share(got["white"], 4000, 8001) < 0.55
    # the tilt orders the colours by their share above 4 kHz
    order = [_share(got[c], 4000, 8001) for c in ("brown", "pink", "white", "blue", "violet")]
    assert order == sorted(order)
    assert _share(got["violet"], 4000, 8001) > 0.8  # power ~ f^2: 7/8 above 4 kHz


def test_add_coloured_noise_is_at_the_snr_and_seeded():
    x = (np.sin(np.arange(16000) / 9) * 3000).astype(np.int16)
    for colour in ("white", "high", "brown"):
        y = bn.add_coloured_noise(x, colour, 10.0, np.random.default_rng(1))
        assert y.dtype == np.int16 and y.shape == x.shape
        d = y.astype(np.float64) - x
        snr = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) /
                            np.sqrt(np.mean(d**2)))
        assert abs(snr - 10.0) < 0.05
        again = bn.add_coloured_noise(x, colour, 10.0, np.random.default_rng(1))
        assert np.array_equal(y, again)


def test_bad_colour_or_length_is_named():
    with pytest.raises(ValueError, match="unknown noise colour 'grey'"):
        bn.noise(1000, "grey", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 64 samples"):
        bn.noise(10, "high", np.random.default_rng(0))


def test_telephone_channel_removes_the_band_above_4_khz_and_keeps_the_rest():
    rng = np.random.default_rng(5)
    x = np.clip(rng.standard_normal(16000) * 3000, -32768, 32767).astype(np.int16)
    assert bn.channel(x, "none") is x
    y = bn.channel(x, "telephone")
    assert y.dtype == np.int16 and y.shape == x.shape
    assert _share(x.astype(np.float64), 4200, 8001) > 0.4
    assert _share(y.astype(np.float64), 4200, 8001) < 3e-3  # the FIR's transition band
    # below the filter's transition band the signal goes through unchanged (to rounding)
    from scipy.signal import butter, sosfiltfilt
    low = butter(8, 3000, "lowpass", fs=16000, output="sos")
    a, b = sosfiltfilt(low, x.astype(np.float64)), sosfiltfilt(low, y.astype(np.float64))
    assert np.sqrt(np.mean((a - b)[200:-200] ** 2)) < 0.02 * np.sqrt(np.mean(a**2))
    with pytest.raises(ValueError, match="unknown channel 'radio'"):
        bn.channel(x, "radio")
