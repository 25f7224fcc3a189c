"""Options several verbs share, written once so each means the same in every verb.

* ``--model PATH``: a model package folder (``manifest.json`` + blob) or a blob file, alone or
  inside its package (:func:`earshot.model.package.load_blob` checks either).
* ``--port PATH``: a serial port, ``auto`` (the default) or ``$EARSHOT_PORT``
  (:mod:`earshot.board.ports`).
* ``-o/--out FILE``: where a verb writes its file.
* probabilities (cutoffs, scores) are 0..1 everywhere.
"""

import argparse
import contextlib
import tempfile
from pathlib import Path

MODEL_HELP = "model package folder or blob file (default: models/alexa)"
PORT_HELP = (
    "serial port, e.g. /dev/ttyACM0, or auto (default: $EARSHOT_PORT, else auto: the one USB "
    "serial device that looks like a board)"
)


def add_model(p, help: str = MODEL_HELP) -> None:
    p.add_argument("--model", type=Path, metavar="PATH", help=help)


def add_port(p, help: str = PORT_HELP) -> None:
    p.add_argument("--port", metavar="PORT", help=help)


def add_out(p, help: str, required: bool = False, dest: str = "out", extra=()) -> None:
    """``-o/--out FILE`` (plus the verb's older spellings in ``extra``)."""
    p.add_argument("-o", "--out", *extra, dest=dest, type=Path, metavar="FILE",
                   required=required, help=help)  # fmt: skip


def port(args) -> str:
    """The port ``args.port`` names, resolved (:func:`earshot.board.ports.resolve`); raises
    PortError with one line when auto finds no board or several."""
    from earshot.board import ports

    return ports.resolve(args.port)


def probability(text: str) -> float:
    """A probability 0..1 for a cutoff. The old demo spelling, probability x 255 (an integer
    2..255), is refused with the value it meant."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability (0..1)") from None
    if 1.0 < value <= 255.0 and value == int(value):
        raise argparse.ArgumentTypeError(
            f"{text} looks like probability x 255 (the old scale): cutoffs are probabilities "
            f"0..1 now, e.g. {value / 255:.2f}"
        )
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in (0, 1]")
    return value


@contextlib.contextmanager
def as_package(path):
    """A package folder for ``path`` while the block runs: the folder itself, the package
    around a blob inside one, or, for a blob alone, a temporary package written around it
    (:func:`earshot.model.package.write`: the manifest from the blob header, wake word
    ``"unknown"``, no .tflite, no training record). Yields (folder, True when temporary).
    Raises ValueError for a bad model."""
    from earshot.model import package

    man, blob, _ = package.load_blob(path)
    if man is not None:
        yield (Path(path) if Path(path).is_dir() else Path(path).parent), False
        return
    with tempfile.TemporaryDirectory(prefix="earshot-model-") as tmp:
        folder = Path(tmp) / "model"
        package.write(folder, "unknown", blob, b"")
        yield folder, True


def package_dir(path) -> Path:
    """The package folder of ``path`` (a package folder, or a blob inside one), for verbs that
    need the manifest. Raises ValueError for a blob with no package around it."""
    from earshot.model import package

    path = Path(path)
    if path.is_dir():
        return path
    man, _, _ = package.load_blob(path)
    if man is None:
        raise ValueError(
            f"{path}: a blob without its package (no manifest.json beside it naming it); this "
            "verb needs the package folder"
        )
    return path.parent
