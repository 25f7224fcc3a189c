"""Deploy Earshot to a board (real or virtual) with mpremote.

What goes to the board's flash root: the on-device modules ``firmware/modules/*.py``, the
native module ``build/<arch>/_earshot.mpy`` and a model blob (as ``model.bin``), plus an
optional ``earshot.json`` configuration (keys in ``firmware/modules/es_config.py``).

mpremote runs as a subprocess (``python -m mpremote connect PORT ...``), one connection for
all copies (commands chained with ``+``), so it behaves exactly as from a shell.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from earshot.paths import BUILD, FIRMWARE, MODELS

MODULES_DIR = FIRMWARE / "modules"
DEFAULT_MODEL = MODELS / "alexa" / "model.bin"
#: Seconds one mpremote invocation may take before it is abandoned.
MPREMOTE_TIMEOUT_S = 120


class DeployError(RuntimeError):
    """A file to deploy is missing, or mpremote failed; the message has mpremote's output."""


def mpremote(port: str, *args: str, timeout: float = MPREMOTE_TIMEOUT_S) -> bytes:
    """Run ``python -m mpremote connect PORT ARGS...`` and return its stdout (bytes).

    Raises DeployError with the command and its stderr when it exits non-zero or times out.
    """
    cmd = [sys.executable, "-m", "mpremote", "connect", port, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"mpremote timed out after {timeout} s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace")
        raise DeployError(f"mpremote failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return proc.stdout


def files(model=DEFAULT_MODEL, arch: str = "x64") -> list[tuple[Path, str]]:
    """The (host path, board path) pairs to copy. Raises DeployError naming missing files."""
    pairs = [(p, p.name) for p in sorted(MODULES_DIR.glob("*.py"))]
    pairs.append((BUILD / arch / "_earshot.mpy", "_earshot.mpy"))
    pairs.append((Path(model), "model.bin"))
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        hint = " (build it with: python -m earshot.natmod --arch %s)" % arch
        raise DeployError(
            "cannot deploy, missing: "
            + ", ".join(missing)
            + (hint if any(m.endswith(".mpy") for m in missing) else "")
        )
    return pairs


def deploy(
    port: str,
    model=DEFAULT_MODEL,
    arch: str = "x64",
    config: dict | None = None,
    extra: list[tuple[Path, str]] = (),
) -> list[str]:
    """Copy the modules, ``_earshot.mpy`` (for ``arch``), ``model`` and, when given,
    ``config`` (written as ``earshot.json``) to the board on ``port``; ``extra`` adds
    (host path, board path) pairs. Returns the board paths written.

    Raises DeployError (missing file, mpremote failure).
    """
    pairs = files(model, arch) + list(extra)
    with tempfile.TemporaryDirectory() as tmp:
        if config is not None:
            cfg = Path(tmp) / "earshot.json"
            cfg.write_text(json.dumps(config))
            pairs.append((cfg, "earshot.json"))
        args: list[str] = []
        for src, dest in pairs:
            if args:
                args.append("+")
            args += ["fs", "cp", str(src), ":" + dest]
        mpremote(port, *args)
    return [dest for _, dest in pairs]


def run_on_board(port: str, code: str, timeout: float = MPREMOTE_TIMEOUT_S) -> bytes:
    """Execute ``code`` on the board (``mpremote exec``) and return everything it printed,
    telemetry frames included (they contain no 0x04, which mpremote strips)."""
    return mpremote(port, "exec", code, timeout=timeout)


def exec_stream(port: str, code: str, idle_timeout: float | None = None):
    """Run ``code`` on the board in the raw REPL (after a soft reset, through mpremote's
    SerialTransport) and yield what it prints, as bytes chunks, while it runs.

    Stops when the code finishes. Raises DeployError with the board's traceback when the
    code raised, or when nothing arrives for ``idle_timeout`` seconds (None: wait forever).
    Closing the generator early interrupts the code on the board (Ctrl-C).
    """
    import time

    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        transport = SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise DeployError(f"cannot open {port}: {exc}") from exc
    ser = transport.serial
    finished = False
    try:
        try:
            transport.enter_raw_repl(soft_reset=True)
            transport.exec_raw_no_follow(code)
        except TransportError as exc:
            raise DeployError(f"{port}: {exc}") from exc
        ser.timeout = 0.2  # mpremote reads with no timeout; we poll for idle_timeout
        err = bytearray()
        ends = 0  # 0x04 markers seen: 1 after the output, 2 after the error text
        last = time.monotonic()
        while ends < 2:
            data = ser.read(ser.in_waiting or 1)
            if not data:
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    raise DeployError(f"{port}: no output for {idle_timeout} s")
                continue
            last = time.monotonic()
            if ends == 0:
                cut = data.find(b"\x04")
                if cut < 0:
                    yield data
                    continue
                if cut:
                    yield data[:cut]
                ends, data = 1, data[cut + 1 :]
            cut = data.find(b"\x04")
            if cut < 0:
                err += data
            else:
                err += data[:cut]
                ends = 2
        finished = True
        if err.strip():
            raise DeployError(f"{port}: the board raised:\n{err.decode(errors='replace')}")
    finally:
        if not finished:
            try:
                ser.write(b"\x03")  # interrupt the code left running
            except OSError:
                pass
        try:
            transport.exit_raw_repl()
            transport.close()
        except (OSError, TransportError):
            pass
