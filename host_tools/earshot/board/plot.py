"""Plot a telemetry recording (``earshot monitor --record``) to a PNG with matplotlib.

Time runs on the audio clock: hop indices (10 ms each) from the frames, with each stream
(a HELLO frame) placed after the previous one ended, so recordings of real-time and
as-fast-as-possible runs look alike. Three panels share the time axis:

1. detections: a stem per DETECT frame at its score (probability), with the posterior
   cutoff of the stream (HELLO ``cutoff`` / 255) as a dashed line;
2. VAD duty cycle and model duty cycle per STATS window (``vad_hops`` / ``hops`` and
   ``model_hops`` / ``hops``, in percent);
3. time spent in the detector per 10 ms hop (``us_sum`` / ``hops``, mean and max), in us.
"""

from __future__ import annotations

from pathlib import Path

from earshot.board.telemetry import HOP_MS


class PlotError(ValueError):
    """The recording holds nothing to plot (no STATS or DETECT rows), or the output path is
    not a PNG."""


def timeline(rows: list[dict]) -> dict:
    """Audio-time series from recorded rows: ``detections`` [(s, score 0..1)], ``cutoffs``
    [(start s, end s, cutoff 0..1)], ``stats`` [(s, window s, vad %, model %, us mean, us max)].
    """
    det, stats, cutoffs = [], [], []
    offset = 0.0  # audio seconds before the current stream
    last = 0.0  # latest audio time seen in the current stream
    cutoff = None
    start = 0.0
    for r in rows:
        kind = r.get("kind")
        if kind == "hello":
            if cutoff is not None:
                cutoffs.append((start, offset + last, cutoff))
            offset += last
            last = 0.0
            start = offset
            cutoff = r["cutoff"] / 255
        elif kind == "detect":
            t = (r["hop"] + 1) * HOP_MS / 1000
            last = max(last, t)
            det.append((offset + t, r["score"] / 255))
        elif kind == "stats":
            t = r["hop"] * HOP_MS / 1000
            last = max(last, t)
            n = max(r["hops"], 1)
            stats.append((offset + t, r["hops"] * HOP_MS / 1000, 100 * r["vad_hops"] / n,
                          100 * r["model_hops"] / n, r["us_sum"] / n, r["us_max"]))  # fmt: skip
        elif kind == "end":
            last = max(last, r["hops"] * HOP_MS / 1000)
    if cutoff is not None:
        cutoffs.append((start, offset + last, cutoff))
    return {"detections": det, "stats": stats, "cutoffs": cutoffs, "seconds": offset + last}


def plot(rows: list[dict], out, title: str | None = None) -> Path:
    """Draw the recording's timeline to the PNG ``out``; returns its path.

    Raises PlotError when ``out`` is not a ``.png`` path or there is no STATS or DETECT
    row."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise PlotError(f"{out}: the plot is a PNG; give a path ending in .png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = timeline(rows)
    if not tl["stats"] and not tl["detections"]:
        raise PlotError("nothing to plot: the recording has no stats or detect frames")
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 7), sharex=True,
                                        gridspec_kw={"height_ratios": [2, 1.4, 1]})  # fmt: skip
    if tl["detections"]:
        ts, scores = zip(*tl["detections"])
        ax1.stem(ts, scores, linefmt="C3-", markerfmt="C3o", basefmt=" ",
                 label=f"detection ({len(ts)})")  # fmt: skip
    for i, (a, b, c) in enumerate(tl["cutoffs"]):
        ax1.hlines(c, a, max(b, a + 0.01), colors="k", linestyles="--", linewidth=1,
                   label="cutoff" if i == 0 else None)  # fmt: skip
    ax1.set_ylim(0, 1.05)
    ax1.set_ylabel("score (probability)")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.grid(alpha=0.3)
    if tl["stats"]:
        t, win, vad, model, us, us_max = zip(*tl["stats"])
        starts = [a - w for a, w in zip(t, win)]
        ax2.step(starts + [t[-1]], list(vad) + [vad[-1]], where="post", label="VAD open")
        ax2.step(starts + [t[-1]], list(model) + [model[-1]], where="post",
                 label="model ran", linestyle=":")  # fmt: skip
        ax3.step(starts + [t[-1]], list(us) + [us[-1]], where="post", label="mean")
        ax3.step(starts + [t[-1]], list(us_max) + [us_max[-1]], where="post", label="max",
                 alpha=0.6)  # fmt: skip
        ax3.legend(loc="upper right", fontsize=8)
    ax2.set_ylim(-2, 102)
    ax2.set_ylabel("duty cycle (%)")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.grid(alpha=0.3)
    ax3.set_ylabel("us per 10 ms hop")
    ax3.set_xlabel("audio time (s)")
    ax3.grid(alpha=0.3)
    n_det = len(tl["detections"])
    fig.suptitle(title or f"Earshot telemetry: {tl['seconds']:.1f} s of audio, {n_det} "
                 "detection(s)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
