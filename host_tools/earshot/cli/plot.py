"""``earshot plot``: draw a telemetry recording to a PNG."""

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a recording (earshot monitor --record) to a PNG",
        description="Plot the score timeline with detections and the posterior cutoff, the "
        "VAD and model duty cycles and the time per hop from a .jsonl or .csv recording.",
    )
    p.add_argument("recording", type=Path, help=".jsonl or .csv from earshot monitor --record")
    p.add_argument("-o", "--out", type=Path, help="PNG to write (default: RECORDING.png)")
    p.add_argument("--title", help="figure title")
    p.set_defaults(func=handler)


def handler(args) -> int:
    from earshot.board.monitor import RecordError, read_recording
    from earshot.board.plot import PlotError, plot

    try:
        rows = read_recording(args.recording)
        out = plot(rows, args.out or args.recording.with_suffix(".png"), args.title)
    except (RecordError, PlotError) as exc:
        print(f"earshot plot: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"earshot plot: error: {exc.filename or args.recording}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(out)
    return 0
