"""Deploy Earshot to a board (real or virtual) with mpremote or adafruit-ampy.

What goes to the board's flash root: the on-device modules ``firmware/modules/*.py``, the
native module ``_earshot.mpy`` built for the board's architecture (``build/<arch>/``), a
model blob (as ``model.bin``), optionally the board definition ``es_board.py`` (from
``boards/<NAME>/``) and an ``earshot.json`` configuration (keys in
``firmware/modules/es_config.py``).

Before copying, one short program runs on the board (:data:`PROBE_CODE`) and reports
``sys.implementation._mpy``, whether ``_earshot`` is built into the firmware, and a digest of
each file already on the flash: ``sha256:<hex>`` when the board has ``hashlib.sha256``, else
``crc32:<size>:<crc>`` computed with ``binascii.crc32``. Then:

* the ``.mpy`` is refused with :class:`DeployError` when its architecture or ABI (.mpy
  version and sub-version, the header bytes 1 and 2 described in MicroPython's
  ``docs/reference/mpyfiles.rst``) differ from what the board's ``_mpy`` says it loads;
  firmware with ``_earshot`` built in gets no ``.mpy`` at all;
* files whose digest matches the host's copy are skipped.

mpremote runs as a subprocess (``python -m mpremote connect PORT ...``), one connection for
all copies (commands chained with ``+``), so it behaves exactly as from a shell. ampy is used
through its Python API (``ampy.pyboard.Pyboard`` + ``ampy.files.Files``), one connection.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from earshot.paths import BUILD, FIRMWARE, MODELS

MODULES_DIR = FIRMWARE / "modules"
DEFAULT_MODEL = MODELS / "alexa" / "model.bin"
#: Seconds one mpremote invocation may take before it is abandoned.
MPREMOTE_TIMEOUT_S = 120
#: Deploy tools: ``--tool`` values.
TOOLS = ("mpremote", "ampy")
#: Architecture codes in ``sys.implementation._mpy >> 10`` and in a .mpy header's byte 2
#: (``>> 2``), from MicroPython's ``docs/reference/mpyfiles.rst`` / ``py/persistentcode.h``.
ARCH_NAMES = {
    0: None, 1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
    7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
    12: "rv64imc",
}  # fmt: skip
PROBE_MARK = "EARSHOT-PROBE "

#: MicroPython code run on the board before a deploy; ``{paths}`` and ``{force_crc}`` are
#: filled in. Prints one line: PROBE_MARK + JSON.
PROBE_CODE = """\
import sys, os, binascii
try:
    import json
except ImportError:
    import ujson as json
_H = None
if not {force_crc}:
    try:
        from hashlib import sha256 as _H
    except ImportError:
        pass
def _digest(p):
    try:
        size = os.stat(p)[6]
    except OSError:
        return None
    buf = bytearray(512)
    h = _H() if _H else None
    crc = 0
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if h:
                h.update(memoryview(buf)[:n])
            else:
                crc = binascii.crc32(memoryview(buf)[:n], crc)
    if h:
        return 'sha256:' + binascii.hexlify(h.digest()).decode()
    return 'crc32:%d:%08x' % (size, crc & 0xffffffff)
_p = sys.path[:]
sys.path[:] = ['/-no-such-dir-']
try:
    import _earshot
    _b = True
except ImportError:
    _b = False
sys.path[:] = _p
print({mark!r} + json.dumps({{
    'mpy': getattr(sys.implementation, '_mpy', None),
    'platform': sys.platform,
    'machine': getattr(sys.implementation, '_machine', ''),
    'version': list(sys.implementation.version[:3]),
    'builtin': _b,
    'hash': 'sha256' if _H else 'crc32',
    'files': {{p: _digest(p) for p in {paths!r}}},
}}))
"""


class DeployError(RuntimeError):
    """A file to deploy is missing, the board cannot load it (architecture/ABI), or the
    tool failed; the message says which, with the tool's output."""


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


def module_files() -> list[tuple[Path, str]]:
    """(host path, board path) of the on-device modules."""
    return [(p, p.name) for p in sorted(MODULES_DIR.glob("*.py"))]


def mpy_path(arch: str) -> Path:
    """Where ``python -m earshot.board.natmod --arch ARCH`` puts ``_earshot.mpy``."""
    return BUILD / arch / "_earshot.mpy"


def files(model=DEFAULT_MODEL, arch: str = "x64") -> list[tuple[Path, str]]:
    """The (host path, board path) pairs to copy. Raises DeployError naming missing files."""
    pairs = module_files()
    pairs.append((mpy_path(arch), "_earshot.mpy"))
    pairs.append((Path(model), "model.bin"))
    _check_exist(pairs, arch)
    return pairs


def _check_exist(pairs, arch):
    missing = [str(src) for src, _ in pairs if not Path(src).is_file()]
    if missing:
        hint = ""
        if any(m.endswith(".mpy") for m in missing):
            hint = f" (build it with: python -m earshot.board.natmod --arch {arch}"
            if arch == "xtensawin":
                hint += "; needs Espressif's xtensa-esp32s3-elf toolchain from ESP-IDF"
            hint += ")"
        raise DeployError("cannot deploy, missing: " + ", ".join(missing) + hint)


# -- what the board can load ---------------------------------------------------------------
@dataclass
class DeviceInfo:
    """What the probe found on the board."""

    mpy: int | None  # sys.implementation._mpy, None when the firmware has none
    platform: str = ""
    machine: str = ""
    version: tuple = ()
    builtin: bool = False  # _earshot is built into the firmware (user C module)
    hash: str = "sha256"  # digest kind the board used: "sha256" or "crc32"
    files: dict = field(default_factory=dict)  # board path -> digest, None if absent

    @property
    def mpy_version(self) -> int | None:
        return None if self.mpy is None else self.mpy & 0xFF

    @property
    def mpy_sub_version(self) -> int | None:
        return None if self.mpy is None else (self.mpy >> 8) & 3

    @property
    def arch(self) -> str | None:
        """Native architecture name (``x64``, ``xtensawin``...), None if it loads none."""
        if self.mpy is None:
            return None
        return ARCH_NAMES.get(self.mpy >> 10, f"arch{self.mpy >> 10}")


def parse_probe(output: bytes | str) -> DeviceInfo:
    """DeviceInfo from the probe's output. Raises DeployError when the marker is absent
    (the board printed something else, e.g. an error)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    for line in text.splitlines():
        if line.startswith(PROBE_MARK):
            d = json.loads(line[len(PROBE_MARK) :])
            return DeviceInfo(
                d["mpy"], d["platform"], d["machine"], tuple(d["version"]), d["builtin"],
                d["hash"], d["files"],
            )  # fmt: skip
    raise DeployError(f"the board did not answer the deploy probe; it printed:\n{text.strip()}")


def mpy_header(path: Path) -> tuple[int, int, str | None]:
    """(version, sub-version, architecture name) of a .mpy file; DeployError if not one."""
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise DeployError(f"{path}: not a .mpy file")
    return head[1], head[2] & 3, ARCH_NAMES.get(head[2] >> 2, f"arch{head[2] >> 2}")


def check_mpy(path: Path, device: DeviceInfo) -> None:
    """Refuse (DeployError) a native ``.mpy`` the board cannot load: no native support, a
    different architecture, or a different .mpy version / sub-version (ABI)."""
    ver, sub, arch = mpy_header(path)
    where = f"{device.platform} board, MicroPython {'.'.join(map(str, device.version))}"
    if device.mpy is None or device.arch is None:
        raise DeployError(
            f"the {where} reports no native architecture (sys.implementation._mpy = "
            f"{device.mpy}): it cannot load {path.name}; use firmware with the _earshot user C "
            "module built in (earshot firmware build --board NAME)"
        )
    if arch != device.arch:
        raise DeployError(
            f"architecture mismatch: {path} is built for {arch}, but the {where} runs "
            f"{device.arch} code (sys.implementation._mpy = {device.mpy}); build the right one "
            f"with: python -m earshot.board.natmod --arch {device.arch}"
        )
    if (ver, sub) != (device.mpy_version, device.mpy_sub_version):
        raise DeployError(
            f"ABI mismatch: {path} is .mpy v{ver}.{sub}, but the {where} loads "
            f"v{device.mpy_version}.{device.mpy_sub_version} (sys.implementation._mpy = "
            f"{device.mpy}); rebuild it against a matching MicroPython (MPY_DIR)"
        )


def digest(path: Path, kind: str) -> str:
    """The digest the probe computes on the board, computed on the host."""
    data = Path(path).read_bytes()
    if kind == "sha256":
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "crc32:%d:%08x" % (len(data), zlib.crc32(data))


# -- the tools -----------------------------------------------------------------------------
class _Mpremote:
    def __init__(self, port: str):
        self.port = port

    def run(self, code: str) -> bytes:
        return mpremote(self.port, "exec", code)

    def put(self, pairs) -> None:
        args: list[str] = []
        for src, dest in pairs:
            if args:
                args.append("+")
            args += ["fs", "cp", str(src), ":" + dest]
        if args:
            mpremote(self.port, *args)

    def close(self) -> None:
        pass


class _Ampy:
    def __init__(self, port: str):
        from ampy.files import Files
        from ampy.pyboard import Pyboard, PyboardError

        self._error = PyboardError
        try:
            self.board = Pyboard(port, baudrate=115200)
        except PyboardError as exc:
            raise DeployError(f"ampy cannot open {port}: {exc}") from exc
        self.files = Files(self.board)

    def run(self, code: str) -> bytes:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(code)
        try:
            return self.files.run(f.name, wait_output=True, stream_output=False)
        except self._error as exc:
            raise DeployError(f"ampy run failed: {exc}") from exc
        finally:
            Path(f.name).unlink()

    def put(self, pairs) -> None:
        for src, dest in pairs:
            try:
                self.files.put(dest, Path(src).read_bytes())
            except self._error as exc:
                raise DeployError(f"ampy put {src} -> {dest} failed: {exc}") from exc

    def close(self) -> None:
        self.board.close()


def _tool(name: str, port: str):
    if name == "mpremote":
        return _Mpremote(port)
    if name == "ampy":
        return _Ampy(port)
    raise DeployError(f"unknown deploy tool {name!r}: choose one of {', '.join(TOOLS)}")


def probe(port: str, paths=(), tool: str = "mpremote", force_crc: bool = False) -> DeviceInfo:
    """Run the probe on the board and return what it reports (digests of ``paths``)."""
    t = _tool(tool, port)
    try:
        return parse_probe(t.run(probe_code(paths, force_crc)))
    finally:
        t.close()


def probe_code(paths, force_crc: bool = False) -> str:
    """The probe program for these board paths."""
    return PROBE_CODE.format(paths=list(paths), force_crc=bool(force_crc), mark=PROBE_MARK)


@dataclass
class DeployReport:
    """What a deploy did: board paths ``copied`` and ``skipped`` (unchanged), the board's
    ``device`` info, and ``mpy`` (the native module used, None when built in)."""

    copied: list
    skipped: list
    device: DeviceInfo
    mpy: Path | None


def sync(
    port: str,
    model=DEFAULT_MODEL,
    arch: str | None = None,
    config: dict | None = None,
    extra=(),
    tool: str = "mpremote",
    skip_unchanged: bool = True,
    mpy=None,
    board: str | None = None,
    force_crc: bool = False,
) -> DeployReport:
    """Deploy to the board on ``port`` and report what was done.

    ``arch``: the natmod architecture expected (None: whatever the board reports);
    ``mpy``: a ``.mpy`` to use instead of ``build/<arch>/_earshot.mpy``; ``board``: a board
    folder name whose ``es_board.py`` is copied too; ``tool``: "mpremote" or "ampy";
    ``force_crc``: compare with size + CRC-32 even when the board has hashlib.sha256.

    Raises DeployError: missing file, architecture/ABI mismatch, tool failure.
    """
    pairs = module_files() + [(Path(model), "model.bin")] + [(Path(s), d) for s, d in extra]
    if board is not None:
        from earshot.board import boards

        try:
            pairs.append((boards.load(board).path / "es_board.py", "es_board.py"))
        except boards.BoardError as exc:
            raise DeployError(str(exc)) from exc
    _check_exist(pairs, arch or "x64")
    with tempfile.TemporaryDirectory() as tmp:
        if config is not None:
            cfg = Path(tmp) / "earshot.json"
            cfg.write_text(json.dumps(config))
            pairs.append((cfg, "earshot.json"))
        t = _tool(tool, port)
        try:
            paths = [dest for _, dest in pairs] + ["_earshot.mpy"]
            device = parse_probe(t.run(probe_code(paths, force_crc)))
            native = None
            if not device.builtin:
                want = arch or device.arch or "x64"
                native = Path(mpy) if mpy is not None else mpy_path(want)
                _check_exist([(native, "_earshot.mpy")], want)
                check_mpy(native, device)
                pairs.append((native, "_earshot.mpy"))
            copy, skipped = [], []
            for src, dest in pairs:
                same = skip_unchanged and device.files.get(dest) == digest(src, device.hash)
                (skipped if same else copy).append((src, dest))
            t.put(copy)
        finally:
            t.close()
    return DeployReport([d for _, d in copy], [d for _, d in skipped], device, native)


def deploy(
    port: str,
    model=DEFAULT_MODEL,
    arch: str | None = None,
    config: dict | None = None,
    extra: list[tuple[Path, str]] = (),
    **kwargs,
) -> list[str]:
    """Copy the modules, ``_earshot.mpy`` (checked against the board's architecture and
    ABI), ``model`` and, when given, ``config`` (written as ``earshot.json``) to the board
    on ``port``; ``extra`` adds (host path, board path) pairs; ``kwargs`` go to :func:`sync`
    (``tool``, ``skip_unchanged``, ``mpy``, ``board``, ``force_crc``). Files whose digest on
    the board matches are skipped. Returns the board paths written.

    Raises DeployError (missing file, architecture/ABI mismatch, tool failure).
    """
    return sync(port, model, arch, config, extra, **kwargs).copied


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
