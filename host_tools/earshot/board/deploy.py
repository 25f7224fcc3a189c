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
* files whose digest matches the host's copy are skipped (``skip_unchanged=False``, the CLI's
  ``--force``: every file is written, mpremote's ``cp`` gets its own ``-f``).

mpremote's ``cp`` skips an unchanged file by itself (sha256), and it still does here; the probe
compares digests first anyway, because mpremote's skipping does not cover what a deploy needs:
ampy never skips, a board without ``hashlib`` gets every file from mpremote (the probe falls
back to size + CRC-32), the factory model is written under another name (``model.bin.tmp``,
so mpremote would compare the wrong file), and the report says which files changed.

Nothing reaches the board before every input is checked (:func:`check_inputs`, before
connecting; :class:`InputError` names the file and the problem): the model through
:func:`earshot.model.package.load_blob` (the C parser; a package's manifest cross-checked
with its blob), the configuration through ``es_config.check`` (the board's own schema, read
from ``firmware/modules/es_config.py``; adaptation keys from ``es_adapt.DEFAULTS``), a given
``.mpy``'s header, the board definition.

The factory model is written power-safely (:mod:`earshot.board.install`): copied to
``model.bin.tmp``, checked on the board (size, CRC-32, a whole blob), the current whole
``model.bin`` kept as ``model.bin.bak``, then renamed; no rename replaces a file (FAT), so at
every instant a whole model is under a name the boot code tries.

mpremote runs as a subprocess (``python -m mpremote connect PORT ...``), one connection for
all copies (commands chained with ``+``), so it behaves exactly as from a shell. ampy is used
through its Python API (``ampy.pyboard.Pyboard`` + ``ampy.files.Files``), one connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from earshot.board import install
from earshot.board.install import FACTORY
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
    tool failed; the message says which in one line. ``details``: the tool's whole output
    (the CLI shows it with ``--debug``), "" when the message says it all."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


class InputError(DeployError):
    """A file to deploy is bad (model, configuration, .mpy, board definition); raised
    before any connection to the board. The message is one line: the file, the problem."""


#: mpremote's last line of error -> what it means for a deploy (the probe program and
#: mpremote's traceback are never shown: ``DeployError.details`` keeps them).
_MPREMOTE_ERRORS = {
    "could not enter raw repl": "no MicroPython REPL answered (could not enter the raw REPL): "
    "is it the board's port, and is the board running MicroPython?",
    "failed to access": "cannot open the port (missing, or in use by another program)",
}


def _one_line(text: str, limit: int = 100) -> str:
    """The first non-empty line of ``text``, cut at ``limit`` characters, and how many lines
    there were."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "nothing"
    first = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 3] + "..."
    return repr(first) + (f" and {len(lines) - 1} more line(s)" if len(lines) > 1 else "")


def mpremote(port: str, *args: str, timeout: float = MPREMOTE_TIMEOUT_S) -> bytes:
    """Run ``python -m mpremote connect PORT ARGS...`` and return its stdout (bytes).

    Raises DeployError, one line naming the port and the problem (``details``: the command
    and mpremote's output), when it exits non-zero or times out.
    """
    cmd = [sys.executable, "-m", "mpremote", "connect", port, *args]
    shown = " ".join("<program>" if "\n" in a else a for a in cmd)  # exec code: not in full
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DeployError(f"{port}: no answer from the board within {timeout} s (mpremote)",
                          shown) from exc  # fmt: skip
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace")
        last = next((x.strip() for x in reversed(err.splitlines()) if x.strip()), "")
        why = next((v for k, v in _MPREMOTE_ERRORS.items() if k in last), None)
        if why is None:
            last = last.removeprefix("mpremote: ").removeprefix("mpremote.transport.")
            why = f"mpremote failed ({proc.returncode}): {last[:200] or 'no message'}"
        raise DeployError(f"{port}: {why}", f"{shown}\n{err}")
    return proc.stdout


def module_files() -> list[tuple[Path, str]]:
    """(host path, board path) of the on-device modules."""
    return [(p, p.name) for p in sorted(MODULES_DIR.glob("*.py"))]


def mpy_path(arch: str) -> Path:
    """The ``_earshot.mpy`` to deploy for ``arch``: where ``python -m earshot.board.natmod
    --arch ARCH`` puts it, else the prebuilt one of ``make dist`` (an installed wheel carries
    them, :func:`earshot.board.natmod.prebuilt`), else the first path (missing)."""
    from earshot.board.natmod import prebuilt

    built = BUILD / arch / "_earshot.mpy"
    if built.is_file():
        return built
    return prebuilt(arch) or built


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
    raise DeployError(
        "the board did not answer the deploy probe (is it a MicroPython board, and is the port "
        f"its REPL?); it printed {_one_line(text)}",
        text,
    )


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

    def put(self, pairs, force: bool = False, then: str | None = None) -> bytes:
        """Copy (host path, board path) ``pairs`` with ``mpremote fs cp`` (``-f`` with
        ``force``: mpremote itself skips a file whose sha256 matches), then run ``then``,
        in one connection; returns what it printed."""
        args: list[str] = []
        for src, dest in pairs:
            args += ["+"] if args else []
            args += ["fs", "cp", *(["-f"] if force else []), str(src), ":" + dest]
        if then is not None:
            args += (["+"] if args else []) + ["exec", then]
        return mpremote(self.port, *args) if args else b""

    def close(self) -> None:
        pass


class _Ampy:
    """adafruit-ampy's Python API. ampy prints what the board sent when it cannot enter the raw
    REPL: that goes to ``DeployError.details``, never to the user's terminal."""

    def __init__(self, port: str):
        from ampy.files import Files
        from ampy.pyboard import Pyboard, PyboardError

        self._error = PyboardError
        self.port = port
        try:
            with contextlib.redirect_stdout(io.StringIO()) as said:
                self.board = Pyboard(port, baudrate=115200)
        except PyboardError as exc:
            raise DeployError(f"{port}: ampy cannot open it: {exc}", said.getvalue()) from exc
        self.files = Files(self.board)

    def _fail(self, what: str, exc: Exception, said: str) -> DeployError:
        why = str(exc).strip().splitlines()
        if why and why[0] == "could not enter raw repl":
            return DeployError(f"{self.port}: {_MPREMOTE_ERRORS['could not enter raw repl']}",
                               said)  # fmt: skip
        return DeployError(f"{self.port}: ampy {what} failed: {_one_line(str(exc))}",
                           f"{exc}\n{said}")  # fmt: skip

    def run(self, code: str) -> bytes:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(code)
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said):
                return self.files.run(f.name, wait_output=True, stream_output=False)
        except self._error as exc:
            raise self._fail("run", exc, said.getvalue()) from exc
        finally:
            Path(f.name).unlink()

    def put(self, pairs, force: bool = False, then: str | None = None) -> bytes:
        """Write each pair (ampy always writes: ``force`` changes nothing), then run
        ``then``; returns what it printed."""
        for src, dest in pairs:
            said = io.StringIO()
            try:
                with contextlib.redirect_stdout(said):
                    self.files.put(dest, Path(src).read_bytes())
            except self._error as exc:
                raise self._fail(f"put {src} -> {dest}", exc, said.getvalue()) from exc
        return self.run(then) if then is not None else b""

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
    ``device`` info, ``mpy`` (the native module used, None when built in), ``forced``
    (every file written) and ``model`` (how the factory model was installed: "" when
    unchanged; else "ok none|backup|damaged": the previous model.bin was absent, kept as
    model.bin.bak, or damaged and removed; followed by " adapted-removed" when the model
    adapted from the previous one was removed, :mod:`earshot.board.install`)."""

    copied: list
    skipped: list
    device: DeviceInfo
    mpy: Path | None
    forced: bool = False
    model: str = ""


@dataclass
class Inputs:
    """The checked inputs of a deploy (:func:`check_inputs`): (host path, board path)
    ``pairs`` (the factory model last), the ``model`` blob path and its ``blob`` bytes, the
    ``config`` object (None: not deployed)."""

    pairs: list
    model: Path
    blob: bytes
    config: dict | None


def _es_module(name: str):
    """firmware/modules/<name>.py imported on the host (es_config is plain Python)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_host_{name}", MODULES_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def adapt_keys() -> tuple:
    """The keys of ``es_adapt.DEFAULTS`` (read from the board's file: it imports _earshot)."""
    import ast

    tree = ast.parse((MODULES_DIR / "es_adapt.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "DEFAULTS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise DeployError("es_adapt.py has no DEFAULTS")  # pragma: no cover - the file is ours


def check_config(config, name: str = "config") -> dict:
    """The configuration object ``config``, or the JSON file it names (a Path), checked
    with the board's own ``es_config.check`` (unknown keys, types, ranges, not an object).
    Raises InputError, one line: ``name`` (or the file) and every problem."""
    if isinstance(config, (str, Path)):
        name = str(config)
        try:
            config = json.loads(Path(config).read_text())
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{name}: not valid JSON ({exc})") from exc
    problems = _es_module("es_config").check(config, adapt_keys())
    if problems:
        raise InputError(f"{name}: " + "; ".join(problems))
    return config


def check_inputs(model=DEFAULT_MODEL, config=None, extra=(), board=None, mpy=None,
                 arch: str | None = None) -> Inputs:  # fmt: skip
    """Check everything a deploy sends, without touching the board: the modules and
    ``extra`` files exist; ``model`` (a blob file or a package folder) passes
    :func:`earshot.model.package.load_blob`; ``config`` (a dict, or a JSON file path)
    passes :func:`check_config`; ``board`` names a board folder; ``mpy`` is a .mpy file.
    Raises InputError naming the file and the problem (DeployError for a missing module)."""
    from earshot.model import package

    try:
        _, blob, model_path = package.load_blob(model)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    cfg = None if config is None else check_config(config)
    pairs = module_files() + [(Path(s), d) for s, d in extra]
    if board is not None:
        from earshot.board import boards

        try:
            pairs.append((boards.load(board).path / "es_board.py", "es_board.py"))
        except boards.BoardError as exc:
            raise InputError(str(exc)) from exc
    _check_exist(pairs, arch or "x64")
    if mpy is not None:
        _check_exist([(Path(mpy), "_earshot.mpy")], arch or "x64")
        try:
            mpy_header(Path(mpy))
        except DeployError as exc:
            raise InputError(str(exc)) from exc
    pairs.append((model_path, FACTORY))
    return Inputs(pairs, model_path, blob, cfg)


def _adapted_name(cfg: dict | None) -> str:
    """Where the board keeps its adapted model: the deployed config's ``adapt.save_to``, else
    the default (:data:`earshot.board.install.ADAPTED`)."""
    save_to = ((cfg or {}).get("adapt") or {}).get("save_to")
    return save_to if isinstance(save_to, str) and save_to else install.ADAPTED


def _committed(output: bytes) -> str:
    what = install.result(output)
    if what is None:
        text = output.decode(errors="replace").strip()
        raise DeployError(
            f"the board did not confirm the model install; it printed {_one_line(text)}", text
        )
    return what


def sync(
    port: str,
    model=DEFAULT_MODEL,
    arch: str | None = None,
    config=None,
    extra=(),
    tool: str = "mpremote",
    skip_unchanged: bool = True,
    mpy=None,
    board: str | None = None,
    force_crc: bool = False,
) -> DeployReport:
    """Deploy to the board on ``port`` and report what was done.

    ``model``: a blob file or a package folder; ``config``: a dict or a JSON file (Path),
    written as ``earshot.json``; ``arch``: the natmod architecture expected (None: whatever
    the board reports); ``mpy``: a ``.mpy`` to use instead of ``build/<arch>/_earshot.mpy``;
    ``board``: a board folder name whose ``es_board.py`` is copied too; ``tool``: "mpremote"
    or "ampy"; ``skip_unchanged=False`` writes every file; ``force_crc``: compare with size +
    CRC-32 even when the board has hashlib.sha256. Every input is checked first
    (:func:`check_inputs`); the factory model goes through ``model.bin.tmp``
    (:mod:`earshot.board.install`).

    Raises InputError (a bad input, before connecting), DeployError: architecture/ABI
    mismatch, tool failure, the board refusing the copied model.
    """
    inputs = check_inputs(model, config, extra, board, mpy, arch)
    pairs = inputs.pairs
    with tempfile.TemporaryDirectory() as tmp:
        if inputs.config is not None:
            cfg = Path(tmp) / "earshot.json"
            cfg.write_text(json.dumps(inputs.config))
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
            files = [(s, d if d != FACTORY else install.TEMP) for s, d in copy]
            new = any(d == FACTORY for _, d in copy)
            out = t.put(files, force=not skip_unchanged,
                        then=install.commit_code(inputs.blob, _adapted_name(inputs.config))
                        if new else None)  # fmt: skip
        finally:
            t.close()
    note = _committed(out) if new else ""
    return DeployReport([d for _, d in copy], [d for _, d in skipped], device, native,
                        not skip_unchanged, note)  # fmt: skip


def deploy(
    port: str,
    model=DEFAULT_MODEL,
    arch: str | None = None,
    config=None,
    extra: list[tuple[Path, str]] = (),
    **kwargs,
) -> list[str]:
    """Copy the modules, ``_earshot.mpy`` (checked against the board's architecture and
    ABI), ``model`` and, when given, ``config`` (written as ``earshot.json``) to the board
    on ``port``; ``extra`` adds (host path, board path) pairs; ``kwargs`` go to :func:`sync`
    (``tool``, ``skip_unchanged``, ``mpy``, ``board``, ``force_crc``). Files whose digest on
    the board matches are skipped. Returns the board paths written.

    Raises InputError (a bad input, before connecting) or DeployError (architecture/ABI
    mismatch, tool failure).
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
