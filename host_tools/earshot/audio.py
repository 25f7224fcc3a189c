"""Audio loading: any wav/flac (any rate, any channel count) to 16 kHz mono int16."""

from math import gcd
from pathlib import Path

import numpy as np

from earshot.core.constants import SAMPLE_RATE_HZ  # ES_SAMPLE_RATE_HZ, checked against the core


class AudioError(ValueError):
    """A file that cannot be read as audio; the message names the file and the problem."""


def load(path, rate: int = SAMPLE_RATE_HZ, notify=None) -> np.ndarray:
    """Read ``path`` and return mono int16 samples at ``rate`` Hz, shape (n_samples,).

    Channels are averaged; other sample rates are resampled with a polyphase filter
    (scipy.signal.resample_poly). ``notify(message)`` is called when the file was
    converted, saying from what. Raises AudioError for a missing, empty or damaged file.
    """
    import soundfile as sf

    path = Path(path)
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    if data.shape[0] == 0:
        raise AudioError(f"{path}: no samples")
    changes = []
    if data.shape[1] != 1:
        changes.append(f"{data.shape[1]} channels -> mono")
    mono = data.mean(axis=1)
    if file_rate != rate:
        mono = resample(mono, int(file_rate), rate).astype(np.float32)
        changes.append(f"{file_rate} Hz -> {rate} Hz")
    if changes and notify is not None:
        notify(f"{path.name}: converted ({', '.join(changes)})")
    return to_int16(mono)


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Samples ``x`` (shape (n,)) at ``rate_in`` Hz resampled to ``rate_out`` Hz with
    scipy.signal.resample_poly (polyphase FIR, its default Kaiser window), by the ratio
    ``rate_out / rate_in`` in lowest terms: ceil(n * rate_out / rate_in) samples, float
    (float64 unless ``x`` is float32)."""
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(x, int(rate_out) // g, int(rate_in) // g)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16 with saturation, shape unchanged."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int16
    )


def write(path, samples: np.ndarray, rate: int = SAMPLE_RATE_HZ) -> None:
    """Write int16 (or float in [-1, 1]) mono samples to a wav/flac file (by suffix)."""
    import soundfile as sf

    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        samples = to_int16(samples)
    sf.write(str(path), samples, rate, subtype="PCM_16")
