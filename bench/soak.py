"""Soak: the virtual board listens to hours of audio with detector, VAD gate, on-device
adaptation and telemetry on, and stays well: no telemetry frame lost, the free heap as at
the start, the time per hop as at the start.

The audio (``build/soak/flash/soak.raw``, 16 kHz int16, written in 10 s chunks, seeded):
speech-like noise (pink noise under a syllable-rate envelope in phrases of 0.4-3 s with
pauses, over a faint floor), and, when the shared recordings are present (EARSHOT_DATA), real
clips laid over it: a development positive ("alexa", ``dataset.dev_positives``) about every
POS_EVERY_S seconds and a held-out negative (``dataset.heldout_negatives``) about every
NEG_EVERY_S seconds, each at SPEECH_DBFS active level.

The board (:class:`earshot.board.vboard.VirtualBoard`, heap ``--heap``) gets the modules,
the x64 natmod and ``models/alexa`` through ``earshot deploy`` with an ``earshot.json`` that
selects the file source (as fast as the loop runs), the VAD, adaptation (es_adapt defaults)
and one STATS frame per 10-hop block. The driver (DRIVER) runs ``es_loop.start()`` as
``main.py`` would, with three observation hooks that leave detection, gating, adaptation and
telemetry as they are: it counts the frames the device sends, sends a TEXT frame ``SOAK adapt
...`` when the adaptation ends (saved or refused), every TICK_EVERY STATS frames a TEXT frame
``SOAK t <µs>`` (the device's clock since the previous one), and every HEAP_EVERY STATS frames
a TEXT frame ``SOAK heap <free B> <alloc B> <µs>`` after a gc.collect() that took <µs> (a
STATS frame's own mem_free includes garbage not collected yet).

Reported: hours of audio and wall time; frames sent by the device vs received, dropped and
corrupt (from the sequence numbers and CRCs); free heap after collection at the start and the
end (the first and last reading) and the largest change between readings after the
adaptation ended (the adapter's buffers are released then, by design); time per hop in the
first and last 10 % of the hops: p50 and p99 of the detector's time per hop (STATS us_sum /
hops, one block of 10 hops each; the device's ticks_us), and of the whole loop's time per hop
(``SOAK t`` intervals of 100 hops: detector, adaptation, telemetry, file reads, less the
soak's own gc.collect()); detections.

    python bench/soak.py [--hours H] [--json] [--heap 256k] [--no-adapt]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from earshot import audio
from earshot.board import deploy, natmod
from earshot.board.telemetry import END, STATS, TEXT, Decoder
from earshot.board.vboard import VirtualBoard
from earshot.core import HOP_SAMPLES
from earshot.paths import ROOT, data_dir

SEED = 0
RATE = audio.SAMPLE_RATE_HZ
CHUNK_S = 10  # audio written per step, s
NOISE_DBFS = -38.0  # speech-like noise, active level
FLOOR_DBFS = -65.0  # white floor under everything
SPEECH_DBFS = -26.0  # real clips, active level
POS_EVERY_S = 45.0  # mean spacing of wake words, s
NEG_EVERY_S = 8.0  # mean spacing of other speech, s
BLOCK_HOPS = 10  # es_config default: hops per loop iteration
STATS_EVERY = 10  # one STATS frame per block
TICK_EVERY = 10  # STATS frames between two readings of the device's clock (1 s of audio)
HEAP_EVERY = 100  # STATS frames between two heap readings (10 s of audio)
HEAP_TOLERANCE = 0.01  # free heap: largest allowed change, fraction
EDGE = 0.10  # the first and last fraction of the hops compared
OUT = ROOT / "build" / "soak"
MODEL = ROOT / "models" / "alexa" / "model.bin"

DRIVER = """
import gc, time, es_loop, es_telemetry
class Counted(es_telemetry.Telemetry):
    sent = 0
    def _finish(self, kind, n):
        Counted.sent += 1
        es_telemetry.Telemetry._finish(self, kind, n)
tel = Counted()
_adapt, _stats = es_loop.Loop._adapt, es_loop.Loop._stats
state = [0, 0]
def adapt_hook(self, samples, probs, flags):
    r = _adapt(self, samples, probs, flags)
    if self.adapter is None and not state[0]:
        state[0] = 1
        tel.text('SOAK adapt ' + ('refused' if self.adapted is False else str(len(self.adapted))))
    return r
last = [time.ticks_us()]
def stats_hook(self, *a):
    r = _stats(self, *a)
    state[1] += 1
    if state[1] % {tick_every} == 0:
        now = time.ticks_us()
        tel.text('SOAK t %d' % time.ticks_diff(now, last[0]))
        last[0] = now
    if state[1] % {heap_every} == 1:
        t = time.ticks_us()
        gc.collect()
        g = time.ticks_diff(time.ticks_us(), t)
        tel.text('SOAK heap %d %d %d' % (gc.mem_free(), gc.mem_alloc(), g))
    return r
es_loop.Loop._adapt = adapt_hook
es_loop.Loop._stats = stats_hook
res = es_loop.start(None, tel)
gc.collect()
print('SOAK done', res[0], res[1], Counted.sent, gc.mem_free())
"""


def dbfs(level_db: float) -> float:
    """int16 RMS of a level in dB relative to full scale (0 dBFS = RMS 32768)."""
    return 32768.0 * 10 ** (level_db / 20)


def speechlike(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of speech-like noise, float64, RMS about 1 while active: pink noise
    under a 3-6 Hz syllable envelope, in phrases of 0.4-3 s separated by 0.2-2 s pauses."""
    white = rng.standard_normal(n + RATE)
    spec = np.fft.rfft(white)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), len(white))[RATE:]
    pink /= np.sqrt(np.mean(pink**2))
    env = np.zeros(n)
    pos = int(rng.uniform(0.0, 1.0) * RATE)
    while pos < n:
        length = int(rng.uniform(0.4, 3.0) * RATE)
        t = np.arange(min(length, n - pos)) / RATE
        rate = rng.uniform(3.0, 6.0)
        env[pos : pos + len(t)] = np.sin(np.pi * rate * t) ** 2 * np.sqrt(2)
        pos += length + int(rng.uniform(0.2, 2.0) * RATE)
    return pink * env


def active_rms(x: np.ndarray) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest (an active speech level)."""
    n = len(x) // HOP_SAMPLES
    if n == 0:
        return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-9)
    e = np.mean(np.asarray(x[: n * HOP_SAMPLES], np.float64).reshape(n, -1) ** 2, axis=1)
    return float(np.sqrt(np.mean(e[e >= e.max() * 1e-3])) + 1e-9)


def real_clips(limit: int = 200) -> tuple[list, list, str]:
    """(positives, negatives, note): up to ``limit`` real clips of each kind (int16) from the
    shared recordings, or empty lists and why."""
    from earshot.train import dataset

    root = data_dir(required=False)
    if root is None:
        return [], [], "shared recordings absent (EARSHOT_DATA): speech-like noise only"

    def take(paths):
        out = []
        for p in paths:
            try:
                out.append(audio.load(p))
            except audio.AudioError:
                continue
            if len(out) == limit:
                break
        return out

    rng = np.random.default_rng(SEED)
    neg = list(dataset.heldout_negatives(root))
    rng.shuffle(neg)
    pos, neg = take(dataset.dev_positives(root)), take(neg)
    return pos, neg, f"{len(pos)} real wake words and {len(neg)} other real clips over noise"


def write_audio(path: Path, hours: float, pos: list, neg: list) -> tuple[int, int, int]:
    """Write ``hours`` of soak audio (raw int16 LE) to ``path``; returns the hops written and
    the wake words and other clips laid in (whole: a clip that crosses a chunk's end goes on
    in the next; the file's end cuts the last)."""
    rng = np.random.default_rng(SEED)
    hops = int(round(hours * 3600 * RATE / HOP_SAMPLES))
    total = hops * HOP_SAMPLES
    step = CHUNK_S * RATE
    clip_at = {"pos": rng.exponential(POS_EVERY_S) * RATE,
               "neg": rng.exponential(NEG_EVERY_S) * RATE}  # next clip of each kind, sample
    laid = {"pos": 0, "neg": 0}
    active = []  # (first sample, scaled clip) of the clips not yet written out
    with open(path, "wb") as f:
        for start in range(0, total, step):
            n = min(step, total - start)
            x = speechlike(n, rng) * dbfs(NOISE_DBFS) + rng.standard_normal(n) * dbfs(FLOOR_DBFS)
            for kind, clips, every in (("pos", pos, POS_EVERY_S), ("neg", neg, NEG_EVERY_S)):
                while clips and clip_at[kind] < start + n:
                    c = clips[int(rng.integers(len(clips)))].astype(np.float64)
                    at = int(clip_at[kind])
                    active.append((at, c * dbfs(SPEECH_DBFS) / active_rms(c)))
                    laid[kind] += at + len(c) <= total
                    clip_at[kind] += len(c) + rng.exponential(every) * RATE
            for at, c in active:
                lo, hi = max(at, start), min(at + len(c), start + n)
                x[lo - start : hi - start] += c[lo - at : hi - at]
            active = [(at, c) for at, c in active if at + len(c) > start + n]
            f.write(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())
    return hops, laid["pos"], laid["neg"]


def run_board(flash: Path, heap: str, idle_s: float, log, adapt: bool = True) -> dict:
    """Deploy to a virtual board on ``flash`` (soak.raw already there), run DRIVER and
    decode its telemetry. Returns the frames' record: stats rows (hop, hops, us_sum, us_max),
    clock readings (hop, µs since the previous one), heap readings (hop, free B, alloc B,
    gc.collect µs), adaptation (hop, what), END, counters."""
    cfg = {"source": "file", "file": {"path": "soak.raw", "realtime": False}, "vad": True,
           "block_hops": BLOCK_HOPS, "stats_every": STATS_EVERY, "adapt": {"enabled": adapt}}
    natmod.build("x64")
    dec = Decoder()
    rec = {"stats": [], "heap": [], "ticks": [], "adapt": None, "end": None, "text": ""}
    hop = 0
    with VirtualBoard(flash, heapsize=heap) as board:
        deploy.deploy(board.port, model=MODEL, config=cfg)
        log("soak: board deployed; running the loop")
        t0 = time.monotonic()
        code = DRIVER.format(heap_every=HEAP_EVERY, tick_every=TICK_EVERY)
        for chunk in deploy.exec_stream(board.port, code, idle_timeout=idle_s):
            for f in dec.feed(chunk):
                if f.kind == STATS:
                    hop = f["hop"]
                    rec["stats"].append((hop, f["hops"], f["us_sum"], f["us_max"]))
                elif f.kind == TEXT and f["text"].startswith("SOAK t "):
                    rec["ticks"].append((hop, int(f["text"].split()[2])))
                elif f.kind == TEXT and f["text"].startswith("SOAK heap"):
                    free, alloc, gc_us = map(int, f["text"].split()[2:5])
                    rec["heap"].append((hop, free, alloc, gc_us))
                elif f.kind == TEXT and f["text"].startswith("SOAK adapt"):
                    rec["adapt"] = (hop, f["text"].split()[2])
                elif f.kind == END:
                    rec["end"] = f.fields
            rec["text"] += dec.take_text()
        rec["wall_s"] = time.monotonic() - t0
        rec["vboard_dropped_bytes"] = board.dropped_bytes
    rec.update(frames=dec.frames, dropped=dec.dropped, corrupt=dec.corrupt)
    return rec


def _pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def loop_us(ticks: list, heap: list) -> list:
    """(hop, µs per hop of the whole loop) per interval between two clock readings (the
    device's ticks_us), less the soak's own gc.collect() that fell into it."""
    gc_at = {h[0]: h[3] for h in heap}
    out = []
    for (h0, _), (h1, dt) in zip(ticks, ticks[1:]):
        if h1 > h0:
            gc_us = sum(us for h, us in gc_at.items() if h0 <= h < h1)
            out.append((h1, (dt - gc_us) / (h1 - h0)))
    return out


def timing(stats: list, loop: list, lo: int, hi: int) -> dict:
    """p50/p99 of the detector's µs per hop (per STATS block) and of the whole loop's µs per
    hop (per clock interval, :func:`loop_us`) over the rows whose hop lies in [lo, hi)."""
    rows = [r for r in stats if lo <= r[0] < hi and r[1] > 0]
    per_hop = [r[2] / r[1] for r in rows]
    wall = [us for h, us in loop if lo <= h < hi]
    return {"blocks": len(rows), "detector_us_p50": round(_pct(per_hop, 50), 1),
            "detector_us_p99": round(_pct(per_hop, 99), 1),
            "detector_us_max": max((r[3] for r in rows), default=0),
            "loop_wall_us_p50": round(_pct(wall, 50), 1),
            "loop_wall_us_p99": round(_pct(wall, 99), 1)}


def heap_report(heap: list, adapt) -> dict:
    """Free heap after collection: first and last reading, their change, and the largest
    change from the first reading after the adaptation ended (or the first) to any later."""
    if not heap:
        return {"readings": 0}
    base_i = 0
    if adapt is not None:
        base_i = next((i for i, h in enumerate(heap) if h[0] > adapt[0]), len(heap) - 1)
    base = heap[base_i][1]
    drift = max(abs(h[1] - base) for h in heap[base_i:]) / base
    return {"readings": len(heap), "free_start_b": heap[0][1], "free_end_b": heap[-1][1],
            "change_start_end": round((heap[-1][1] - heap[0][1]) / heap[0][1], 5),
            "steady_from_hop": heap[base_i][0], "free_steady_start_b": base,
            "max_steady_change": round(drift, 5), "alloc_end_b": heap[-1][2]}


def summarize(rec: dict, hops: int, hours: float, note: str) -> dict:
    """The report (see the module docstring) from run_board's record."""
    done = [ln.split() for ln in rec["text"].splitlines() if ln.startswith("SOAK done")]
    sent = int(done[-1][4]) if done else None
    edge = max(1, int(hops * EDGE))
    heap = heap_report(rec["heap"], rec["adapt"])
    loop = loop_us(rec["ticks"], rec["heap"])
    out = {
        "hours": round(hours, 4),
        "audio": note,
        "hops": hops,
        "hops_run": (rec["end"] or {}).get("hops"),
        "wall_s": round(rec["wall_s"], 1),
        "realtime_factor": round(hours * 3600 / rec["wall_s"], 1),
        "detections": (rec["end"] or {}).get("detections"),
        "adaptation": None if rec["adapt"] is None else
        {"ended_at_hop": rec["adapt"][0], "result": rec["adapt"][1]},
        "frames_sent": sent,
        "frames_received": rec["frames"],
        "frames_dropped": rec["dropped"],
        "frames_corrupt": rec["corrupt"],
        "vboard_dropped_bytes": rec["vboard_dropped_bytes"],
        "heap": heap,
        "first_10pct": timing(rec["stats"], loop, 0, edge),
        "last_10pct": timing(rec["stats"], loop, hops - edge, hops + 1),
    }
    out["ok"] = {
        "all_audio_run": out["hops_run"] == hops,
        "no_frame_lost": sent == rec["frames"] and rec["dropped"] == 0 and rec["corrupt"] == 0,
        "heap_steady": heap.get("max_steady_change", 1.0) <= HEAP_TOLERANCE,
    }
    return out


def run(hours: float, heap: str, log, adapt: bool = True) -> dict:
    """Write the audio, run the board (adaptation on unless ``adapt`` is False), summarize
    (see the module docstring)."""
    flash = OUT / "flash"
    shutil.rmtree(OUT, ignore_errors=True)
    flash.mkdir(parents=True)
    pos, neg, note = real_clips()
    log(f"soak: writing {hours:g} h of audio ({note})")
    hops, n_pos, n_neg = write_audio(flash / "soak.raw", hours, pos, neg)
    rec = run_board(flash, heap, idle_s=300.0, log=log, adapt=adapt)
    res = summarize(rec, hops, hours, note)
    res.update(adapt_enabled=adapt, wake_words=n_pos, other_clips=n_neg)
    return res


def table(r: dict) -> str:
    f, l_ = r["first_10pct"], r["last_10pct"]
    h = r["heap"]
    ad = r["adaptation"]
    lines = [
        f"audio: {r['hours']:g} h ({r['hops']:,} hops; {r['audio']}), run in {r['wall_s']:,.0f} "
        f"s ({r['realtime_factor']:g}x real time), {r['detections']} detections "
        f"({r.get('wake_words', 0)} wake words and {r.get('other_clips', 0)} other clips laid in)",
        "adaptation: " + ("off" if not r.get("adapt_enabled", True) else "did not end"
                          if ad is None else f"ended at hop {ad['ended_at_hop']:,} "
                          f"({ad['result']})"),
        f"telemetry frames: sent {r['frames_sent']}, received {r['frames_received']}, "
        f"dropped {r['frames_dropped']}, corrupt {r['frames_corrupt']}",
        f"free heap after gc: start {h.get('free_start_b', 0):,} B, end {h.get('free_end_b', 0):,}"
        f" B; from hop {h.get('steady_from_hop', 0):,} on, largest change "
        f"{100 * h.get('max_steady_change', 0):.2f} % ({h.get('readings', 0)} readings)",
        "",
        f"{'time per hop (us)':<26} {'first 10 %':>11} {'last 10 %':>11}",
    ]
    for key, name in (("detector_us_p50", "detector p50"), ("detector_us_p99", "detector p99"),
                      ("detector_us_max", "detector max"), ("loop_wall_us_p50", "whole loop p50"),
                      ("loop_wall_us_p99", "whole loop p99")):
        lines.append(f"{name:<26} {f[key]:>11,} {l_[key]:>11,}")
    lines.append("")
    lines.append("checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in
                                        r["ok"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0, help="audio to run, hours")
    ap.add_argument("--heap", default="256k", help="the board's heap (-X heapsize)")
    ap.add_argument("--no-adapt", action="store_true", help="adaptation off (a detection-only "
                    "baseline)")
    ap.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    args = ap.parse_args(argv)
    if args.hours <= 0:
        ap.error("--hours must be > 0")
    res = run(args.hours, args.heap, lambda m: print(m, file=sys.stderr), not args.no_adapt)
    print(json.dumps(res, indent=2) if args.json else table(res))
    return 0 if all(res["ok"].values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
