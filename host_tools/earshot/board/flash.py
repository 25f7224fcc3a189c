"""Flash Earshot firmware (and a model) to an ESP32-S3 board with esptool's Python API.

The steps are esptool command lines (lists of arguments for ``esptool.main``), built from the
board folder (``boards/<NAME>/board.json``: chip, baud, ``deploy_options.flash_offset`` of
the merged ``firmware.bin``; the partition table CSV: where the ``model`` data partition
is), so they can be checked without hardware and printed with ``--dry-run``:

1. ``erase-flash`` (unless ``erase=False``),
2. ``write-flash`` of ``firmware.bin`` at the firmware offset and, when given, the model blob
   at the ``model`` partition (esptool checks each region's MD5 after writing); the blob is
   checked first, before esptool runs (:func:`check_model`),
3. ``verify-flash`` of the same regions (reads them back and compares), then a hard reset.

Images keep their flash mode, frequency and size headers (``keep``): the firmware build
wrote them for the board. esptool's progress goes to a rich progress bar through esptool 5's
custom logger interface (``esptool.logger.TemplateLogger``).
"""

from __future__ import annotations

from pathlib import Path

from earshot.board.boards import MODEL_PARTITION, Board


class FlashError(RuntimeError):
    """An image is missing or too big for its partition, or esptool failed."""


def check_model(model) -> Path:
    """The blob file to write for ``model`` (a blob file or a package folder), checked as
    ``earshot deploy`` checks it (:func:`earshot.model.package.load_blob`: the C parser, and
    a package's manifest against its blob). Raises FlashError naming the file and the
    problem."""
    from earshot.model import package

    try:
        return package.load_blob(model)[2]
    except ValueError as exc:
        raise FlashError(str(exc)) from exc


def images(board: Board, firmware, model=None) -> list[tuple[int, Path]]:
    """(flash offset, file) pairs to write; ``model``: a blob file or a package folder.
    Raises FlashError for a missing file, a model that is not a valid blob
    (:func:`check_model`) or an image that does not fit (the firmware must end before the
    ``model`` partition, the model must fit in it). Nothing here touches the board."""
    firmware = Path(firmware)
    if not firmware.is_file():
        raise FlashError(f"no firmware image at {firmware} (earshot firmware build --board "
                         f"{board.name})")  # fmt: skip
    parts = {p.name: p for p in board.partitions()}
    app = parts.get("factory")
    limit = app.offset + app.size if app else None
    size = firmware.stat().st_size
    if limit is not None and board.firmware_offset + size > limit:
        raise FlashError(
            f"{firmware} ({size} B at {board.firmware_offset:#x}) runs past the end of the "
            f"factory app partition ({limit:#x}) of {board.name}"
        )
    out = [(board.firmware_offset, firmware)]
    if model is not None:
        part = board.partition(MODEL_PARTITION)
        if not (Path(model).is_file() and Path(model).stat().st_size > part.size):
            model = check_model(model)  # a file too big is refused for its size, below
        model = Path(model)
        if model.stat().st_size > part.size:
            raise FlashError(f"{model} ({model.stat().st_size} B) does not fit the "
                             f"{part.size} B '{part.name}' partition of {board.name}")  # fmt: skip
        out.append((part.offset, model))
    return out


def _regions(pairs) -> list[str]:
    args = []
    for offset, path in pairs:
        args += [f"{offset:#x}", str(path)]
    return args


def steps(board: Board, port: str, firmware, model=None, baud: int | None = None,
          erase: bool = True, verify: bool = True) -> list[list[str]]:  # fmt: skip
    """The esptool argument lists, in order. Raises FlashError (see :func:`images`)."""
    pairs = images(board, firmware, model)
    common = ["--chip", board.chip, "--port", port, "--baud", str(baud or board.baud)]
    out = []
    if erase:
        out.append(common + ["--after", "no-reset", "erase-flash"])
    keep = ["--flash-mode", "keep", "--flash-freq", "keep", "--flash-size", "keep"]
    after = "no-reset" if verify else "hard-reset"
    out.append(common + ["--after", after, "write-flash", *keep, *_regions(pairs)])
    if verify:
        out.append(common + ["--after", "hard-reset", "verify-flash", *_regions(pairs)])
    return out


def merge_args(board: Board, firmware, model, out) -> list[str]:
    """esptool arguments that merge the images into one file ``out`` (flashable at 0x0),
    e.g. to hand a single image to someone else's flasher."""
    pairs = images(board, firmware, model)
    return ["--chip", board.chip, "merge-bin", "-o", str(out), "--flash-mode", "keep",
            "--flash-freq", "keep", "--flash-size", "keep", *_regions(pairs)]  # fmt: skip


def _rich_logger(progress, console):
    """An esptool TemplateLogger that prints through rich and drives ``progress``."""
    from esptool.logger import TemplateLogger

    class RichLogger(TemplateLogger):
        def __init__(self):
            self.task = None

        def print(self, *args, **kwargs):
            kwargs.pop("flush", None)
            kwargs.pop("file", None)
            console.print(*args, **kwargs, markup=False, highlight=False)

        def note(self, message):
            console.print(f"note: {message}", markup=False)

        def warning(self, message):
            console.print(f"warning: {message}", markup=False, style="yellow")

        def error(self, message):
            console.print(f"error: {message}", markup=False, style="red")

        def stage(self, finish=False):
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30):
            if self.task is None:
                self.task = progress.add_task(prefix.strip() or "esptool", total=total_iters)
            progress.update(self.task, completed=cur_iter, total=total_iters)
            if cur_iter >= total_iters:
                self.task = None

        def set_verbosity(self, verbosity):
            pass

    return RichLogger()


def run(argv_list, console=None) -> None:
    """Run each esptool argument list through ``esptool.main`` with a rich progress bar.

    Raises FlashError naming the failing step with esptool's message."""
    import esptool
    from esptool.logger import EspLog, log
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = console or Console()
    saved = EspLog.instance
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console) as progress:  # fmt: skip
        log.set_logger(_rich_logger(progress, console))
        try:
            for argv in argv_list:
                console.print(f"[bold]esptool {' '.join(argv)}[/]")
                try:
                    esptool.main(list(argv))
                except esptool.FatalError as exc:
                    raise FlashError(f"esptool {' '.join(argv)}: {exc}") from exc
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        raise FlashError(f"esptool {' '.join(argv)} exited {exc.code}") from exc
        finally:
            EspLog.instance = saved
