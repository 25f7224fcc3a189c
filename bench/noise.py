"""Noise-colour bench: development-split recall in noise of several spectra, Earshot (the
committed model, or ``--model DIR``) and microWakeWord's alexa side by side.

Each positive (padded with 1 s of silence on both sides, as ``bench/accuracy.py``) gets
seeded Gaussian noise of one colour at ``--snr`` dB (default 10) below the padded clip's RMS,
as ``earshot.evaluate.add_noise`` measures SNR (silences included), where the noise's own
RMS is the one that counts: band-limited noise puts all of that power into its band.
Colours (COLOURS): ``white``; ``pink``, ``brown``, ``blue``, ``violet`` (power ~ 1/f^alpha
with alpha 1, 2, -1, -2: ``earshot.train.synth.colored_noise``); ``low`` (white below 2 kHz) and
``high`` (white above 4 kHz), each through an 8th-order Butterworth filter run forwards and
backwards (``scipy.signal.sosfiltfilt``). A clip's noise comes from
``numpy.random.default_rng([NOISE_SEED, clip index])``, so every colour and engine gets the
same draws. Positives: the speaker folds the model may be reported on (``--folds``, as
``bench/accuracy.py``: by default those it neither trained nor validated on; all of them for a
model that never read real positives). A fresh detector per clip; a clip counts when the
engine fires on it. Positives only: false accepts are ``bench/accuracy.py``'s job. Prints
one line per (engine, colour) with the clean count first; ``--json FILE`` writes them too.
About 1 minute per engine and colour on one core.

``--channel telephone`` first passes every padded clip through a telephone channel: down to
8 kHz and back up to 16 kHz (``scipy.signal.resample_poly``, the polyphase filter
``earshot.audio`` resamples 8 kHz files with), so nothing is left above 4 kHz; the noise is
added after it, as it would be in the room of a speakerphone or a television. This is the
band of the WUW Corpus II recordings, half of the development negatives.

Fans, air vents and running water put much of their power above 4 kHz; the bench's white
noise (``bench/accuracy.py --snr``) has its power spread evenly over 0-8 kHz.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from earshot.train import synth
from earshot.audio import SAMPLE_RATE_HZ, resample
from earshot.evaluate import NOISE_SEED, dev_side_by_side

#: colour -> (alpha of synth.colored_noise, or a band (lo_hz, hi_hz) of white noise)
COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0, "violet": -2.0,
           "low": (0.0, 2000.0), "high": (4000.0, 8000.0)}
#: channel -> the sample rate (Hz) a clip passes through before the noise (None: as recorded)
CHANNELS = {"none": None, "telephone": 8000}


def noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of ``colour`` (a key of COLOURS): float64 (n,), unit RMS. Raises
    ValueError for an unknown colour or n < 64 (too short to band-limit)."""
    from scipy.signal import butter, sosfiltfilt

    if colour not in COLOURS:
        raise ValueError(f"unknown noise colour {colour!r}; choose from {sorted(COLOURS)}")
    if n < 64:
        raise ValueError(f"noise: need at least 64 samples, got {n}")
    kind = COLOURS[colour]
    if isinstance(kind, tuple):
        lo, hi = kind
        x = rng.standard_normal(n)
        if lo > 0:
            x = sosfiltfilt(butter(8, lo, "highpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
        if hi < SAMPLE_RATE_HZ / 2:
            x = sosfiltfilt(butter(8, hi, "lowpass", fs=SAMPLE_RATE_HZ, output="sos"), x)
    else:
        x = synth.colored_noise(n, kind, rng).astype(np.float64)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def add_coloured_noise(x: np.ndarray, colour: str, snr_db: float,
                       rng: np.random.Generator) -> np.ndarray:
    """int16 ``x`` plus noise of ``colour`` whose RMS is ``snr_db`` dB below the RMS of ``x``
    (silences included); int16 (n,), rounded and saturated."""
    xf = x.astype(np.float64)
    rms = np.sqrt(np.mean(xf**2)) + 1e-9
    y = xf + noise(len(x), colour, rng) * rms / 10 ** (snr_db / 20)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def channel(x: np.ndarray, name: str) -> np.ndarray:
    """int16 ``x`` (16 kHz) through channel ``name`` (a key of CHANNELS): int16, same length,
    rounded and saturated. Raises ValueError for an unknown channel."""
    if name not in CHANNELS:
        raise ValueError(f"unknown channel {name!r}; choose from {sorted(CHANNELS)}")
    rate = CHANNELS[name]
    if rate is None:
        return x
    y = resample(x.astype(np.float64), SAMPLE_RATE_HZ, rate)
    # the way back gives ceil(n * rate / 16 kHz) * 16 kHz / rate >= n samples
    y = resample(y, rate, SAMPLE_RATE_HZ)[: len(x)]
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def run(model_dir=None, snr_db=10.0, colours=tuple(COLOURS), log=print,
        channel_name: str = "none", folds="test") -> list[dict]:
    engines, pos, info = dev_side_by_side(
        model_dir or Path(__file__).resolve().parents[1] / "models" / "alexa", folds)
    log(f"positives: {len(pos)} clips of speaker folds {info['selected']} of {info['folds']}")
    pos = [(name, channel(x, channel_name)) for name, x in pos]
    rows = []
    for eng in engines:
        for colour in (None, *colours):
            hits = 0
            for i, (_, x) in enumerate(pos):
                if colour is not None:
                    x = add_coloured_noise(x, colour, snr_db,
                                           np.random.default_rng([NOISE_SEED, i]))
                hits += len(eng.detect(x)) > 0
            rows.append({"engine": eng.name, "settings": eng.settings(),
                         "channel": channel_name,
                         "noise": colour or "clean", "snr_db": None if colour is None else snr_db,
                         "detected": int(hits), "positives": len(pos),
                         "folds": info["selected"]})
            where = "clean" if colour is None else f"{colour} noise at {snr_db:g} dB SNR"
            if channel_name != "none":
                where += f", {channel_name} channel"
            log(f"{eng.name} ({eng.settings()}), {where}: {hits}/{len(pos)}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="Earshot model directory (default: models/alexa)")
    ap.add_argument("--snr", type=float, default=10.0, help="SNR in dB (default 10)")
    ap.add_argument("--colour", action="append", choices=sorted(COLOURS),
                    help="only this colour (repeatable; default: all)")
    ap.add_argument("--channel", choices=sorted(CHANNELS), default="none",
                    help="pass the clips through this channel before the noise (default none)")
    ap.add_argument("--folds", default="test",
                    help="speaker folds of the positives: test (never trained or validated "
                    "on, default), all, or indices such as 3,4; used folds are refused")
    ap.add_argument("--json", type=Path, help="write the rows to this file")
    args = ap.parse_args(argv)
    rows = run(args.model, args.snr, tuple(args.colour or COLOURS), channel_name=args.channel,
               folds=args.folds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
