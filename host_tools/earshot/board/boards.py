"""Earshot's board definitions (``boards/<NAME>/``), as the host tools see them.

Each board folder follows MicroPython's ``ports/esp32/boards`` conventions (``board.json``,
``mpconfigboard.cmake``, ``mpconfigboard.h``, ``sdkconfig.board``, ``manifest.py``) plus
``es_board.py``, the one place the board's microphone is described (read on the device by
``es_audio`` and here with :func:`ast.literal_eval`). ``board.json`` carries an ``earshot``
object: ``chip`` (esptool's name), ``flash_size``, ``partitions`` (CSV path relative to the
board folder) and ``baud`` (flashing speed).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

from earshot.paths import ROOT

BOARDS_DIR = ROOT / "boards"
#: Files every board folder must have.
REQUIRED_FILES = (
    "board.json", "mpconfigboard.cmake", "mpconfigboard.h", "sdkconfig.board", "manifest.py",
    "es_board.py",
)  # fmt: skip
#: ESP-IDF partition table rules (components/partition_table/gen_esp32part.py): app
#: partitions start on 64 KiB boundaries, every other partition on 4 KiB boundaries.
APP_ALIGN = 0x10000
DATA_ALIGN = 0x1000
#: The partition table itself sits at 0x8000 (CONFIG_PARTITION_TABLE_OFFSET's default) and
#: takes one 4 KiB sector, so partitions start at 0x9000 or later.
TABLE_END = 0x9000
MODEL_PARTITION = "model"


class BoardError(ValueError):
    """An unknown board name or a malformed board folder; the message names the problem."""


@dataclass(frozen=True)
class Partition:
    """One row of a partition table CSV (offsets and sizes in bytes)."""

    name: str
    type: str
    subtype: str
    offset: int
    size: int


@dataclass(frozen=True)
class Board:
    """A board folder: its name, path, ``board.json`` contents and ``es_board.MIC``."""

    name: str
    path: Path
    info: dict
    mic: dict

    @property
    def chip(self) -> str:
        return self.info["earshot"]["chip"]

    @property
    def baud(self) -> int:
        return int(self.info["earshot"].get("baud", 460800))

    @property
    def flash_size(self) -> str:
        return self.info["earshot"]["flash_size"]

    @property
    def firmware_offset(self) -> int:
        """Where the merged ``firmware.bin`` goes (``deploy_options.flash_offset``)."""
        return int(str(self.info.get("deploy_options", {}).get("flash_offset", "0")), 0)

    @property
    def partitions_csv(self) -> Path:
        return (self.path / self.info["earshot"]["partitions"]).resolve()

    def partitions(self) -> list[Partition]:
        return read_partitions(self.partitions_csv)

    def partition(self, name: str) -> Partition:
        """The partition called ``name``; raises BoardError if the table has none."""
        for p in self.partitions():
            if p.name == name:
                return p
        raise BoardError(f"{self.name}: no partition {name!r} in {self.partitions_csv}")


def names() -> list[str]:
    """Names of the board folders under ``boards/`` (those holding a ``board.json``)."""
    return sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.json"))


def _literal(path: Path, name: str):
    tree = ast.parse(path.read_text(), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            try:
                return ast.literal_eval(node.value)
            except ValueError as exc:
                raise BoardError(f"{path}: {name} must be a literal ({exc})") from exc
    raise BoardError(f"{path}: no {name} = ... assignment")


def load(name: str, boards_dir: Path = BOARDS_DIR) -> Board:
    """The board folder ``boards_dir/name``. Raises BoardError naming a missing board (with
    the known ones), a missing file, or a malformed ``board.json`` / ``es_board.py``."""
    path = Path(boards_dir) / name
    if not (path / "board.json").is_file():
        known = ", ".join(sorted(p.parent.name for p in Path(boards_dir).glob("*/board.json")))
        raise BoardError(f"unknown board {name!r}; known boards: {known}")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise BoardError(f"board {name}: missing {', '.join(missing)} in {path}")
    try:
        info = json.loads((path / "board.json").read_text())
    except json.JSONDecodeError as exc:
        raise BoardError(f"{path / 'board.json'}: not valid JSON ({exc})") from exc
    for key in ("chip", "flash_size", "partitions"):
        if key not in info.get("earshot", {}):
            raise BoardError(f"{path / 'board.json'}: earshot.{key} missing")
    mic = _literal(path / "es_board.py", "MIC")
    if _literal(path / "es_board.py", "NAME") != name:
        raise BoardError(f"{path / 'es_board.py'}: NAME is not {name!r}")
    return Board(name, path, info, mic)


def read_partitions(csv_path: Path) -> list[Partition]:
    """Parse an ESP-IDF partition table CSV (``name, type, subtype, offset, size, flags``;
    ``#`` comments). Offsets and sizes must be given (numbers with 0x or K/M suffixes).
    Raises BoardError naming the line for a malformed row, overlap or misalignment."""

    def number(text: str, where: str) -> int:
        t = text.strip().upper()
        scale = 1
        if t.endswith("K"):
            t, scale = t[:-1], 1024
        elif t.endswith("M"):
            t, scale = t[:-1], 1024 * 1024
        try:
            return int(t, 0) * scale
        except ValueError as exc:
            raise BoardError(f"{where}: {text!r} is not a number") from exc

    rows = []
    for lineno, line in enumerate(Path(csv_path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{csv_path}:{lineno}"
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 5 or not cells[3] or not cells[4]:
            raise BoardError(f"{where}: need name, type, subtype, offset, size")
        rows.append(
            Partition(*cells[:3], number(cells[3], where), number(cells[4], where))
        )
    end = TABLE_END
    for p in sorted(rows, key=lambda r: r.offset):
        align = APP_ALIGN if p.type == "app" else DATA_ALIGN
        if p.offset % align or p.size % DATA_ALIGN:
            raise BoardError(f"{csv_path}: partition {p.name} is not aligned to {align:#x}")
        if p.offset < end:
            raise BoardError(f"{csv_path}: partition {p.name} at {p.offset:#x} overlaps")
        end = p.offset + p.size
    return rows


FLASH_BYTES = {"4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20, "32MB": 32 << 20}
