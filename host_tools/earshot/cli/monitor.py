"""``earshot monitor``: live telemetry from a board's serial port, optionally recorded."""

import signal
import threading
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "monitor",
        help="show a board's telemetry live; --record FILE saves it (.jsonl or .csv)",
        description="Decode the telemetry frames a board sends on its serial port and show "
        "them live: detections, VAD duty cycle, time per hop, free heap, and counts of good, "
        "dropped and corrupt frames. Survives garbage on the line and reconnects when the "
        "port disappears and comes back (board reset, USB re-plugged). Ctrl-C to stop.",
    )
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyACM0")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--record", type=Path, help="write every frame to FILE (.jsonl or .csv)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--quiet", action="store_true", help="no live view, only the summary")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from rich.console import Console
    from rich.live import Live

    from earshot.board.monitor import Monitor, Recorder, RecordError

    console = Console()
    rec = None
    if args.record is not None:
        try:
            rec = Recorder(args.record)
        except (RecordError, OSError) as exc:
            console.print(f"[red]error:[/] {exc}")
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
    return 0
