"""``earshot export``: write a model package's int8 .tflite or Earshot blob to a file."""

import argparse
import shutil


def register(sub):
    p = sub.add_parser(
        "export",
        help="export a model as int8 .tflite or Earshot blob",
        description="Copy a checked model out of its package: --format tflite gives the int8 "
        "TFLite flatbuffer (runs in TFLite / TFLite Micro), --format blob the Earshot blob. "
        "The package is checked first (manifest against blob, as deploy and score do). "
        "Exit 1: a bad package (stderr names the file); 2: usage.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--format", choices=("tflite", "blob"), default="tflite")
    p.add_argument("--model", metavar="DIR", default="models/alexa", help="package folder")
    p.add_argument("--out", metavar="FILE", required=True, help="output file")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from earshot.model import package as modelpkg

    try:
        if args.format == "tflite":
            src = modelpkg.tflite_path(args.model)
            shutil.copyfile(src, args.out)
            n = src.stat().st_size
        else:
            _, blob = modelpkg.load(args.model)
            with open(args.out, "wb") as f:
                f.write(blob)
            n = len(blob)
    except (ValueError, OSError) as exc:  # a bad package (package.load names the file)
        print(f"earshot export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({n} B, {args.format})")
    return 0
