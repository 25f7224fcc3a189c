"""``earshot quantize``: re-quantize a model package, int8 or mixed int8 / packed int4."""

import argparse

from earshot.cli import options


def register(sub):
    p = sub.add_parser(
        "quantize",
        help="re-quantize a model: int8, or int4 where it costs no accuracy",
        description="Re-quantize a model package into a new one (model.bin, model.tflite, "
        "manifest.json, README.md) without retraining. The float starting point is the "
        "package's int8 .tflite, dequantized. --bits 8 keeps every layer int8; --bits auto "
        "measures each layer's sensitivity (validation accuracy drop with that layer alone at "
        "4 bits) and packs the layers within --max-drop as int4 (two weights per byte, "
        "per-channel scales; blob format 3). Then --qat-epochs epochs of quantization-aware "
        "fine-tuning on the training data earshot train cached (build/synth) and the shared "
        "negatives; the development split is never read. The .tflite stays int8 (TFLite has "
        "no packed int4 for these ops: the 4-bit layers hold values in [-7, 7]). "
        "Exit 1: a bad package or missing data; 2: usage.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_model(p, "model package folder (default: models/alexa)")
    p.add_argument("--bits", choices=("8", "auto"), default="auto",
                   help="8: all layers int8; auto: int4 per layer by measured sensitivity")
    p.add_argument("--qat-epochs", type=int, default=2, metavar="N",
                   help="epochs of quantization-aware fine-tuning (0: none)")
    p.add_argument("--max-drop", type=float, default=0.005, metavar="ACC",
                   help="--bits auto: largest validation accuracy drop (0..1) a layer may "
                   "cause alone at 4 bits")
    p.add_argument("--positives", type=int, default=600, metavar="N",
                   help="positive clips per part (validation, fine-tuning), at most")
    p.add_argument("--negatives", type=int, default=300, metavar="N",
                   help="real and synthetic negative clips per part, at most")
    p.add_argument("--seed", type=int, default=0)
    options.add_out(p, "output package folder", required=True)
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from earshot.model import quantize
    from earshot.score import default_model_dir

    if args.qat_epochs < 0 or not 0 <= args.max_drop <= 1:
        print("earshot quantize: --qat-epochs must be >= 0 and --max-drop in 0..1",
              file=sys.stderr)
        return 2
    model = args.model or default_model_dir()
    log = (lambda m: print(m, file=sys.stderr))
    try:
        man = quantize.requantize(
            options.package_dir(model), args.out, args.bits, args.qat_epochs,
            max_drop=args.max_drop, max_pos=args.positives, max_neg_clips=args.negatives,
            seed=args.seed, log=log)
    except (ValueError, OSError) as exc:
        print(f"earshot quantize: {exc}", file=sys.stderr)
        return 1
    q = man["quantization"]
    print(f"wrote {args.out}: blob {man['blob_bytes']} B, weight bits {q['weight_bits']}, "
          f"validation accuracy {q['validation_accuracy']:.4f}")
    return 0
