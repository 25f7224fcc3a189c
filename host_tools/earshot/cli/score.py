"""``earshot score``: score audio files offline through the C core (ctypes)."""

import json
import sys

from earshot.cli import options

HELP = """\
Prints one JSON object per FILE (with --json; a short line per file otherwise), with keys:
  file        the path as given
  duration_s  audio length in seconds (after conversion to 16 kHz mono), padding excluded
  pad_s       seconds of silence scored after the file (--pad; scores cover them too)
  step_s      seconds between two consecutive scores (the model's output stride x 10 ms hop)
  scores      wake-word probability 0..1 after each step; 0 while the VAD gate kept the model off
  cutoff      the model's detection cutoff, 0..1 (mean of the last `window` scores >= cutoff)
  detections  seconds from the start of the file to the end of the 10 ms hop that fired
  vad_duty    fraction of 10 ms hops in which the model ran, the pad included (1.0 with
              --no-vad)
Files of any sample rate and channel count are resampled to 16 kHz mono (a message on stderr
says so). Each file is followed by --pad seconds of silence (default 1, as eval pads its
clips), so a clip that stops right after the word is still detected. The same C core runs on
the device, so detections equal the board's for the same audio.
"""


def register(sub):
    p = sub.add_parser(
        "score",
        help="score audio offline through the C core",
        description="Score wav/flac files through the Earshot C core (ctypes).",
        epilog=HELP,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="wav or flac file")
    options.add_model(p)
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.add_argument("--no-vad", action="store_true", help="run the model on every hop")
    p.add_argument(
        "--pad", type=float, default=1.0, metavar="S",
        help="seconds of silence scored after each file (default 1; 0: none)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args) -> int:
    from earshot.audio import AudioError
    from earshot.score import score_file

    if not args.pad >= 0:
        print(f"earshot score: --pad must be 0 or more seconds, got {args.pad}", file=sys.stderr)
        return 2
    status = 0
    for f in args.files:
        try:
            res = score_file(
                f, args.model, vad=not args.no_vad, pad_s=args.pad,
                notify=lambda m: print(m, file=sys.stderr),
            )  # fmt: skip
        except (AudioError, ValueError, OSError) as exc:
            print(f"earshot score: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(res))
        else:
            dets = ", ".join(f"{t:.2f}s" for t in res["detections"]) or "none"
            print(
                f"{res['file']}: {res['duration_s']:.2f} s, detections: {dets}, "
                f"VAD duty {res['vad_duty']:.1%}"
            )
    return status
