"""Audio loading: any wav/flac (any rate, any channel count) to 16 kHz mono int16."""

import stat
from math import gcd
from pathlib import Path

import numpy as np

from earshot.core.constants import SAMPLE_RATE_HZ  # ES_SAMPLE_RATE_HZ, checked against the core


class AudioError(ValueError):
    """A file that cannot be read as audio; the message names the file and the problem."""


def _check_file(path: Path) -> None:
    """Refuse what is not a regular file before opening it: a FIFO with no writer would
    block the reader forever, a folder or a device is no recording. Raises AudioError."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise AudioError(f"{path}: cannot read audio ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else (
            "not a regular file")
        raise AudioError(f"{path}: {kind}; give an audio file")


def _finite(x: np.ndarray, path: Path, start: int) -> np.ndarray:
    """``x`` if every sample is finite; else AudioError naming the first bad sample (its
    index in the file, in the file's own frames)."""
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=-1) if x.ndim > 1 else bad)[0])
        raise AudioError(f"{path}: sample {start + i} is {x.reshape(len(x), -1)[i].tolist()} "
                         "(NaN or infinite): not audio")  # fmt: skip
    return x


def load(path, rate: int = SAMPLE_RATE_HZ, notify=None) -> np.ndarray:
    """Read ``path`` and return mono int16 samples at ``rate`` Hz, shape (n_samples,).

    Channels are averaged; other sample rates are resampled with a polyphase filter
    (scipy.signal.resample_poly). ``notify(message)`` is called when the file was
    converted, saying from what. Raises AudioError for a missing, empty, damaged or
    non-regular file and for NaN or infinite samples. The whole file is in memory: for long
    files :func:`blocks` gives the same samples a block at a time.
    """
    return np.concatenate(list(blocks(path, rate, notify=notify, block_s=None)))


#: Input samples read per block by :func:`blocks` (about 10 s at 48 kHz).
BLOCK_SAMPLES = 1 << 19


def blocks(path, rate: int = SAMPLE_RATE_HZ, notify=None, block_s: float | None = 60.0):
    """Yield ``path``'s audio as mono int16 blocks at ``rate`` Hz, each shape (n,), about
    ``block_s`` s of input each (None: one block, the whole file). Memory stays bounded by
    the block size whatever the file's length; concatenated, the blocks equal the samples
    of a whole-file resampling bit for bit (each block is resampled with enough of its
    neighbours that the polyphase filter sees the same input; tests/test_score.py checks).
    ``notify`` and errors as :func:`load`; a damaged file may raise after blocks were
    yielded."""
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    with f:
        file_rate, n, channels = int(f.samplerate), int(f.frames), int(f.channels)
        if n == 0:
            raise AudioError(f"{path}: no samples")
        changes = [f"{channels} channels -> mono"] if channels != 1 else []
        if file_rate != rate:
            changes.append(f"{file_rate} Hz -> {rate} Hz")
        if changes and notify is not None:
            notify(f"{path.name}: converted ({', '.join(changes)})")
        g = gcd(file_rate, int(rate))
        up, down = int(rate) // g, file_rate // g
        step = n if block_s is None else max(down, int(block_s * file_rate) // down * down)
        # Input samples the polyphase filter reaches on each side of an output (its half
        # length, 10 * max(up, down) taps at the upsampled rate; scipy's resample_poly),
        # rounded up to whole multiples of ``down`` so segment starts keep the output grid.
        ctx = -(-(10 * max(up, down) // up + 2) // down) * down if file_rate != rate else 0

        def read(a: int, b: int) -> np.ndarray:
            f.seek(a)
            try:
                x = f.read(b - a, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(f"{path}: cannot read audio at frame {a} ({exc})") from exc
            if len(x) != b - a:
                raise AudioError(f"{path}: ends at frame {a + len(x)}, header says {n}")
            return _finite(x, path, a).mean(axis=1)

        for a in range(0, n, step):
            b = min(a + step, n)
            if file_rate == rate:
                yield to_int16(read(a, b))
                continue
            s, e = max(a - ctx, 0), min(b + ctx, n)
            y = resample(read(s, e), file_rate, int(rate)).astype(np.float32)
            first = s * up // down  # s is a multiple of down: an output index
            lo = a * up // down - first
            hi = (-(-b * up // down) if b == n else b * up // down) - first
            yield to_int16(y[lo:hi])


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
