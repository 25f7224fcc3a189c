"""``earshot repl``: open the board's REPL with mpremote (Ctrl-] or Ctrl-X to leave)."""

import subprocess
import sys

from earshot.cli import options


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
    options.add_port(p)
    p.set_defaults(func=handler)


def handler(args) -> int:
    from earshot.board.ports import PortError

    try:
        port = options.port(args)
    except PortError as exc:
        print(f"earshot repl: {exc}", file=sys.stderr)
        return 2
    return subprocess.call(command(port))
