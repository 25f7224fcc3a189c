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
    "repl", "adapt", "data", "eval", "quantize",
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="earshot",
        description="Earshot: on-device wake-word engine for MicroPython on the ESP32-S3.",
    )
    parser.add_argument("--version", action="version", version=f"earshot {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"earshot.cli.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    """Run one verb; returns its exit code: 0 done, 1 a runtime error, 2 a usage error
    (argparse), 130 Ctrl-C. An error no verb handled is one line on stderr naming the verb
    and the problem, exit 1; ``--debug`` shows its traceback instead."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence, see the docstring
        if args.debug:
            raise
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"earshot {args.command}: error: {where}{what} ({type(exc).__name__}; "
              "--debug shows the traceback)", file=sys.stderr)  # fmt: skip
        if _needs_compiler(exc):
            print(f"earshot {args.command}: {COMPILER_HINT}", file=sys.stderr)
        return 1


#: What to do when the host library cannot be compiled (an installed wheel builds it from the
#: C core at first use, into the user's cache: earshot.paths.BUILD).
COMPILER_HINT = (
    "the C core (libearshot.so) is compiled at first use and needs make and a C compiler "
    "(cc, or $CC): e.g. apt-get install build-essential, or xcode-select --install"
)


def _needs_compiler(exc: Exception) -> bool:
    """The host library's build failed (no compiler, no make)."""
    if type(exc).__name__ == "CoreBuildError":
        return True
    return isinstance(exc, FileNotFoundError) and exc.filename in ("make", "cc")


if __name__ == "__main__":
    sys.exit(main())
