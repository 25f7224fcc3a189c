"""``earshot eval``: recall and FA/h of Earshot and microWakeWord on the same audio."""

import argparse
import json
import sys

from earshot.cli import options

HELP = """\
Method (as ../shared/data/README.md): each positive file is padded with 1 s of silence and run on
its own (detected = at least one detection); all negative files, resampled to 16 kHz, are shuffled
with seed 0 and joined with 0.5 s gaps into one stream; detections within 1.5 s are merged into
one false accept. --snr mixes seeded white noise (seed 1) at that SNR into every clip, the same
audio for both engines. Unreadable files are reported on stderr and skipped.

Earshot runs through the C core at the model's own cutoff/window (VAD gate on); microWakeWord's
alexa (pymicro-wakeword) at its defaults, cutoff 0.9 and window 5.

--folds test takes the positives from the development clips of the model's wake word
($EARSHOT_DATA/wake-word-benchmark/<word>, or the folder its manifest names), only the speaker
folds the model neither trained nor validated on (manifest training.real_positives; a model
without that record never read them, and every fold counts). Any positive file of a fold the
model trained or validated on is refused, with --folds and with --positives alike.

--json prints one object: snr_db, positives, positives_unreadable, negative_clips,
negative_unreadable, negative_hours (h), with --folds "folds" (source, folds, selected,
train_folds, validation_folds, unused_folds, recorded, left_out), and per engine under
"engines": settings, cutoff, detected, recall (fraction), recall_ci (95 %, Wilson),
first20_detected, missed (file names), false_accepts, fa_per_hour, fa_per_hour_ci (95 %,
exact Poisson), seconds (the engine's own processing time), and with --det the sweep
"det": [{cutoff, frr (fraction), fa_per_hour}, ...].

The negatives are read in blocks of at most a minute, each fed to every engine in turn, so
memory stays bounded whatever their hours; the numbers are those of the whole stream at once.
"""


def _finite_db(text: str) -> float:
    """A finite number of dB for --snr; NaN or infinity would silently score nothing."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dB") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of dB")
    return value


def register(sub):
    p = sub.add_parser(
        "eval",
        help="recall and FA/h of Earshot and microWakeWord on the same audio",
        description="Evaluate a model against microWakeWord's alexa on folders of audio.",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--positives", metavar="DIR", help="wake-word clips")
    src.add_argument(
        "--folds",
        metavar="WHICH",
        help="the model's speaker folds of the development clips: test (never used), "
        "all, or indices such as 3,4 (refused if trained or validated on)",
    )
    p.add_argument("--negatives", required=True, metavar="DIR", help="clips without it")
    options.add_model(p, "model package folder, or the blob inside one (default: models/alexa)")
    p.add_argument("--snr", type=_finite_db, metavar="DB", help="mix seeded noise at this SNR")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    options.add_out(p, "also sweep cutoffs and plot the DET curve to FILE (.png)", dest="det",
                    extra=("--det",))
    p.add_argument("--no-mww", action="store_true", help="skip microWakeWord")
    p.set_defaults(func=run)


def folds_line(info: dict) -> str:
    """One line on the folds a run measured (``evaluate.fold_positives``'s info)."""
    used = (
        f"folds {info['train_folds']} trained on, {info['validation_folds']} validated on"
        if info["recorded"]
        else "no fold use recorded (the model never read these clips)"
    )
    left = f", {info['left_out']} files left out for sharing a speaker" if info["left_out"] else ""
    return f"{info['source']}: folds {info['selected']} of {info['folds']} ({used}{left})"


def run(args) -> int:
    from rich.console import Console

    from earshot import evaluate
    from earshot.paths import MODELS, DataMissing

    err = Console(stderr=True, soft_wrap=True)
    try:
        with options.as_package(args.model or MODELS / "alexa") as (model, alone):
            if alone and args.folds:
                raise ValueError(f"{args.model}: a blob alone names no wake word or folds; "
                                 "use --positives, or give its package folder")  # fmt: skip
            res = _evaluate(args, model, err)
        if args.det:
            evaluate.plot_det(res, args.det)
            err.print(f"DET curve written to {args.det}", highlight=False)
    except (ValueError, FileNotFoundError, OSError, DataMissing) as exc:
        err.print(f"earshot eval: {exc}", highlight=False, markup=False, style="red")
        return 2
    return _report(args, res)


def _evaluate(args, model, err) -> dict:
    from earshot import evaluate

    return evaluate.evaluate(
        args.positives,
        args.negatives,
        model,
        snr_db=args.snr,
        det=bool(args.det),
        mww=not args.no_mww,
        log=lambda m: err.print(m, highlight=False, markup=False),
        folds=args.folds,
    )


def _report(args, res: dict) -> int:
    """Print the results: JSON with --json, else a line per engine."""
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
        return 0
    snr = "clean" if res["snr_db"] is None else f"{res['snr_db']:g} dB SNR"
    if "folds" in res:
        print(folds_line(res["folds"]))
    print(
        f"{snr}: {res['positives']} positives, {res['negative_clips']} negative clips "
        f"({res['negative_hours']:.2f} h)"
    )
    for name, r in res["engines"].items():
        lo, hi = r["recall_ci"]
        fa_lo, fa_hi = r["fa_per_hour_ci"]
        print(
            f"  {name:<14} {r['settings']:<32} recall {100 * r['recall']:5.1f} % "
            f"({r['detected']}/{res['positives']}; 95 % CI {100 * lo:.1f}-{100 * hi:.1f})  "
            f"false accepts {r['false_accepts']} ({r['fa_per_hour']:.2f}/h; 95 % CI "
            f"{fa_lo:.2f}-{fa_hi:.2f})"
        )
    return 0
