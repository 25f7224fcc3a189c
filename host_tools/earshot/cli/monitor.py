"""``earshot monitor``: live telemetry from a board's serial port, optionally recorded."""

import argparse
import os
import signal
import stat
import sys
import threading

from earshot.cli import options


def register(sub) -> None:
    p = sub.add_parser(
        "monitor",
        help="show a board's telemetry live; --record FILE saves it (.jsonl or .csv)",
        description="Decode the telemetry frames a board sends on its serial port and show "
        "them live: detections, VAD duty cycle, time per hop, free heap, and counts of good, "
        "dropped and corrupt frames. Survives garbage on the line and reconnects when the "
        "port disappears and comes back (board reset, USB re-plugged). Ctrl-C to stop.",
    )
    options.add_port(p)
    p.add_argument("--baud", type=_baud, default=115200, help="bits per second (default 115200)")
    options.add_out(p, "write every frame to FILE (.jsonl or .csv)", dest="record",
                    extra=("--record",))
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    p.set_defaults(func=handler)


def _baud(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of bits per second")
    return value


def _not_a_port(port: str) -> str | None:
    """Why ``port`` cannot be a serial port (an existing path that is not a character
    device: a regular file, a folder), or None. A missing path may still appear (a board
    being reset, the virtual board starting): the monitor waits for it."""
    try:
        mode = os.stat(port).st_mode
    except OSError:
        return None
    if stat.S_ISCHR(mode):
        return None
    return f"{port}: not a serial port ({'a folder' if stat.S_ISDIR(mode) else 'a regular file'})"


def handler(args) -> int:
    from rich.console import Console
    from rich.live import Live

    from earshot.board.monitor import Monitor, Recorder, RecordError

    from earshot.board.ports import PortError

    console = Console()
    try:
        args.port = options.port(args)
    except PortError as exc:
        print(f"earshot monitor: error: {exc}", file=sys.stderr)
        return 2
    problem = _not_a_port(args.port)
    if problem is not None:
        print(f"earshot monitor: error: {problem}", file=sys.stderr)
        return 2
    rec = None
    if args.record is not None:
        try:
            rec = Recorder(args.record)
        except (RecordError, OSError) as exc:
            print(f"earshot monitor: error: {exc}", file=sys.stderr)
            return 2
    mon = Monitor(args.port, args.baud, record=rec)

    def on_term(signum, frame):
        mon.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)  # stop cleanly, closing the recording
    try:
        if args.quiet:
            mon.run(args.duration)
        else:
            with Live(mon.render(), console=console, refresh_per_second=4) as live:
                mon.run(args.duration, on_tick=lambda: live.update(mon.render()))
    except KeyboardInterrupt:
        pass
    finally:
        if rec is not None:
            rec.close()
    console.print(
        f"frames: {mon.frames} ok, {mon.dropped} dropped, {mon.corrupt} corrupt; "
        f"reconnects: {mon.reconnects}; detections: {len(mon.detections)}"
        + (f"; recorded {rec.rows} rows to {rec.path}" if rec is not None else "")
    )
    if mon.opens == 0:
        why = f": {mon.open_error}" if mon.open_error else ""
        print(f"earshot monitor: error: {args.port} never opened{why}", file=sys.stderr)
        return 1
    return 0
