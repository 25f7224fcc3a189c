"""Adaptation bench: per-user weight adaptation and channel pruning on real recordings.

Users: the development positives ``wake-word-benchmark/alexa`` sorted by number, in blocks
of ``--block`` (10) consecutive files (neighbouring files share a speaker); 120 files make 12
users. Each user adapts on its first ``--k`` (4) utterances plus ``--ambient`` (40) ambient
clips drawn (seed = user index) from ``earshot.dataset.training_negatives("train")``, each
clip and utterance padded with 1 s of silence and run as its own stream through
``earshot.adapt.adapt`` (pseudo-labels from the model's own outputs: no ground truth is
used for adapting). The user's remaining utterances are the test: each padded with 1 s of
silence, a fresh detector (VAD on, the blob's cutoff/window/refractory), a hit when at least
one detection fires (as bench/accuracy.py). False accepts: the held-out negatives
(``earshot.dataset.heldout_negatives``), shuffled with seed 0 and joined with 0.5 s gaps
into one stream, detections within 1.5 s merged (bench/accuracy.py), per user's model.

Reported per user and averaged: recall and FA/h before (factory) and after adaptation, for
the adapted model and for models pruned at ``--ratios`` (data-aware importance, bias
correction, then fine-tuned); blob bytes and MACs per output before and after pruning;
``pruned_blob_ratio`` / ``pruned_macs_ratio`` / ``recall_pruned`` / ``fa_per_hour_pruned``
at ``--main-ratio``. ``--png`` writes the size-vs-recall curve (averaged over users).
``--vboard`` also runs user 0's adaptation through the virtual board (firmware/modules/
es_adapt.py on the MicroPython unix port) and checks its blob equals the host's.

    python bench/adapt.py [--json] [--png bench/adapt_size_recall.png] [--vboard]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import GAP_S, HOP_S, PAD_S, merge, negative_stream, pad  # noqa: E402

from earshot import adapt, core, dataset  # noqa: E402
from earshot.model import Model  # noqa: E402

FACTORY = ROOT / "models" / "alexa" / "model.bin"


def users(block: int) -> list[list[Path]]:
    files = dataset.dev_positives()
    return [files[i : i + block] for i in range(0, len(files) - block + 1, block)]


def recall(blob: bytes, clips) -> float:
    model = Model(blob)
    hits = 0
    for c in clips:
        hits += bool(core.Detector(model).run(pad(c, PAD_S)).detections)
    return hits / max(1, len(clips))


def false_accepts(blob: bytes, stream: np.ndarray) -> int:
    res = core.Detector(Model(blob)).run(stream)
    return len(merge([(h + 1) * HOP_S for h in res.detections]))


def ambient(n: int, seed: int) -> list[np.ndarray]:
    negs = sorted(p for ps in dataset.training_negatives(part="train").values() for p in ps)
    pick = random.Random(seed).sample(negs, n)
    clips, _ = dataset.load_clips(pick)
    return [pad(c, PAD_S) for c in clips]


def run(args, log=print) -> dict:
    factory = FACTORY.read_bytes()
    fmodel = Model(factory)
    cfg = dict(adapt.DEFAULTS)
    t0 = time.time()
    held, n_held, _ = negative_stream(dataset.heldout_negatives(), None, np.random.default_rng(1))
    hours = len(held) / 16000 / 3600
    fa_before = false_accepts(factory, held)
    log(f"held-out negatives: {n_held} clips, {hours:.3f} h, factory FA {fa_before}")
    per_user = []
    curve = {r: [] for r in args.ratios}
    sizes = {}
    for u, files in enumerate(users(args.block)[: args.users]):
        clips, _ = dataset.load_clips(files)
        train, test = clips[: args.k], clips[args.k :]
        streams = [pad(c, PAD_S) for c in train] + ambient(args.ambient, u)
        rec_before = recall(factory, test)
        res = adapt.adapt(factory, streams, cfg)
        row = {
            "user": u,
            "files": f"{files[0].name}..{files[-1].name}",
            "positives": res.positives,
            "negatives": res.negatives,
            "recall_before": rec_before,
            "recall_after": recall(res.blob, test),
            "fa_before": fa_before,
            "fa_after": false_accepts(res.blob, held),
        }
        for r in args.ratios:
            pr = adapt.adapt(factory, streams, cfg, prune_ratio=r)
            m = Model(pr.blob)
            sizes[r] = (len(pr.blob), m.info["macs_per_output"])
            rec = recall(pr.blob, test)
            curve[r].append(rec)
            if r == args.main_ratio:
                row["recall_pruned"] = rec
                row["fa_pruned"] = false_accepts(pr.blob, held)
                row["learning_memory_bytes_pruned"] = pr.learning_memory_bytes
        row["learning_memory_bytes"] = res.learning_memory_bytes
        row["buffer_bytes"] = res.buffer_bytes
        per_user.append(row)
        log(json.dumps(row))
    n = len(per_user)

    def avg(key):
        return sum(r[key] for r in per_user) / n

    blob_main, macs_main = sizes[args.main_ratio]
    out = {
        "users": n,
        "block": args.block,
        "k": args.k,
        "ambient_clips": args.ambient,
        "test_utterances": sum(len(f) - args.k for f in users(args.block)[:n]),
        "heldout_hours": round(hours, 4),
        "recall_before": avg("recall_before"),
        "recall_after": avg("recall_after"),
        "fa_per_hour_before": avg("fa_before") / hours,
        "fa_per_hour_after": avg("fa_after") / hours,
        "main_ratio": args.main_ratio,
        "recall_pruned": avg("recall_pruned"),
        "fa_per_hour_pruned": avg("fa_pruned") / hours,
        "blob_bytes_before": len(factory),
        "blob_bytes_pruned": blob_main,
        "macs_before": fmodel.info["macs_per_output"],
        "macs_pruned": macs_main,
        "pruned_blob_ratio": len(factory) / blob_main,
        "pruned_macs_ratio": fmodel.info["macs_per_output"] / macs_main,
        "learning_memory_bytes": max(r["learning_memory_bytes"] for r in per_user),
        "buffer_bytes": per_user[0]["buffer_bytes"],
        "curve": [
            {"prune_ratio": r, "blob_bytes": sizes[r][0], "macs": sizes[r][1],
             "recall": sum(curve[r]) / n}
            for r in args.ratios
        ],
        "per_user": per_user,
        "seconds": round(time.time() - t0, 1),
    }
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(result["blob_bytes_before"], result["recall_after"])] + [
        (c["blob_bytes"], c["recall"]) for c in result["curve"]
    ]
    pts.sort()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label="adapted (+ pruned)")
    ax.axhline(100 * result["recall_before"], color="grey", ls="--", label="factory")
    for c in result["curve"]:
        ax.annotate(f"{c['prune_ratio']:.2f}", (c["blob_bytes"], 100 * c["recall"]))
    ax.set_xlabel("model blob (bytes)")
    ax.set_ylabel(f"recall, {result['users']} users (%)")
    ax.set_title("Earshot on-device adaptation: size vs recall")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--ambient", type=int, default=40)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.4, 0.5, 0.6])
    ap.add_argument("--main-ratio", type=float, default=0.5)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.main_ratio not in args.ratios:
        args.ratios.append(args.main_ratio)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    result = run(args, log)
    if args.png:
        plot(result, args.png)
    if args.json:
        print(json.dumps(result))
    else:
        keys = [k for k in result if k not in ("per_user", "curve")]
        for k in keys:
            log(f"{k:24s} {result[k]}")
        for c in result["curve"]:
            log(f"prune {c['prune_ratio']:.2f}: {c['blob_bytes']} B, {c['macs']} MACs, "
                f"recall {100 * c['recall']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
