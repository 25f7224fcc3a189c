"""Input-level bench: development-split recall with every positive scaled to one peak level,
Earshot (the committed model, or ``--model DIR``) and microWakeWord's alexa side by side.

Each positive of the speaker folds the model may be reported on (``--folds``, as
``bench/accuracy.py``: by default those it neither trained nor validated on; all of them for a
model that never read real positives), padded with 1 s of silence on both sides, is scaled
so that its largest sample sits at PEAK_DBFS dBFS (``as recorded``: unscaled), then, with
``--snr DB``, mixed with seeded white noise (``earshot.evaluate.add_noise``, seed NOISE_SEED
drawn afresh per level) at that SNR below the scaled clip's RMS. A fresh detector per clip;
a clip counts when the engine fires on it. Positives only: false accepts are
``bench/accuracy.py``'s job. Prints one line per (engine, SNR, level); ``--json FILE`` writes
them too. About 1 minute per engine and SNR on 2 cores.

The training augmentation sets each clip's peak to ``augment.peak_dbfs`` (default -35..-6
dBFS, ``earshot.train.synth.augment``); real recordings reach full scale
(research/alexa/sessions.md, session 17).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from earshot.evaluate import NOISE_SEED, add_noise, dev_side_by_side

PEAK_DBFS = (None, 0, -3, -6, -10, -20, -30)  # None: as recorded


def scale_to_peak(x: np.ndarray, peak_dbfs: float | None) -> np.ndarray:
    """int16 ``x`` scaled so its largest |sample| is ``peak_dbfs`` dBFS (None: unchanged);
    int16 (n,). Raises ValueError for an all-zero clip."""
    if peak_dbfs is None:
        return x
    peak = float(np.max(np.abs(x.astype(np.float64)))) if len(x) else 0.0
    if peak == 0.0:
        raise ValueError("scale_to_peak: the clip is silent (all samples 0)")
    y = x.astype(np.float64) * (32767.0 * 10 ** (peak_dbfs / 20) / peak)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def run(model_dir=None, snrs=(None,), levels=PEAK_DBFS, log=print, folds="test") -> list[dict]:
    engines, pos, info = dev_side_by_side(
        model_dir or Path(__file__).resolve().parents[1] / "models" / "alexa", folds)
    log(f"positives: {len(pos)} clips of speaker folds {info['selected']} of {info['folds']}")
    rows = []
    for eng in engines:
        for snr in snrs:
            for level in levels:
                rng = np.random.default_rng(NOISE_SEED)
                hits = sum(len(eng.detect(add_noise(scale_to_peak(x, level), snr, rng))) > 0
                           for _, x in pos)
                row = {"engine": eng.name, "settings": eng.settings(), "snr_db": snr,
                       "peak_dbfs": level, "detected": int(hits), "positives": len(pos),
                       "folds": info["selected"]}
                rows.append(row)
                log(f"{eng.name} ({eng.settings()}), "
                    f"{'clean' if snr is None else f'{snr:g} dB SNR'}, peak "
                    f"{'as recorded' if level is None else f'{level:g} dBFS'}: "
                    f"{hits}/{len(pos)}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="Earshot model directory (default: models/alexa)")
    ap.add_argument("--snr", type=float, action="append", default=[],
                    help="also run with seeded white noise at this SNR in dB (repeatable)")
    ap.add_argument("--folds", default="test",
                    help="speaker folds of the positives: test (never trained or validated "
                    "on, default), all, or indices such as 3,4; used folds are refused")
    ap.add_argument("--json", type=Path, help="write the rows to this file")
    args = ap.parse_args(argv)
    rows = run(args.model, [None] + args.snr, folds=args.folds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
