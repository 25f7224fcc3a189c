"""``earshot deploy``: copy the on-device modules, ``_earshot.mpy`` and a model to a board."""

from pathlib import Path

from earshot.cli import options


def register(sub) -> None:
    p = sub.add_parser(
        "deploy",
        help="copy Earshot's modules, native module and model to a board (mpremote or ampy)",
        description="Copy firmware/modules/*.py, the _earshot.mpy matching the board "
        "(sys.implementation._mpy is read first; a mismatched architecture or ABI is "
        "refused) and the model to the board's flash. Files whose hash on the board "
        "(sha256, or size + CRC-32 without hashlib) matches are skipped. Every input is "
        "checked before connecting (the model by the C parser and against its package's "
        "manifest, the config against es_config's keys); the model is written to "
        "model.bin.tmp, checked on the board, and renamed (the previous one kept as "
        "model.bin.bak), so a power cut never leaves the board without a model. Exit 1: "
        "a bad input or a failed deploy (one line on stderr naming the file); 2: usage.",
    )
    options.add_port(p)
    p.add_argument("--tool", choices=["mpremote", "ampy"], default="mpremote")
    options.add_model(p)
    p.add_argument("--board", help="also copy boards/BOARD/es_board.py (microphone pins)")
    p.add_argument("--config", type=Path, help="JSON file copied as earshot.json")
    p.add_argument("--mpy", type=Path, help="native module to use instead of build/<arch>/")
    p.add_argument("--force", action="store_true", help="copy every file, changed or not")
    p.add_argument(
        "--crc", action="store_true", help="compare by size + CRC-32 even if sha256 exists"
    )
    p.set_defaults(func=handler)


def handler(args) -> int:
    import functools
    import sys

    from rich.console import Console

    from earshot.board import deploy, ports

    console = Console()
    try:
        port = options.port(args)
    except ports.PortError as exc:
        print(f"earshot deploy: {exc}", file=sys.stderr)
        return 2
    try:
        with console.status(f"deploying to {port} with {args.tool}"):
            report = deploy.sync(
                port,
                model=args.model or deploy.DEFAULT_MODEL,
                config=args.config,
                tool=args.tool,
                skip_unchanged=not args.force,
                mpy=args.mpy,
                board=args.board,
                force_crc=args.crc,
            )
    except deploy.DeployError as exc:
        print(f"earshot deploy: {exc}", file=sys.stderr)
        if getattr(args, "debug", False) and exc.details:
            print(exc.details, file=sys.stderr)
        return 1
    dev = report.device
    native = "built into the firmware" if report.mpy is None else str(report.mpy)
    say = functools.partial(console.print, soft_wrap=True)  # one line each, for scripts too
    say(
        f"board: {dev.platform}, MicroPython {'.'.join(map(str, dev.version))}, "
        f"arch {dev.arch}, .mpy v{dev.mpy_version}.{dev.mpy_sub_version}; _earshot: {native}"
    )
    how = ", forced" if report.forced else ""
    say(f"copied ({len(report.copied)}{how}): {', '.join(report.copied) or '-'}")
    say(f"unchanged ({len(report.skipped)}, by {dev.hash}): {', '.join(report.skipped) or '-'}")
    if report.model:
        was = {"ok none": "no previous model", "ok backup": "previous model kept as "
               "model.bin.bak", "ok damaged": "damaged previous model removed"}  # fmt: skip
        state, stale, _ = report.model.partition(" adapted-removed")
        say(
            "model.bin: written through model.bin.tmp, checked on the board; "
            + was.get(state, state)
            + ("; the model adapted from the previous one was removed" if stale else "")
        )
    return 0
