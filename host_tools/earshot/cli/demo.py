"""``earshot demo``: the wake-word detector on the virtual board, with live telemetry.

Builds ``_earshot.mpy`` (x64), boots a virtual board in a temporary flash folder, deploys
with mpremote, writes the audio into the flash as the board's microphone (``mic.raw``,
int16 LE) and runs ``es_loop.start()`` there. Telemetry frames from the board's serial line
are decoded and shown with rich: each detection (time, score), VAD duty cycle, time per
10 ms hop and free heap. Exits 0 at the end of the audio with a summary.
"""

import tempfile
from pathlib import Path

import numpy as np

from earshot.board.telemetry import DETECT, END, HELLO, HOP_MS, STATS, Decoder
from earshot.cli import options

HOP_SAMPLES = 160  # firmware/core/earshot.h ES_HOP_SAMPLES


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the detector on the virtual board and show live telemetry",
        description="Detect the wake word in a recording on the virtual board (MicroPython "
        "unix port) and show its telemetry live. Without --audio, a clip is synthesised: "
        '"please turn on the lights ... alexa ... what is the weather like today" in pink '
        "noise.",
    )
    p.add_argument("--audio", type=Path, help="wav/flac to use as the microphone (any rate)")
    options.add_model(p)
    p.add_argument("--seed", type=int, default=0, help="noise seed of the built-in clip")
    p.add_argument("--snr", type=float, default=15.0, help="SNR of the built-in clip, dB")
    p.add_argument(
        "--fast", action="store_true", help="feed audio as fast as possible, not in real time"
    )
    p.add_argument(
        "--cutoff", type=options.probability, metavar="P",
        help="posterior cutoff, a probability 0..1 (default: the model's)",
    )  # fmt: skip
    p.add_argument("--flash", type=Path, help="flash folder to use (default: a temporary one)")
    p.set_defaults(func=handler)


def _audio(args, console):
    from earshot import audio, democlip

    if args.audio is not None:
        try:
            x = audio.load(args.audio, notify=lambda m: console.print(f"[yellow]{m}[/]"))
        except audio.AudioError as exc:
            console.print(f"[red]error:[/] {exc}")
            return None, None
        return x, f"{args.audio} ({len(x) / audio.SAMPLE_RATE_HZ:.1f} s)"
    try:
        clip = democlip.make(seed=args.seed, snr_db=args.snr)
    except democlip.DemoClipError as exc:
        console.print(f"[red]error:[/] {exc}")
        return None, None
    a, b = (s / audio.SAMPLE_RATE_HZ for s in clip.wake_span)
    desc = (
        f'built-in clip: "{clip.text}", pink noise at {clip.snr_db:g} dB SNR, seed '
        f'{clip.seed} ({clip.seconds:.1f} s; "alexa" spoken at {a:.2f}-{b:.2f} s)'
    )
    return clip.samples, desc


class _View:
    """The live telemetry state, rendered as a rich table."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.detections = []  # (time s, score 0..1)
        self.last = None
        self.hops = 0
        self.vad_hops = 0
        self.us_sum = 0
        self.us_max = 0
        self.heap_min = None
        self.ended = None

    def update(self, frame):
        if frame.kind == DETECT:
            self.detections.append(((frame["hop"] + 1) * HOP_MS / 1000, frame["score"] / 255))
        elif frame.kind == STATS:
            self.last = frame.fields
            self.hops = frame["hop"]
            self.vad_hops += frame["vad_hops"]
            self.us_sum += frame["us_sum"]
            self.us_max = max(self.us_max, frame["us_max"])
            free = frame["mem_free"]
            self.heap_min = free if self.heap_min is None else min(self.heap_min, free)
        elif frame.kind == END:
            self.ended = frame.fields

    def render(self, decoder):
        from rich.table import Table

        t = Table(title="Earshot on the virtual board", show_header=True, expand=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        t.add_row("audio", f"{self.hops * HOP_MS / 1000:5.1f} / {self.seconds:.1f} s")
        s = self.last
        if s is not None:
            n = max(s["hops"], 1)
            t.add_row("VAD duty cycle (last second)", f"{100 * s['vad_hops'] / n:5.1f} %")
            t.add_row("model ran (last second)", f"{100 * s['model_hops'] / n:5.1f} % of hops")
            t.add_row("time per 10 ms hop", f"{s['us_sum'] / n:7.1f} us (max {s['us_max']} us)")
            t.add_row("free heap", f"{s['mem_free']:,} B")
        for when, score in self.detections:
            t.add_row("[bold green]DETECTION[/]", f"[bold green]{when:6.2f} s  score {score:.2f}")
        t.add_row(
            "frames", f"{decoder.frames} ok, {decoder.dropped} dropped, {decoder.corrupt} corrupt"
        )
        return t


def handler(args) -> int:
    from rich.console import Console
    from rich.live import Live

    from earshot.board import deploy, natmod
    from earshot.board.vboard import BoardError, VirtualBoard

    console = Console()
    samples, desc = _audio(args, console)
    if samples is None:
        return 2
    from earshot.model import package

    model = args.model or deploy.DEFAULT_MODEL
    try:
        package.load_blob(model)  # a package folder or a blob, checked before the board starts
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}: pass --model (a package folder or a blob)")
        return 2
    console.print(f"audio: {desc}")
    with console.status("building _earshot.mpy (x64)"):
        try:
            natmod.ensure("x64")
        except natmod.NatmodError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 1
    samples = np.concatenate([samples, np.zeros((-len(samples)) % HOP_SAMPLES, np.int16)])
    seconds = len(samples) / 16000
    with tempfile.TemporaryDirectory(prefix="earshot-demo-") as tmp:
        flash = args.flash or Path(tmp) / "flash"
        try:
            board = VirtualBoard(flash)
            port = board.start()
        except BoardError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 1
        try:
            console.print(f"virtual board on {port}; deploying with mpremote")
            (board.flash_dir / "mic.raw").write_bytes(samples.astype("<i2").tobytes())
            cfg = {"source": "file", "file": {"path": "mic.raw", "realtime": not args.fast}}
            if args.cutoff is not None:  # the board's config: probability x 255 (es_config)
                cfg["cutoff"] = max(1, round(args.cutoff * 255))
            deploy.deploy(port, model=model, config=cfg)
            decoder = Decoder()
            view = _View(seconds)
            code = "import es_loop\nes_loop.start()\n"
            with Live(view.render(decoder), console=console, refresh_per_second=8) as live:
                for chunk in deploy.exec_stream(port, code, idle_timeout=30):
                    for frame in decoder.feed(chunk):
                        if frame.kind != HELLO:
                            view.update(frame)
                    live.update(view.render(decoder))
        except deploy.DeployError as exc:
            console.print(f"[red]error:[/] {exc}")
            return 1
        finally:
            board.stop()
    console.print()
    text = decoder.take_text().strip()
    if text:
        console.print(f"[dim]board printed: {text}[/]")
    n = max(view.hops, 1)
    console.print(
        f"summary: {view.hops * HOP_MS / 1000:.1f} s of audio, {len(view.detections)} "
        f"detection(s) at {', '.join(f'{t:.2f} s' for t, _ in view.detections) or '-'}; "
        f"VAD open {100 * view.vad_hops / n:.1f} % of hops; {view.us_sum / n:.1f} us per hop "
        f"(max {view.us_max} us); lowest free heap {view.heap_min or 0:,} B; frames "
        f"{decoder.frames} ok, {decoder.dropped} dropped, {decoder.corrupt} corrupt"
    )
    return 0
