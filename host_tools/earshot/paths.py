"""Where things are: the repository, build outputs, models and the shared recordings."""

import os
from pathlib import Path

#: Repository root (the folder holding ``firmware/`` and ``host_tools/``).
ROOT = Path(__file__).resolve().parents[2]
#: Build outputs: ``libearshot.so`` (ctypes) and per-architecture ``.mpy`` files.
BUILD = Path(os.environ.get("EARSHOT_BUILD", ROOT / "build"))
FIRMWARE = ROOT / "firmware"
MODELS = ROOT / "models"


class DataMissing(RuntimeError):
    """The shared recordings folder is absent."""


def data_dir(required: bool = True) -> Path | None:
    """Return the shared recordings folder: ``$EARSHOT_DATA``, default ``<repo>/../shared/data``.

    Raises DataMissing (when ``required``) naming the path that was looked for; the
    recordings are read in place and never copied into the repository.
    """
    path = Path(os.environ.get("EARSHOT_DATA", ROOT.parent / "shared" / "data"))
    if not (path / "README.md").is_file():
        if required:
            raise DataMissing(
                f"shared recordings not found at {path}: set EARSHOT_DATA to the folder "
                "holding wake-word-benchmark/, precise-community/ and wuw-corpus-ii/"
            )
        return None
    return path
