"""Which serial port a verb talks to: ``--port PATH``, ``$EARSHOT_PORT``, or ``auto``.

``auto`` does what ``mpremote connect auto`` does (pyserial's ``list_ports``: a USB serial
device, one with a vendor and product id), but refuses to guess between several: when more
than one USB serial device is plugged in, those with a USB vendor id that MicroPython boards
use (:data:`BOARD_VIDS`) are preferred, and if that still leaves several (or none), the error
lists them. With no USB serial device at all, the virtual board's default port
(``earshot board`` without ``--link``: ``build/vboard/flash.tty``) is used when it is running.
"""

from __future__ import annotations

import os
from pathlib import Path

from earshot.paths import BUILD

#: The environment variable that sets the port when ``--port`` is not given.
ENV = "EARSHOT_PORT"
#: USB vendor ids of boards and the USB-serial chips on them: Espressif (native USB), the
#: MicroPython project's pid.codes vendor, Raspberry Pi, Silicon Labs CP210x, WCH CH340/CH9102,
#: FTDI, Adafruit, Seeed.
BOARD_VIDS = {0x303A: "Espressif", 0xF055: "MicroPython", 0x2E8A: "Raspberry Pi",
              0x10C4: "Silicon Labs", 0x1A86: "WCH", 0x0403: "FTDI", 0x239A: "Adafruit",
              0x2886: "Seeed"}  # fmt: skip
#: Where ``earshot board`` puts its port by default.
VBOARD_PORT = BUILD / "vboard" / "flash.tty"


class PortError(RuntimeError):
    """No port, or several to choose from: the message is one line saying what to pass."""


def _describe(p) -> str:
    vid = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None else "no USB id"
    return f"{p.device} ({p.description or 'serial'}, {vid})"


def usb_ports() -> list:
    """pyserial's ListPortInfo of every USB serial device (vendor and product id known), sorted
    by device name, as mpremote's ``auto`` sees them."""
    from serial.tools import list_ports

    return [p for p in sorted(list_ports.comports(), key=lambda p: p.device)
            if p.vid is not None and p.pid is not None]  # fmt: skip


def resolve(port: str | None = None, vboard: Path | None = None) -> str:
    """The port to use: ``port`` as given (a path), else ``$EARSHOT_PORT``, else ``auto``;
    ``auto`` is resolved as the module docstring says. Raises PortError (one line) when auto
    finds no board or several."""
    port = port or os.environ.get(ENV) or "auto"
    if port != "auto":
        return port
    found = usb_ports()
    if len(found) > 1:
        boards = [p for p in found if p.vid in BOARD_VIDS]
        found = boards or found
    if len(found) == 1:
        return found[0].device
    if len(found) > 1:
        raise PortError(
            "several USB serial devices look like boards: "
            + ", ".join(_describe(p) for p in found)
            + f"; pass --port PATH or set {ENV}"
        )
    vboard = VBOARD_PORT if vboard is None else Path(vboard)
    if os.path.exists(vboard):  # a symlink to a live pty (a stale link does not exist)
        return str(vboard)
    raise PortError(
        f"no board found: no USB serial device is plugged in (and no virtual board at "
        f"{vboard}); pass --port PATH or set {ENV}"
    )
