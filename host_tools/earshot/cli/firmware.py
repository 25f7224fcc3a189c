"""``earshot firmware build``: MicroPython + Earshot firmware for a board (needs ESP-IDF)."""

from earshot.cli import options


def register(sub) -> None:
    p = sub.add_parser(
        "firmware",
        help="build MicroPython firmware with Earshot built in (needs MPY_DIR and ESP-IDF)",
        description="Build MicroPython for a board in boards/ with the _earshot user C "
        "module, the on-device modules and a model frozen in. Needs MPY_DIR (a MicroPython "
        "checkout) and an ESP-IDF environment (IDF_PATH, idf.py); without them it says what "
        "to install.",
    )
    fsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = fsub.add_parser("build", help="build build/firmware/BOARD/firmware.bin")
    b.add_argument("--board", required=True, help="board folder name under boards/")
    options.add_model(b, "model to freeze: package folder or blob (default: models/alexa)")
    b.add_argument("-j", "--jobs", type=int, default=1, help="parallel compile jobs")
    options.add_out(b, "also copy the image to FILE (default: build/firmware/BOARD/firmware.bin)")
    b.add_argument("--dry-run", action="store_true", help="check and print the command only")
    b.add_argument(
        "--no-adapt",
        dest="adapt",
        action="store_false",
        help="detection only: no on-device adaptation (MICROPY_PY_EARSHOT_ADAPT=0)",
    )
    b.set_defaults(func=handler)
    ls = fsub.add_parser("boards", help="list the boards")
    ls.set_defaults(func=list_boards)


def list_boards(args) -> int:
    from earshot.board import boards

    for name in boards.names():
        b = boards.load(name)
        print(f"{name:28s} {b.info['product']} (mic: {b.mic['kind']})")
    return 0


def handler(args) -> int:
    import sys

    from earshot.board import boards, deploy, firmware
    from earshot.model import package

    try:  # the model is checked (C parser, its package's manifest) before any build step
        _, _, model = package.load_blob(args.model or deploy.DEFAULT_MODEL)
    except ValueError as exc:
        print(f"earshot firmware: {exc}", file=sys.stderr)
        return 1
    try:
        result = firmware.build(
            args.board, model, jobs=args.jobs, dry_run=args.dry_run, adapt=args.adapt
        )
    except (firmware.FirmwareError, boards.BoardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.out is not None and not args.dry_run:
        import shutil

        shutil.copyfile(result, args.out)
        result = args.out
    print(" ".join(result) if args.dry_run else result)
    return 0
