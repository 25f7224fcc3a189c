"""Does the detector's first stage cost detections? Recall and false accepts of a model with the
first stage on (the default) and off (VAD on), same audio, same run.

    .venv/bin/python bench/gate_accuracy.py [--model models/alexa] [--snr 10] [--json]
                                           [--no-negatives]

Recall: the development "alexa" clips of EARSHOT_DATA (``wake-word-benchmark/alexa``, read and
padded with 1 s of silence by ``earshot.evaluate.load_positives``), a fresh detector per clip,
a clip counts when a detection fires. False accepts: every negative
(``earshot.train.dataset.all_negatives``) joined into one stream by
``earshot.evaluate.NegativeStream`` (shuffled, 0.5 s gaps), one detector per setting fed block
by block, detections within 1.5 s merged (``earshot.evaluate.merge``). ``--snr DB``: seeded
white noise (seed ``NOISE_SEED``) at that SNR, drawn for the positives first, then for the
negatives. Also reported: the share of hops on which the frontend and the model ran on the
negatives (``Detector.stats``). Takes a few minutes (the negatives are 3.8 h).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from earshot import core
from earshot.evaluate import NOISE_SEED, NegativeStream, load_positives, merge
from earshot.model import Model
from earshot.model import package as modelpkg
from earshot.paths import MODELS
from earshot.train import dataset

SETTINGS = {"first stage on": {}, "first stage off": {"gate": False}}


def measure(model_dir: Path, snr_db: float | None, negatives: bool = True) -> dict:
    _, blob = modelpkg.load(model_dir)
    model = Model(blob)
    root = dataset.data_dir()
    rng = np.random.default_rng(NOISE_SEED)
    clips = sorted((root / "wake-word-benchmark" / "alexa").glob("*.flac"),
                   key=lambda p: int(p.stem))  # fmt: skip
    positives, failed = load_positives(clips, snr_db, rng, log=lambda *a: None)
    res: dict = {"snr_db": snr_db, "clips": len(positives), "unreadable": len(failed)}
    for name, kw in SETTINGS.items():
        hits = sum(len(core.Detector(model, **kw).run(x).detections) > 0 for _, x in positives)
        res[name] = {"recall": hits, "recall_pct": round(100 * hits / len(positives), 1)}
    if not negatives:
        return res
    stream = NegativeStream(dataset.all_negatives(root), snr_db, rng)
    dets = {name: core.Detector(model, **kw) for name, kw in SETTINGS.items()}
    times: dict[str, list[float]] = {name: [] for name in dets}
    hops = 0
    carry = np.zeros(0, np.int16)
    for block in stream:
        x = np.concatenate([carry, block]) if len(carry) else block
        n = len(x) // core.HOP_SAMPLES * core.HOP_SAMPLES
        for name, det in dets.items():
            times[name] += [(hops + h + 1) * core.HOP_S for h in det.run(x[:n]).detections]
        hops += n // core.HOP_SAMPLES
        carry = x[n:].copy()
    res["negative_hours"] = round(stream.hours, 3)
    for name, det in dets.items():
        s = det.stats
        fa = len(merge(times[name]))
        res[name].update(
            false_accepts=fa,
            false_accepts_per_hour=round(fa / stream.hours, 2),
            frontend_hop_share=round(s["frontend_hops"] / s["hops"], 3),
            model_hop_share=round(s["model_hops"] / s["hops"], 3),
        )
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=MODELS / "alexa")
    ap.add_argument("--snr", type=float, default=None, help="white noise at this SNR, dB")
    ap.add_argument("--no-negatives", action="store_true", help="recall only (quick)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = measure(args.model.resolve(), args.snr, not args.no_negatives)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"snr {res['snr_db']}: {res['clips']} clips ({res['unreadable']} unreadable)"
          + (f", {res['negative_hours']} h of negatives" if "negative_hours" in res else ""))
    for name in SETTINGS:
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in res[name].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
