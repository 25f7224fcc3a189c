"""``earshot repl``: open the board's REPL with mpremote (Ctrl-] or Ctrl-X to leave)."""

import subprocess
import sys


def command(port: str) -> list[str]:
    """The mpremote command line: ``resume`` so running code and state are kept."""
    return [sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"]


def register(sub) -> None:
    p = sub.add_parser(
        "repl",
        help="open the board's MicroPython REPL (mpremote)",
        description="Run `mpremote connect PORT resume repl`: the board is not reset. "
        "Leave with Ctrl-] or Ctrl-X.",
    )
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
    p.set_defaults(func=handler)


def handler(args) -> int:
    return subprocess.call(command(args.port))
