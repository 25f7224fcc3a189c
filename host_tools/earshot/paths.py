"""Where things are: the sources, build outputs, models and the shared recordings.

Two layouts, one set of names:

* **a clone** (``host_tools/earshot/`` two levels under a folder holding
  ``firmware/core/earshot.h``): :data:`ROOT` is the repository, build outputs go to
  ``<repo>/build``;
* **an installed wheel**: the wheel carries what the tools read (``models/``,
  ``firmware/core``, ``firmware/binding``, ``firmware/modules``, ``boards/``, the Makefile
  that builds the host library, the prebuilt ``.mpy`` files of ``make dist``) as package data
  under ``earshot/_share/`` (setup.py copies them in), and :data:`ROOT` is that folder. It may
  be read-only, so build outputs (``libearshot.so``, ``.mpy`` files, the natmod toolchain) go
  to a per-user cache, ``$XDG_CACHE_HOME/earshot/build-<version>`` (``~/.cache`` by default).

``$EARSHOT_BUILD`` overrides the build folder in both layouts.
"""

import os
from pathlib import Path

from earshot import __version__

_PACKAGE = Path(__file__).resolve().parent
#: The folder above ``host_tools/`` when this file runs from a clone.
_REPO = _PACKAGE.parents[1]
#: Package data of an installed wheel (setup.py's build_py puts the files there).
SHARE = _PACKAGE / "_share"
#: True when running from a clone (the C core's sources sit beside ``host_tools/``).
IN_CLONE = (_REPO / "firmware" / "core" / "earshot.h").is_file()

#: Where ``firmware/``, ``models/``, ``boards/`` and the Makefile are: the repository root in a
#: clone, else the installed package data.
ROOT = _REPO if IN_CLONE else SHARE


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "earshot" / f"build-{__version__}"


#: Build outputs: ``libearshot.so`` (ctypes) and per-architecture ``.mpy`` files.
BUILD = Path(os.environ.get("EARSHOT_BUILD") or (ROOT / "build" if IN_CLONE else _user_cache()))
FIRMWARE = ROOT / "firmware"
MODELS = ROOT / "models"
#: Prebuilt native modules, one folder per architecture and .mpy ABI (``x64_6.3/``...), as
#: ``make dist`` writes them; an installed wheel carries the ones built before it was packed.
DIST = ROOT / "build" / "dist" if IN_CLONE else SHARE / "dist"


class DataMissing(RuntimeError):
    """The shared recordings folder is absent."""


def data_dir(required: bool = True) -> Path | None:
    """Return the shared recordings folder: ``$EARSHOT_DATA``, default ``<repo>/../shared/data``
    in a clone (an installed package has no default).

    Raises DataMissing (when ``required``) naming the path that was looked for; the
    recordings are read in place and never copied into the repository.
    """
    given = os.environ.get("EARSHOT_DATA")
    if given is None and not IN_CLONE:
        if required:
            raise DataMissing(
                "shared recordings not found: set EARSHOT_DATA to the folder holding "
                "wake-word-benchmark/, precise-community/ and wuw-corpus-ii/"
            )
        return None
    path = Path(given) if given is not None else ROOT.parent / "shared" / "data"
    if not (path / "README.md").is_file():
        if required:
            raise DataMissing(
                f"shared recordings not found at {path}: set EARSHOT_DATA to the folder "
                "holding wake-word-benchmark/, precise-community/ and wuw-corpus-ii/"
            )
        return None
    return path
