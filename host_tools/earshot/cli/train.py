"""``earshot train``: synthesise data, train, quantise and package a wake-word model."""

import argparse
import json
import sys
import time

HELP = """\
Writes into --out: model.bin (Earshot blob), model.tflite (int8) and manifest.json (schema 1,
with the measured training numbers under "training" and the validation numbers under
"validation"). Prints a short summary; --json prints every number instead.

Presets (--preset NAME, configs/NAME.json): "quick" trains a usable model of any phrase in
about 15 minutes on 2 cores, and exits 3 when its validation recall is below 0.9.

Without the shared recordings (EARSHOT_DATA unset or missing) a run trains on synthetic
speech and the Debian speech it finds; with them, on those too. Negatives never say the wake
word: confusable phrases are generated from espeak-ng's phonemes, and sentences, passages and
real-negative folders that say it are left out (docs/training.md).

Synthetic audio is cached under build/synth/ and reused when the specs and the TTS stack
(earshot.train.synth.stack_versions) are unchanged; --synth-dir reads the clips of
`earshot data synth --out DIR` instead. The development clips wake-word-benchmark/alexa are
never used unless a config names speaker folds; a seeded 30 % of the other
wake-word-benchmark folders is held out (earshot.train.dataset.heldout_negatives()).
Exit status: 0 done, 2 bad input or missing data, 3 model written but validation recall below
the config's min_validation_recall.
"""


def register(sub):
    p = sub.add_parser(
        "train",
        help="train a wake-word model and write its package",
        description="Train a wake-word model from synthetic speech and real negatives.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="JSON", help="training config (default: built-in)")
    src.add_argument("--preset", metavar="NAME",
                     help="a shipped recipe, configs/NAME.json (e.g. quick)")
    p.add_argument("--wake-word", metavar="TEXT", help="override the config's wake word")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="package folder (default models/<wake word>)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--synth-dir", metavar="DIR",
                   help="train on the clips of `earshot data synth --out DIR` (no rendering)")
    p.add_argument("--train-seeds", type=int, nargs="+", metavar="N",
                   help="train once per train_seed (same data) and keep the run with the best "
                   "validation recall (earshot.train.train_seeds)")
    p.add_argument("--json", action="store_true",
                   help="print the whole training summary as JSON (default: a short summary)")
    p.set_defaults(func=run)


def preset_path(name: str):
    """configs/<name>.json of a shipped preset. Raises ValueError naming the presets there."""
    from earshot.paths import ROOT

    folder = ROOT / "configs"
    path = folder / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise ValueError(f"no preset {name!r}: choose one of {', '.join(known) or '(none)'}")
    return path


def short_summary(summary: dict, out) -> list[str]:
    """The few lines a user reads after training: where the model is, its validation recall
    and false accepts, detector settings, size, time."""
    lines = [f"model: {out}"]
    if "validation_recall" in summary:
        lines.append(
            f"validation: recall {summary['validation_recall']:.3f}, "
            f"{summary.get('validation_false_accepts', '?')} false accepts in "
            f"{summary.get('validation_negative_hours', 0):.2f} h of negatives")
    if "cutoff" in summary:
        lines.append(f"detector: cutoff {summary['cutoff']:.2f}, window {summary['window']}")
    data = [f"{summary[k]} {what}" for k, what in (
        ("synthetic_positives", "positives"), ("synthetic_negatives", "negatives"),
        ("real_negative_clips", "real negative clips")) if k in summary]
    if data:
        lines.append("data: " + ", ".join(data))
    if "total_seconds" in summary:
        lines.append(f"time: {summary['total_seconds'] / 60:.1f} min")
    return lines


def run(args) -> int:
    from rich.console import Console

    from earshot import train
    from earshot.paths import MODELS, DataMissing
    from earshot.train.synth import SynthError

    err = Console(stderr=True, soft_wrap=True)  # a log line stays one line off a terminal
    t0 = time.monotonic()

    def log(m):
        # elapsed time on every line, so a log file shows where the time went
        err.print(f"[{time.monotonic() - t0:6.0f} s] {m}", highlight=False, markup=False)

    overrides = {}
    for key in ("wake_word", "seed", "epochs"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if "wake_word" in overrides:
        overrides["wake_word"] = " ".join(overrides["wake_word"].split())
    try:
        path = preset_path(args.preset) if args.preset else args.config
        cfg = train.load_config(path, overrides)
        if not cfg["wake_word"].strip():
            raise ValueError("the wake word is empty")
        out = args.out or MODELS / cfg["wake_word"].replace(" ", "_")
        if args.train_seeds:
            summary = train.train_seeds(cfg, out, args.train_seeds, log=log,
                                        synth_dir=args.synth_dir)
        else:
            summary = train.train(cfg, out, log=log, synth_dir=args.synth_dir)
    except (ValueError, FileNotFoundError, DataMissing, SynthError) as exc:
        err.print(f"earshot train: {exc}", style="red", highlight=False, markup=False)
        return 2
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print("\n".join(short_summary(summary, out)))
    problem = train.recall_problem(summary, cfg)
    if problem:
        err.print(f"earshot train: not usable: {problem} (package kept in {out})",
                  style="red", highlight=False, markup=False)
        return 3
    return 0
