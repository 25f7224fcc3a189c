"""bench/level.py's scaling: the peak lands on the asked level; bad input is named."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_level", ROOT / "bench" / "level.py")
level = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(level)


def test_scale_to_peak_puts_the_largest_sample_on_the_level():
    x = (np.sin(np.arange(4000) / 7) * 1200).astype(np.int16)
    x[100] = -2000  # the largest |sample| is negative
    assert level.scale_to_peak(x, None) is x
    for db in (0, -3, -6, -30):
        y = level.scale_to_peak(x, db)
        assert y.dtype == np.int16 and y.shape == x.shape
        assert abs(20 * np.log10(np.max(np.abs(y.astype(np.float64))) / 32767) - db) < 0.01
        # a gain, not a distortion: the shape is kept
        assert np.corrcoef(x, y)[0, 1] > 0.9999
    with pytest.raises(ValueError, match="silent"):
        level.scale_to_peak(np.zeros(100, np.int16), -6)
