"""``earshot deploy``: copy the on-device modules, ``_earshot.mpy`` and a model to a board."""

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "deploy",
        help="copy Earshot's modules, native module and model to a board (mpremote or ampy)",
        description="Copy firmware/modules/*.py, the _earshot.mpy matching the board "
        "(sys.implementation._mpy is read first; a mismatched architecture or ABI is "
        "refused) and the model to the board's flash. Files whose hash on the board "
        "(sha256, or size + CRC-32 without hashlib) matches are skipped.",
    )
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
    p.add_argument("--tool", choices=["mpremote", "ampy"], default="mpremote")
    p.add_argument("--model", type=Path, help="model blob (default: models/alexa/model.bin)")
    p.add_argument("--board", help="also copy boards/BOARD/es_board.py (microphone pins)")
    p.add_argument("--config", type=Path, help="JSON file copied as earshot.json")
    p.add_argument("--mpy", type=Path, help="native module to use instead of build/<arch>/")
    p.add_argument("--force", action="store_true", help="copy every file, changed or not")
    p.add_argument(
        "--crc", action="store_true", help="compare by size + CRC-32 even if sha256 exists"
    )
    p.set_defaults(func=handler)


def handler(args) -> int:
    from rich.console import Console

    from earshot.board import deploy

    console = Console()
    config = None
    if args.config is not None:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            console.print(f"[red]error:[/] --config {args.config}: {exc}")
            return 2
    try:
        with console.status(f"deploying to {args.port} with {args.tool}"):
            report = deploy.sync(
                args.port,
                model=args.model or deploy.DEFAULT_MODEL,
                config=config,
                tool=args.tool,
                skip_unchanged=not args.force,
                mpy=args.mpy,
                board=args.board,
                force_crc=args.crc,
            )
    except deploy.DeployError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    dev = report.device
    native = "built into the firmware" if report.mpy is None else str(report.mpy)
    console.print(
        f"board: {dev.platform}, MicroPython {'.'.join(map(str, dev.version))}, "
        f"arch {dev.arch}, .mpy v{dev.mpy_version}.{dev.mpy_sub_version}; _earshot: {native}"
    )
    console.print(f"copied ({len(report.copied)}): {', '.join(report.copied) or '-'}")
    console.print(
        f"unchanged ({len(report.skipped)}, by {dev.hash}): {', '.join(report.skipped) or '-'}"
    )
    return 0
