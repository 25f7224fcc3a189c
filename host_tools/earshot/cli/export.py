"""``earshot export``: write a model package's int8 .tflite or Earshot blob to a file."""

import shutil

from earshot.cli import options


def register(sub):
    p = sub.add_parser(
        "export",
        help="export a model as int8 .tflite or Earshot blob",
        description="Copy a checked model out of its package: --format tflite gives the int8 "
        "TFLite flatbuffer (runs in TFLite / TFLite Micro), --format blob the Earshot blob. "
        "The package is checked first (manifest against blob, as deploy and score do). "
        "Exit 1: a bad package (stderr names the file); 2: usage.",
    )
    p.add_argument("--format", choices=("tflite", "blob"), default="tflite",
                   help="int8 .tflite (default) or the Earshot blob")  # fmt: skip
    options.add_model(p, "model package folder, or its blob (default: models/alexa); "
                      "--format blob also takes a blob alone")
    options.add_out(p, "output file", required=True)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from earshot.model import package as modelpkg
    from earshot.score import default_model_dir

    model = args.model or default_model_dir()
    try:
        if args.format == "tflite":
            src = modelpkg.tflite_path(options.package_dir(model))
            shutil.copyfile(src, args.out)
            n = src.stat().st_size
        else:
            _, blob, _ = modelpkg.load_blob(model)
            with open(args.out, "wb") as f:
                f.write(blob)
            n = len(blob)
    except (ValueError, OSError) as exc:  # a bad package (package.load names the file)
        print(f"earshot export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({n} B, {args.format})")
    return 0
