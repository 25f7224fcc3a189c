"""``earshot board``: run the virtual board until Ctrl-C, for mpremote/ampy by hand."""

import signal
import time
from pathlib import Path

from earshot.cli import options
from earshot.paths import BUILD


def register(sub) -> None:
    p = sub.add_parser(
        "board",
        help="run the virtual board (MicroPython unix port behind a pty) until Ctrl-C",
        description="Boot a virtual board whose flash is a folder and print its serial port "
        "path; `mpremote connect PATH ...` and `ampy --port PATH ...` work on it as on a "
        "board (soft reset is emulated). Runs until Ctrl-C.",
    )
    p.add_argument(
        "--flash", type=Path, default=BUILD / "vboard" / "flash",
        help="folder holding the board's files (default: build/vboard/flash)",
    )  # fmt: skip
    p.add_argument("--link", type=Path, help="port symlink path (default: <flash>.tty)")
    p.add_argument("--heapsize", help="MicroPython heap size, e.g. 512k (default: unix port's)")
    p.add_argument(
        "--deploy", action="store_true",
        help="copy the modules, _earshot.mpy and the model to the board first",
    )  # fmt: skip
    options.add_model(p, "model to deploy: package folder or blob (default: models/alexa)")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from rich.console import Console

    from earshot.board.vboard import BoardError, VirtualBoard

    console = Console()

    def on_term(signum, frame):
        raise KeyboardInterrupt  # stop cleanly (interpreter, ptys, symlink) on SIGTERM too

    signal.signal(signal.SIGTERM, on_term)
    board = VirtualBoard(args.flash, link=args.link, heapsize=args.heapsize)
    try:
        port = board.start()
    except BoardError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    try:
        if args.deploy:
            from earshot.board import deploy, natmod

            model = args.model or deploy.DEFAULT_MODEL
            try:
                natmod.ensure("x64")
                written = deploy.deploy(port, model=model)
            except (deploy.DeployError, natmod.NatmodError) as exc:
                console.print(f"[red]error:[/] {exc}")
                return 1
            console.print(f"deployed: {', '.join(written)}")
        console.print(f"virtual board on [bold]{port}[/] (flash: {board.flash_dir})")
        console.print(f"  try: mpremote connect {port} exec \"import os; print(os.listdir())\"")
        console.print("Ctrl-C to stop.")
        boots = board.boots
        while True:
            time.sleep(0.5)
            if board.boots != boots:
                boots = board.boots
                console.print(f"[dim]interpreter (re)started: {boots} boots so far[/]")
    except KeyboardInterrupt:
        return 0
    finally:
        board.stop()
