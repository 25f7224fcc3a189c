"""The demo's own recording: a spoken sentence with "alexa" between distractor phrases, in noise.

Speech comes from espeak-ng (Debian package ``espeak-ng``); each phrase is synthesised on its
own, so the position of "alexa" in the clip is known exactly. Noise is pink (1/f power,
shaped in the frequency domain) from a seeded generator, scaled to ``snr_db`` relative to the
speech's mean power over the samples where speech is present.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot.audio import SAMPLE_RATE_HZ, load, to_int16

#: The phrases, in order; WAKE_WORD is the one the detector should find.
PHRASES = ("please turn on the lights", "alexa", "what is the weather like today")
WAKE_WORD = "alexa"
GAP_S = 0.6  # silence between phrases
EDGE_S = 0.8  # silence before the first and after the last phrase
SPEECH_PEAK = 0.5  # peak level of the speech, full scale = 1
ACTIVE_DB = -35.0  # a sample is "speech present" above this level relative to the peak


class DemoClipError(RuntimeError):
    """espeak-ng is missing or failed."""


@dataclass
class DemoClip:
    """``samples``: int16 mono 16 kHz, shape (n,). ``wake_span``: (start, end) in samples of
    the wake word. ``text``: the sentence spoken. ``snr_db``, ``seed``: how it was made."""

    samples: np.ndarray
    wake_span: tuple[int, int]
    text: str
    snr_db: float
    seed: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


def _speak(text: str, voice: str, wav: Path) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DemoClipError("espeak-ng not found: apt-get install espeak-ng (or pass --audio)")
    proc = subprocess.run([exe, "-v", voice, "-w", str(wav), text], capture_output=True)
    if proc.returncode != 0 or not wav.is_file():
        raise DemoClipError(f"espeak-ng failed for {text!r}: {proc.stderr.decode().strip()}")
    x = load(wav).astype(np.float64) / 32768.0
    nz = np.flatnonzero(np.abs(x) > 1e-3)
    return x[nz[0] : nz[-1] + 1] if nz.size else x


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink noise (power spectral density proportional to 1/f), shape (n,)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / np.sqrt(np.mean(x**2))


def make(seed: int = 0, snr_db: float = 15.0, voice: str = "en-us") -> DemoClip:
    """Synthesise the demo sentence (PHRASES) and mix it with pink noise at ``snr_db``.

    Raises DemoClipError when espeak-ng is unavailable or fails.
    """
    rate = SAMPLE_RATE_HZ
    parts = [np.zeros(int(EDGE_S * rate))]
    wake_span = (0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for i, phrase in enumerate(PHRASES):
            if i:
                parts.append(np.zeros(int(GAP_S * rate)))
            speech = _speak(phrase, voice, Path(tmp) / f"{i}.wav")
            if phrase == WAKE_WORD:
                start = sum(len(p) for p in parts)
                wake_span = (start, start + len(speech))
            parts.append(speech)
    parts.append(np.zeros(int(EDGE_S * rate)))
    clean = np.concatenate(parts)
    clean *= SPEECH_PEAK / np.max(np.abs(clean))
    active = np.abs(clean) > SPEECH_PEAK * 10 ** (ACTIVE_DB / 20)
    speech_power = np.mean(clean[active] ** 2)
    rng = np.random.default_rng(seed)
    noise = pink_noise(len(clean), rng) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return DemoClip(to_int16(clean + noise), wake_span, " ... ".join(PHRASES), snr_db, seed)
