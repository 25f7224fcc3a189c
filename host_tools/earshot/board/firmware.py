"""Build MicroPython firmware for an Earshot board: the ``_earshot`` user C module, the
on-device modules and a model frozen in, for ``boards/<NAME>``.

Needs a MicroPython checkout (``MPY_DIR``, with ``mpy-cross`` built and the esp32 port's
submodules fetched) and an ESP-IDF environment (``IDF_PATH`` set and ``idf.py`` on
``PATH``, i.e. ``. $IDF_PATH/export.sh``). :func:`check` lists what is missing and
:func:`setup_help` says how to install it. The supported ESP-IDF versions are those
MicroPython's ``ports/esp32/README.md`` lists for MicroPython 1.24 to 1.26: v5.2, v5.2.2,
v5.3 and v5.4 (ESP-IDF 6 is not supported by MicroPython).

The build is upstream's own (``make -C $MPY_DIR/ports/esp32``) with::

    BOARD=<NAME> BOARD_DIR=<earshot>/boards/<NAME>
    USER_C_MODULES=<earshot>/firmware/binding/micropython.cmake
    BUILD=<earshot>/build/firmware/<NAME>/idf

and ``EARSHOT_FROZEN_DIR`` in the environment, a folder holding ``es_model.py`` (the model
blob as a bytes constant, which stays in flash) that ``boards/manifest_common.py`` freezes.
The merged image ends up at ``build/firmware/<NAME>/firmware.bin``.

``adapt=False`` builds a detection-only firmware: ``MICROPY_PY_EARSHOT_ADAPT=0`` on make's
command line, which make passes on to CMake in the environment, so
``firmware/binding/micropython.cmake`` leaves out the ``Adapter`` and the core's adaptation
and ``boards/manifest_common.py`` does not freeze ``es_adapt.py``. It builds in
``build/firmware/<NAME>/idf-noadapt`` (CMake keeps its configuration per build folder).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from earshot.board import boards
from earshot.paths import BUILD, FIRMWARE

#: ESP-IDF (major, minor) versions MicroPython's esp32 port supports (ports/esp32/README.md).
SUPPORTED_IDF = ((5, 2), (5, 3), (5, 4))
#: Oldest MicroPython whose esp32 port builds with those IDF versions and loads .mpy v6.3.
MIN_MICROPYTHON = (1, 24)
USER_C_MODULES = FIRMWARE / "binding" / "micropython.cmake"


class FirmwareError(RuntimeError):
    """The build environment is incomplete (the message says what to install) or the build
    failed (with its output)."""


def setup_help() -> str:
    """Exactly what to install, in order."""
    idf = ", ".join(f"v{a}.{b}" for a, b in SUPPORTED_IDF)
    return (
        "To build firmware you need MicroPython's source and Espressif's ESP-IDF:\n"
        f"  1. ESP-IDF, one of {idf} (MicroPython's ports/esp32/README.md; IDF 6 is not "
        "supported):\n"
        "       git clone -b v5.4 --recursive https://github.com/espressif/esp-idf.git\n"
        "       ./esp-idf/install.sh esp32s3\n"
        "       . ./esp-idf/export.sh        # sets IDF_PATH, puts idf.py on PATH\n"
        f"  2. MicroPython {MIN_MICROPYTHON[0]}.{MIN_MICROPYTHON[1]} or newer:\n"
        "       git clone -b v1.25.0 https://github.com/micropython/micropython.git\n"
        "       make -C micropython/mpy-cross\n"
        "       make -C micropython/ports/esp32 submodules\n"
        "       export MPY_DIR=$PWD/micropython\n"
        "  3. earshot firmware build --board NAME"
    )


def idf_version(idf_path: Path) -> tuple[int, int, int] | None:
    """ESP-IDF version from ``$IDF_PATH/tools/cmake/version.cmake``, None if unreadable."""
    try:
        text = (Path(idf_path) / "tools" / "cmake" / "version.cmake").read_text()
    except OSError:
        return None
    parts = []
    for key in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"set\(IDF_VERSION_{key}\s+(\d+)\)", text)
        if m is None:
            return None
        parts.append(int(m.group(1)))
    return tuple(parts)


def micropython_version(mpy_dir: Path) -> tuple[int, int, int] | None:
    """MicroPython version from ``$MPY_DIR/py/mpconfig.h``, None if unreadable."""
    try:
        text = (Path(mpy_dir) / "py" / "mpconfig.h").read_text()
    except OSError:
        return None
    parts = []
    for key in ("MAJOR", "MINOR", "MICRO"):
        m = re.search(rf"#define MICROPY_VERSION_{key}\s+\(?(\d+)", text)
        if m is None:
            return None
        parts.append(int(m.group(1)))
    return tuple(parts)


@dataclass
class Environment:
    """A checked build environment."""

    mpy_dir: Path
    idf_path: Path
    idf_version: tuple
    mpy_version: tuple


def check(env=None) -> Environment:
    """Check ``MPY_DIR``, ``IDF_PATH`` and ``idf.py`` in ``env`` (default os.environ).
    Raises FirmwareError listing every problem followed by :func:`setup_help`."""
    env = os.environ if env is None else env
    problems = []
    mpy_dir = env.get("MPY_DIR")
    mpy_ver = None
    if not mpy_dir:
        problems.append("MPY_DIR is not set (a MicroPython source checkout)")
    else:
        mpy_ver = micropython_version(Path(mpy_dir))
        if not (Path(mpy_dir) / "ports" / "esp32" / "Makefile").is_file() or mpy_ver is None:
            problems.append(f"MPY_DIR={mpy_dir} is not a MicroPython checkout "
                            "(no ports/esp32/Makefile or py/mpconfig.h)")  # fmt: skip
        elif mpy_ver[:2] < MIN_MICROPYTHON:
            need = ".".join(map(str, MIN_MICROPYTHON))
            problems.append(f"MicroPython {'.'.join(map(str, mpy_ver))} at MPY_DIR is too "
                            f"old: need {need} or newer")  # fmt: skip
    idf_path = env.get("IDF_PATH")
    idf_ver = None
    if not idf_path:
        problems.append("IDF_PATH is not set (ESP-IDF not installed, or export.sh not sourced)")
    else:
        idf_ver = idf_version(Path(idf_path))
        if idf_ver is None:
            problems.append(f"IDF_PATH={idf_path} is not an ESP-IDF tree "
                            "(no tools/cmake/version.cmake)")  # fmt: skip
        elif idf_ver[:2] not in SUPPORTED_IDF:
            problems.append(f"ESP-IDF v{'.'.join(map(str, idf_ver))} is not supported")
    if shutil.which("idf.py", path=env.get("PATH")) is None:
        problems.append("idf.py is not on PATH (source $IDF_PATH/export.sh)")
    if problems:
        raise FirmwareError("cannot build firmware:\n  - " + "\n  - ".join(problems) + "\n\n"
                            + setup_help())  # fmt: skip
    return Environment(Path(mpy_dir), Path(idf_path), idf_ver, mpy_ver)


def out_dir(board: str) -> Path:
    return BUILD / "firmware" / board


def write_frozen_model(model, folder: Path) -> Path:
    """Write ``es_model.py`` (``BLOB = b"..."``, the model blob) into ``folder``; returns it.
    A bytes constant in a frozen module stays in flash: ``earshot.load_model(es_model.BLOB)``
    parses it in place."""
    blob = Path(model).read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "es_model.py"
    lines = [
        f"# Generated by earshot firmware build from {Path(model).name}; do not edit.",
        f"# {len(blob)} bytes; earshot.load_model(BLOB) uses it in place.",
        "BLOB = (",
    ]
    for i in range(0, len(blob), 48):
        lines.append(f"    {blob[i : i + 48]!r}")
    lines.append(")")
    path.write_text("\n".join(lines) + "\n")
    return path


def idf_dir(board: str, adapt: bool = True) -> Path:
    """ESP-IDF's build folder for ``board`` (one per ``adapt`` setting)."""
    return out_dir(board) / ("idf" if adapt else "idf-noadapt")


def make_command(
    board: boards.Board, env: Environment, jobs: int = 1, adapt: bool = True
) -> list[str]:
    """The upstream build command for ``board`` (``adapt`` False: detection only)."""
    cmd = [
        "make", "-C", str(env.mpy_dir / "ports" / "esp32"), f"-j{jobs}",
        f"BOARD={board.name}", f"BOARD_DIR={board.path}",
        f"USER_C_MODULES={USER_C_MODULES}", f"BUILD={idf_dir(board.name, adapt)}",
    ]  # fmt: skip
    if not adapt:
        cmd.append("MICROPY_PY_EARSHOT_ADAPT=0")
    return cmd


def build(
    board_name: str, model, env=None, jobs: int = 1, dry_run: bool = False, adapt: bool = True
):
    """Build the firmware; returns the merged ``firmware.bin`` path (``dry_run``: the make
    command instead). ``adapt`` False: a detection-only firmware (module docstring). Raises
    FirmwareError (environment, build failure) or BoardError."""
    board = boards.load(board_name)
    checked = check(env)
    out = out_dir(board.name)
    frozen = write_frozen_model(model, out / "frozen")
    cmd = make_command(board, checked, jobs, adapt)
    if dry_run:
        return cmd
    run_env = dict(os.environ if env is None else env, EARSHOT_FROZEN_DIR=str(frozen.parent))
    proc = subprocess.run(cmd, env=run_env, check=False)
    image = idf_dir(board.name, adapt) / "firmware.bin"
    if proc.returncode != 0 or not image.is_file():
        raise FirmwareError(f"firmware build failed ({proc.returncode}): {' '.join(cmd)}")
    shutil.copyfile(image, out / "firmware.bin")
    shutil.copyfile(model, out / "model.bin")
    return out / "firmware.bin"
