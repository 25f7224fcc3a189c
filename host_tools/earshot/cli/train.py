"""``earshot train``: synthesise data, train, quantise and package a wake-word model."""

import argparse
import json
import sys

HELP = """\
Writes into --out: model.bin (Earshot blob), model.tflite (int8) and manifest.json (schema 1,
with the measured training numbers under "training"). Synthetic audio is cached under
build/synth/ and reused when the specs and the TTS stack (earshot.train.synth.stack_versions) are
unchanged. The development clips
wake-word-benchmark/alexa are never used; a seeded 30 % of the other wake-word-benchmark
folders is held out (earshot.train.dataset.heldout_negatives()).
"""


def register(sub):
    p = sub.add_parser(
        "train",
        help="train a wake-word model and write its package",
        description="Train a wake-word model from synthetic speech and real negatives.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="JSON", help="training config (default: built-in)")
    p.add_argument("--wake-word", metavar="TEXT", help="override the config's wake word")
    p.add_argument("--out", metavar="DIR", help="package folder (default models/<wake word>)")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--train-seeds", type=int, nargs="+", metavar="N",
                   help="train once per train_seed (same data) and keep the run with the best "
                   "validation recall (earshot.train.train_seeds)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from earshot import train
    from earshot.paths import MODELS, DataMissing

    err = Console(stderr=True)

    def log(m):
        err.print(m, highlight=False)

    overrides = {}
    for key in ("wake_word", "seed", "epochs"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        cfg = train.load_config(args.config, overrides)
        out = args.out or MODELS / cfg["wake_word"].replace(" ", "_")
        if args.train_seeds:
            summary = train.train_seeds(cfg, out, args.train_seeds, log=log)
        else:
            summary = train.train(cfg, out, log=log)
    except (ValueError, FileNotFoundError, DataMissing) as exc:
        err.print(f"[red]earshot train: {exc}[/red]")
        return 2
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0
