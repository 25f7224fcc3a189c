"""The virtual board: host tools work on it unmodified (plain mpremote without `resume`,
adafruit-ampy), soft reset and boot files behave as on a board, the supervisor survives a
killed interpreter, and the flash folder is the board's root filesystem."""

import os
import signal
import subprocess
import sys
import time

import pytest

from earshot.board.deploy import DeployError, mpremote
from earshot.board.vboard import VirtualBoard


def _ampy(port, *args):
    proc = subprocess.run(
        [sys.executable, "-m", "ampy.cli", "--port", port, *args],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "flash") as b:
        yield b


def test_port_is_a_symlink_to_a_pty(board, tmp_path):
    assert board.port == str(tmp_path / "flash.tty")
    assert os.path.islink(board.port)
    assert os.readlink(board.port).startswith("/dev/pts/")


def test_plain_mpremote_soft_resets_each_time(board):
    # Without `resume` mpremote soft-resets (Ctrl-D in the raw REPL) before every command:
    # state must not survive, as on a board, and each command must get a fresh interpreter.
    assert mpremote(board.port, "exec", "x = 41; print(x + 1)") == b"42\n"
    boots = board.boots
    out = mpremote(board.port, "exec", "print('x' in globals())")
    assert out == b"False\n"
    assert board.boots == boots + 1
    # With `resume` there is no reset: the same interpreter keeps its globals.
    mpremote(board.port, "resume", "exec", "y = 5")
    assert mpremote(board.port, "resume", "exec", "print(y)") == b"5\n"


def test_flash_is_the_root_filesystem(board, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("GREETING = 'hi from lib'\n")
    mpremote(board.port, "fs", "mkdir", ":lib", "+", "fs", "cp", str(src), ":lib/hello.py")
    assert (board.flash_dir / "lib" / "hello.py").read_text() == src.read_text()
    out = mpremote(board.port, "exec", "import os, hello; print(os.getcwd(), hello.GREETING)")
    assert out == b"/ hi from lib\n"
    assert "/lib" in _ampy(board.port, "ls").split()
    _ampy(board.port, "get", "lib/hello.py", str(tmp_path / "back.py"))
    assert (tmp_path / "back.py").read_text() == src.read_text()


def test_ampy_runs_code(board, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint(sys.implementation.name, 6 * 7)\n")
    assert _ampy(board.port, "run", str(script)).split() == ["micropython", "42"]


def test_boot_and_main_run_on_a_normal_boot(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "boot.py").write_text("open('booted', 'a').write('b')\n")
    (flash / "main.py").write_text("open('booted', 'a').write('m')\nVALUE = 7\n")
    with VirtualBoard(flash) as b:
        # A normal boot ran boot.py then main.py in __main__ (the REPL sees VALUE).
        assert mpremote(b.port, "resume", "exec", "print(VALUE)") == b"7\n"
        # A raw-REPL soft reset runs boot.py only, as MicroPython's ports do.
        mpremote(b.port, "exec", "pass")
    assert (flash / "booted").read_text() == "bmb"


def test_ctrl_c_interrupts_running_code(board):
    import serial

    # Each step waits for the board's own answer, never a fixed sleep. Under load, a Ctrl-C
    # sent 0.5 s after the raw REPL's "OK" once reached the interpreter before the code ran.
    # It ended it by SIGINT (exit -2; the supervisor rebooted it), so the test now waits
    # until the loop prints.
    # It first waits for the friendly prompt: bytes that reach a booting board right after a
    # Ctrl-C are flushed as a board's terminal would flush them (see earshot.board.vboard), so
    # a raw-REPL request sent during boot is lost; test_ctrl_c_during_boot_* cover boot time.
    with serial.Serial(board.port, timeout=10) as ser:
        ser.write(b"\r")
        assert ser.read_until(b">>> ").endswith(b">>> ")
        ser.write(b"\r\x03\x03\r\x01")
        assert ser.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b">")
        ser.write(b"import time\nprint('looping')\nwhile True:\n    time.sleep_ms(5)\n\x04")
        assert ser.read_until(b"looping").endswith(b"OKlooping")  # running
        ser.write(b"\x03")
        reply = ser.read_until(b"\x04>")
    assert b"KeyboardInterrupt" in reply and reply.endswith(b"\x04>")


def _boot_under_ctrl_c(flash, seconds, every, boards=3):
    """Start ``boards`` boards on ``flash`` one after the other; on each, send Ctrl-C every
    ``every`` s for ``seconds`` s from the first moment, then check that the raw REPL runs
    code on the first boot (no reboot)."""
    import serial

    for _ in range(boards):
        with VirtualBoard(flash) as board, serial.Serial(board.port, timeout=10) as ser:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                ser.write(b"\x03")
                time.sleep(every)
            ser.write(b"\r\x01")
            assert ser.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b">")
            ser.write(b"print(6 * 7)\x04")
            assert ser.read_until(b"\x04>") == b"OK42\n\x04\x04>"
            assert board.boots == 1


@pytest.mark.slow
def test_ctrl_c_during_boot_never_kills_the_interpreter(tmp_path):
    # Ctrl-C from the first moment on, through boot.py, main.py and the REPL's start. The
    # unix port dies of SIGINT wherever it has no handler installed (its start-up, and from
    # the end of the boot code to the REPL's raw mode); the supervisor keeps host input
    # away from it there, so the board never reboots.
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "boot.py").write_text("x = 1\n")
    (flash / "main.py").write_text("y = 2\n")
    _boot_under_ctrl_c(flash, seconds=1.0, every=0.001)


@pytest.mark.slow
def test_ctrl_c_from_a_late_supervisor_never_kills_the_interpreter(tmp_path, monkeypatch):
    import selectors

    from earshot.board import vboard

    # On a loaded machine the supervisor may be scheduled late: here it sleeps 0.3 s after
    # each select() that finds a pty writable, so the boot code (a main.py that ignores
    # Ctrl-C for 0.5 s) often prints its end marker between the select() and the write of
    # the host's next Ctrl-C. The boot code waits for the supervisor's acknowledgement under
    # its SIGINT handler, so that byte is a KeyboardInterrupt, not a SIGINT death and a
    # reboot. With no time limit on that wait, a missing acknowledgement hangs the boot and
    # fails the test. (Once, under two trainings and the test suite on 2 cores, the earlier
    # rule, a fixed 100 ms pause after the marker, let such a Ctrl-C kill the interpreter in
    # test_ctrl_c_during_boot_never_kills_the_interpreter.)
    class LateSelector(selectors.DefaultSelector):
        def select(self, timeout=None):
            ready = super().select(timeout)
            if any(events & selectors.EVENT_WRITE for _, events in ready):
                time.sleep(0.3)
            return ready

    monkeypatch.setattr(vboard.selectors, "DefaultSelector", LateSelector)
    monkeypatch.setattr(vboard, "BOOT_ACK_TIMEOUT_MS", 600_000)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(
        "import time\n"
        "t = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), t) < 500:\n"
        "    try:\n"
        "        time.sleep_ms(5)\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
    )
    _boot_under_ctrl_c(flash, seconds=2.0, every=0.01)


def test_ctrl_c_interrupts_a_main_py_that_never_returns(tmp_path):
    import serial

    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(
        "import time\nwhile True:\n    print('main running')\n    time.sleep_ms(100)\n"
    )
    with VirtualBoard(flash) as board, serial.Serial(board.port, timeout=10) as ser:
        assert ser.read_until(b"main running").endswith(b"main running")
        ser.write(b"\x03")
        reply = ser.read_until(b">>> ")
        assert b"KeyboardInterrupt" in reply and reply.endswith(b">>> ")
        ser.write(b"print(6 * 7)\r")
        assert ser.read_until(b"42\n").endswith(b"42\n")
        assert board.boots == 1


def exec_when_up(port: str, code: str, within_s: float = 60.0) -> bytes:
    """mpremote ``exec code`` on a board that is rebooting: retried until it answers or
    ``within_s`` seconds pass (a restart is slow on a loaded CI machine); the last error is
    raised then."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return mpremote(port, "exec", code)
        except DeployError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_supervisor_survives_a_killed_interpreter(board):
    assert mpremote(board.port, "exec", "print(1)") == b"1\n"
    pid = board.pid
    boots = board.boots
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (board.pid in (None, pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert board.pid not in (None, pid)
    assert board.boots == boots + 1
    assert exec_when_up(board.port, "print(2)") == b"2\n"
    # sys.exit() ends the unix port too (a board soft-resets): the board reboots.
    boots = board.boots
    mpremote(board.port, "exec", "import sys; sys.exit(3)", timeout=30)
    assert exec_when_up(board.port, "print(3)") == b"3\n"
    assert board.boots >= boots + 2


def test_output_without_a_reader_does_not_stall(board):
    # main-loop style output with no host reading: the board keeps running, excess dropped.
    import serial

    # mpremote retries until the interpreter is up (slow to start on a loaded machine).
    assert mpremote(board.port, "resume", "exec", "print('up')") == b"up\n"
    with serial.Serial(board.port, timeout=0.5) as ser:
        ser.write(b"\r\x03\x03\r\x01")
        ser.timeout = 30
        assert ser.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b">")
        # ~300 KB of output, well past the 64 KB the supervisor holds for a reader.
        ser.write(b"for i in range(5000):\n    print('x' * 60)\nopen('done', 'w').close()\n\x04")
    deadline = time.monotonic() + 120  # generous: CI machines may be loaded
    while not (board.flash_dir / "done").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (board.flash_dir / "done").exists()
    assert board.dropped_bytes > 0
    assert mpremote(board.port, "exec", "print('alive')").endswith(b"alive\n")


def test_stop_removes_the_port(tmp_path):
    b = VirtualBoard(tmp_path / "flash")
    port = b.start()
    pid = b.pid
    b.stop()
    assert not os.path.lexists(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_acknowledgement_wait_keeps_every_ctrl_c(tmp_path):
    # The boot code's wait for _ACK must keep every KeyboardInterrupt inside it, wherever the
    # SIGINT lands: MicroPython raises a pending one at the next branch (py/vm.c,
    # pending_exception_check), so a branch outside the wait's try (a loop's condition, an
    # except clause's type match) let one escape; the boot code then ended and removed the
    # handler while a late supervisor still forwarded Ctrl-C (test_ctrl_c_during_boot_never_
    # kills_the_interpreter failed so under two trainings). Here about 1,500 SIGINTs arrive
    # in 0.5 s during the wait, then the ACK: the boot code must end without a traceback and
    # reach the REPL. The earlier wait died in 4 of 6 runs of this test.
    import pty
    import subprocess

    from earshot.board import vboard

    flash = tmp_path / "flash"
    flash.mkdir()
    code = vboard._BOOT_CODE.format(up=vboard._UP, flash=str(flash), files=("boot.py",),
                                    done=vboard._BOOTED, ack=vboard._ACK,
                                    ack_timeout_ms=60_000)
    m, s = pty.openpty()
    vboard._set_raw(s, isig=False)  # the SIGINTs come from os.kill below, not the terminal
    proc = subprocess.Popen([vboard.micropython_executable(), "-i", "-c", code], stdin=s,
                            stdout=s, stderr=s, start_new_session=True)
    os.close(s)
    out = b""
    try:
        deadline = time.monotonic() + 30
        while vboard._BOOTED.encode() not in out and time.monotonic() < deadline:
            out += os.read(m, 4096)
        assert vboard._BOOTED.encode() in out
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            os.kill(proc.pid, signal.SIGINT)
            time.sleep(0.0002)
        os.write(m, vboard._ACK)
        os.write(m, b"print(6 * 7)\r")
        while b"42" not in out and time.monotonic() < deadline and proc.poll() is None:
            try:
                out += os.read(m, 4096)
            except OSError:  # EIO: it ended
                break
        rc = proc.poll()
    finally:
        proc.kill()
        proc.wait()
        os.close(m)
    assert rc is None, f"the interpreter died (exit {rc}) after the boot code's end"
    tail = out.split(vboard._BOOTED.encode(), 1)[1]
    assert b"KeyboardInterrupt" not in tail and b"42" in tail, tail
