"""The ``earshot`` command line.

Each subcommand lives in ``earshot/cli/<name>.py`` and provides ``register(subparsers)``,
which adds its parser and sets ``func`` to a handler taking the parsed arguments and
returning an exit code. Heavy imports (TensorFlow, serial ports) happen inside handlers,
so ``earshot --help`` stays fast.
"""

import argparse
import importlib
import sys

from earshot import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = [
    "demo", "score", "board", "train", "export", "firmware", "flash", "deploy", "monitor", "plot",
    "repl", "adapt", "data", "eval",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earshot",
        description="Earshot: on-device wake-word engine for MicroPython on the ESP32-S3.",
    )
    parser.add_argument("--version", action="version", version=f"earshot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"earshot.cli.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
