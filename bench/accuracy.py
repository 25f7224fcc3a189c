"""Accuracy bench: Earshot vs microWakeWord's "alexa" on the shared recordings, same run.

Method (shared ``data/README.md``): each development positive
(``wake-word-benchmark/alexa``, undecodable files reported and skipped) of the speaker folds
chosen by ``--folds`` is padded with 1 s of silence on both sides and run on its own (a fresh
detector); it counts when at least one detection fires. ``--folds test`` (the default) takes
only the folds the model neither trained nor validated on (its manifest's
``training.real_positives``; a model without that record never read the clips, so every fold
counts, and the table says so); a selection holding a fold the model trained or validated on
is refused (``earshot.evaluate.fold_positives``). All negatives (wake-word-benchmark
computer/jarvis/snowboy, precise-community, wuw-corpus-ii), resampled to 16 kHz, are shuffled with seed 0 and joined with 0.5 s of silence
into one stream; detections closer than 1.5 s are merged into one false accept. The same is
reported on the held-out negatives alone (never trained on, ``earshot.train.dataset``).

Earshot runs through the C core (``earshot.core.Detector``, VAD gate on, the model's default
cutoff/window/refractory). microWakeWord runs through ``pymicro-wakeword`` 2.5.0 with its
defaults (cutoff 0.9, window 5); each 30 ms step whose window mean exceeds the cutoff is a
detection, merged as above.

Recall comes with its 95 % Wilson interval, false accepts per hour with the exact Poisson one
(``earshot.evaluate.wilson``, ``earshot.evaluate.poisson_rate``).

``--snr DB`` adds seeded white Gaussian noise (seed 1) at that SNR to every clip, relative to
the clip's own RMS over its samples (pads and gaps included in the noise), for both engines.

    python bench/accuracy.py [--model models/alexa] [--folds test] [--clean --snr 10] [--json]
                             [--card README.md]

``--card FILE`` rewrites the block between ``<!-- bench:accuracy:begin -->`` and
``<!-- bench:accuracy:end -->`` in FILE with the table of this run (numbers from the run only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from earshot.evaluate import (
    NOISE_SEED,
    Earshot,
    MicroWakeWord,
    NegativeStream,
    fold_positives,
    load_positives,
    measure,
    merge,
    poisson_rate,
    run_header,
    scan_negatives,
)
from earshot.train import dataset

CARD_BEGIN = "<!-- bench:accuracy:begin -->"
CARD_END = "<!-- bench:accuracy:end -->"


# --- bench ------------------------------------------------------------------------------------


def run(model_dir, snr_db=None, limit_negatives=None, log=print, folds="test") -> dict:
    """Measure every engine on the development clips of speaker ``folds`` of the model
    (:func:`earshot.evaluate.fold_positives`); returns a JSON-able dict of results, with
    ``folds`` saying which. Raises UsedFolds (a ValueError) for a fold the model trained or
    validated on."""
    engines = [Earshot(model_dir), MicroWakeWord()]
    root = dataset.data_dir()
    pos_paths, fold_info = fold_positives(engines[0].manifest, folds)
    rng = np.random.default_rng(NOISE_SEED)
    positives, failed = load_positives(pos_paths, snr_db, rng, log)
    neg_paths = dataset.all_negatives(root)
    held = dataset.heldout_negatives(root)
    if limit_negatives:
        neg_paths = neg_paths[:limit_negatives]
        held = held[: max(1, limit_negatives // 3)]
    # Each stream is read once, in blocks, by every engine; the held-out one draws its noise
    # after the first, as when both were built whole.
    stream = NegativeStream(neg_paths, snr_db, rng)
    times, spent = scan_negatives(engines, stream)
    held_stream = NegativeStream(held, snr_db, rng)
    held_times, held_spent = scan_negatives(engines, held_stream)
    hours, held_hours = stream.hours, held_stream.hours
    results = run_header(snr_db, positives, failed, stream.clips, stream.failed, hours, digits=3)
    results.update(
        heldout_clips=held_stream.clips, heldout_hours=round(held_hours, 3), folds=fold_info
    )
    for k, eng in enumerate(engines):
        t0 = time.monotonic()
        r = measure(eng, positives, times[k][0], hours)
        fa_held = len(merge(held_times[k][0]))
        r["heldout_false_accepts"] = fa_held
        r["heldout_fa_per_hour"] = round(fa_held / held_hours, 3) if held_hours else None
        r["heldout_fa_per_hour_ci"] = (
            [round(v, 3) for v in poisson_rate(fa_held, held_hours)] if held_hours else None
        )
        r["seconds"] = round(time.monotonic() - t0 + spent[k] + held_spent[k], 1)
        results["engines"][eng.name] = r
        log(f"{eng.name}: done in {r['seconds']:.0f} s")
    return results


def folds_text(info: dict) -> str:
    """Which speaker folds a run measured, for the table's heading."""
    unused = f"folds {info['selected']} of {info['folds']}"
    if not info["recorded"]:
        return (f"{unused}, all of them: the model's manifest records no fold use (it never "
                f"read these clips; choices made with them in view are not recorded)")
    left = (f"; {info['left_out']} files left out for sharing a speaker with those"
            if info["left_out"] else "")
    return (f"{unused}, never trained or validated on (folds {info['train_folds']} trained "
            f"on, {info['validation_folds']} validated on{left})")


def _rate(r: dict, key: str) -> str:
    """False accepts with FA/h and its 95 % interval, e.g. "1 (0.26; 0.01-1.47)"."""
    fa, rate, ci = r[key.replace("fa_per_hour", "false_accepts")], r[key], r[f"{key}_ci"]
    return f"{fa} ({rate:.2f}; {ci[0]:.2f}-{ci[1]:.2f})"


def table(results: dict) -> str:
    """Markdown table of one run: recall and FA/h with their 95 % intervals."""
    snr = "clean" if results["snr_db"] is None else f"{results['snr_db']:g} dB SNR"
    lines = [
        f"Dev split, {folds_text(results['folds'])}, {snr}: {results['positives']} positives, "
        f"{results['negative_clips']} negative clips ({results['negative_hours']:.2f} h); "
        f"held-out negatives {results['heldout_clips']} clips "
        f"({results['heldout_hours']:.2f} h).",
        "",
        "| engine | settings | recall (95 % CI) | false accepts (FA/h; 95 % CI) "
        "| held-out FA (FA/h; 95 % CI) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["engines"].items():
        lo, hi = r["recall_ci"]
        lines.append(
            f"| {name} | {r['settings']} | {100 * r['recall']:.1f} % "
            f"({r['detected']}/{results['positives']}; {100 * lo:.1f}-{100 * hi:.1f}) | "
            f"{_rate(r, 'fa_per_hour')} | {_rate(r, 'heldout_fa_per_hour')} |"
        )
    return "\n".join(lines)


def write_card(card: Path, blocks: list[str]) -> None:
    """Replace the marked block of ``card`` with ``blocks``; ValueError if the markers are
    missing."""
    text = card.read_text()
    if CARD_BEGIN not in text or CARD_END not in text:
        raise ValueError(f"{card}: markers {CARD_BEGIN} / {CARD_END} not found")
    head, rest = text.split(CARD_BEGIN, 1)
    _, tail = rest.split(CARD_END, 1)
    body = "\n\n".join(blocks)
    card.write_text(f"{head}{CARD_BEGIN}\n{body}\n{CARD_END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/alexa", help="Earshot model package folder")
    ap.add_argument("--snr", type=float, action="append",
                    help="also run with seeded noise at this SNR in dB (repeatable)")
    ap.add_argument("--clean", action="store_true", help="with --snr: also run clean")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--card", type=Path, help="write the tables into this model card")
    ap.add_argument("--limit-negatives", type=int, help="use only the first N negatives (quick)")
    ap.add_argument("--folds", default="test",
                    help="speaker folds of the positives: test (never trained or validated "
                    "on, default), all, or indices such as 3,4; used folds are refused")
    args = ap.parse_args(argv)
    snrs = args.snr or [None]
    if args.snr and args.clean:
        snrs = [None] + snrs
    log = (lambda m: print(m, file=sys.stderr))
    try:
        runs = [run(args.model, s, args.limit_negatives, log, args.folds) for s in snrs]
    except (ValueError, FileNotFoundError) as exc:
        print(f"accuracy: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        print("\n\n".join(table(r) for r in runs))
    if args.card:
        if args.limit_negatives:
            print("accuracy: not writing a card from a --limit-negatives run", file=sys.stderr)
            return 2
        write_card(args.card, [table(r) for r in runs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
