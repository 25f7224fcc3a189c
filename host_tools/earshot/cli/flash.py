"""``earshot flash``: erase, write and verify Earshot firmware (and a model) with esptool."""

import shlex
import sys
from pathlib import Path

from earshot.cli import options
from earshot.paths import BUILD


def register(sub) -> None:
    p = sub.add_parser(
        "flash",
        help="erase, write and verify the firmware (and model partition) with esptool",
        description="Flash build/firmware/BOARD/firmware.bin (from `earshot firmware build`) "
        "at the board's offset and, with --model, the model blob into the 'model' data "
        "partition, then read both back to verify. Put the board in download mode first "
        "if it does not enter it by itself (hold BOOT, tap RESET). The model is checked "
        "before esptool runs (the C parser; a package's manifest against its blob). Exit 1: "
        "a bad input or a failed step (on stderr); 2: usage.",
    )
    options.add_port(p)
    p.add_argument("--board", required=True, help="board folder name under boards/")
    p.add_argument(
        "--firmware", type=Path, help="image (default: build/firmware/BOARD/firmware.bin)"
    )
    options.add_model(p, "model for the 'model' partition: package folder or blob (checked "
                      "first)")
    p.add_argument("--baud", type=int, help="default: the board's (board.json)")
    p.add_argument("--no-erase", action="store_true", help="keep the rest of the flash")
    p.add_argument("--no-verify", action="store_true", help="skip the read-back")
    options.add_out(p, "write one merged image (firmware, model) to FILE instead of flashing",
                    dest="merge", extra=("--merge",))
    p.add_argument("--dry-run", action="store_true", help="print the esptool commands only")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from rich.console import Console

    from earshot.board import boards, flash, ports

    console = Console()
    try:
        board = boards.load(args.board)
        firmware = args.firmware or BUILD / "firmware" / board.name / "firmware.bin"
        if args.merge is not None:
            argv_list = [flash.merge_args(board, firmware, args.model, args.merge)]
        else:
            try:
                port = options.port(args)
            except ports.PortError:
                if not args.dry_run:
                    raise
                port = "PORT"  # a dry run with no board found: a placeholder to fill in
            argv_list = flash.steps(
                board, port, firmware, args.model, args.baud,
                erase=not args.no_erase, verify=not args.no_verify,
            )  # fmt: skip
        if args.dry_run:
            for argv in argv_list:  # plain print: a command to copy must not be wrapped
                print("esptool " + " ".join(shlex.quote(a) for a in argv))
            return 0
        flash.run(argv_list, console)
    except ports.PortError as exc:  # no board, or several: say which --port to pass
        print(f"earshot flash: {exc}", file=sys.stderr)
        return 2
    except (boards.BoardError, flash.FlashError) as exc:
        print(f"earshot flash: {exc}", file=sys.stderr)
        return 1
    console.print("[green]done[/]")
    return 0
