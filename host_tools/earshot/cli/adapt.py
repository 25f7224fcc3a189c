"""``earshot adapt``: adapt a model to a user's recordings on the host, or restore the factory
model on a board."""

import sys

from earshot.cli import options

HELP = """\
--rollback --port PORT   delete the adapted model on the board (es_adapt.restore() through
                         mpremote): the board falls back to its factory model.bin.
FILE... --out BLOB       host-side adaptation through the C core (ctypes), the same code and
                         pseudo-labelling rule as the board (firmware/modules/es_adapt.py):
                         FILEs (wav/flac; the user's utterances and ambient audio) are
                         pseudo-labelled by the model, its last pointwise layer and classifier
                         are fine-tuned, and the adapted blob is written to BLOB. --prune R
                         also prunes R (0..1) of every channel group and fine-tunes the pruned
                         student from the adapted model.
Prints one JSON object: positives, negatives, blob_bytes, macs_per_output,
learning_memory_bytes, buffer_bytes.
"""


def register(sub):
    p = sub.add_parser(
        "adapt",
        help="adapt a model to a user (host) or roll a board back to its factory model",
        description="On-device adaptation: host driver and board rollback.",
        epilog=HELP,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="wav or flac file")
    p.add_argument("--rollback", action="store_true", help="restore the board's factory model")
    options.add_port(p, "serial port (or virtual board pty) for --rollback: a path, or auto "
                        "(default: $EARSHOT_PORT, else auto)")
    options.add_model(p)
    options.add_out(p, "where to write the adapted blob")
    p.add_argument("--prune", type=float, default=0.0, metavar="R", help="prune ratio 0..1")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from earshot import adapt

    if args.rollback:
        from earshot.board.deploy import DeployError
        from earshot.board.ports import PortError

        try:
            port = options.port(args)
        except PortError as exc:
            print(f"earshot adapt: {exc}", file=sys.stderr)
            return 2
        try:
            answer = adapt.rollback(port)
        except DeployError as exc:
            print(f"earshot adapt: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"rollback": True, "removed_adapted_model": answer.endswith("True")}))
        return 0
    if not args.files or not args.out:
        print("earshot adapt: give FILEs and -o/--out (or --rollback)", file=sys.stderr)
        return 2
    if not 0.0 <= args.prune < 1.0:
        print(f"earshot adapt: --prune must be in [0, 1), got {args.prune}", file=sys.stderr)
        return 2
    from earshot.train import dataset
    from earshot.model import package as modelpkg
    from earshot.audio import AudioError
    from earshot.model import Model
    from earshot.score import default_model_dir

    try:
        _, blob, _ = modelpkg.load_blob(args.model or default_model_dir())
        clips, failed = dataset.load_clips(args.files)
    except (OSError, ValueError, AudioError) as exc:
        print(f"earshot adapt: {exc}", file=sys.stderr)
        return 1
    for path, why in failed:
        print(f"earshot adapt: skipped {path}: {why}", file=sys.stderr)
    res = adapt.adapt(blob, clips, prune_ratio=args.prune)
    with open(args.out, "wb") as f:
        f.write(res.blob)
    print(
        json.dumps(
            {
                "positives": res.positives,
                "negatives": res.negatives,
                "blob_bytes": len(res.blob),
                "macs_per_output": Model(res.blob).info["macs_per_output"],
                "learning_memory_bytes": res.learning_memory_bytes,
                "buffer_bytes": res.buffer_bytes,
            }
        )
    )
    return 0
