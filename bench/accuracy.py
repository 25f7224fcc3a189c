"""Accuracy bench: Earshot vs microWakeWord's "alexa" on the shared recordings, same run.

Method (shared ``data/README.md``): each development positive
(``wake-word-benchmark/alexa``, undecodable files reported and skipped) is padded with 1 s of
silence on both sides and run on its own (a fresh detector); it counts when at least one
detection fires. All negatives (wake-word-benchmark computer/jarvis/snowboy, precise-community,
wuw-corpus-ii), resampled to 16 kHz, are shuffled with seed 0 and joined with 0.5 s of silence
into one stream; detections closer than 1.5 s are merged into one false accept. The same is
reported on the held-out negatives alone (never trained on, ``earshot.dataset``).

Earshot runs through the C core (``earshot.core.Detector``, VAD gate on, the model's default
cutoff/window/refractory). microWakeWord runs through ``pymicro-wakeword`` 2.5.0 with its
defaults (cutoff 0.9, window 5); each 30 ms step whose window mean exceeds the cutoff is a
detection, merged as above.

``--snr DB`` adds seeded white Gaussian noise (seed 1) at that SNR to every clip, relative to
the clip's own RMS over its samples (pads and gaps included in the noise), for both engines.

    python bench/accuracy.py [--model models/alexa] [--snr 10] [--json] [--card README.md]

``--card FILE`` rewrites the block between ``<!-- bench:accuracy:begin -->`` and
``<!-- bench:accuracy:end -->`` in FILE with the table of this run (numbers from the run only).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from earshot import dataset
from earshot.audio import SAMPLE_RATE_HZ

MERGE_S = 1.5
PAD_S = 1.0
GAP_S = 0.5
SHUFFLE_SEED = 0
NOISE_SEED = 1
MWW_CUTOFF = 0.9
MWW_WINDOW = 5
MWW_STEP_S = 0.03  # 3 feature hops of 10 ms per model step (pymicro-wakeword stride)
HOP_S = 0.01
CARD_BEGIN = "<!-- bench:accuracy:begin -->"
CARD_END = "<!-- bench:accuracy:end -->"


def merge(times_s, window_s: float = MERGE_S) -> list[float]:
    """Detection times (s, ascending) with any detection within ``window_s`` of the previous
    kept one dropped."""
    out: list[float] = []
    for t in times_s:
        if not out or t - out[-1] >= window_s:
            out.append(float(t))
    return out


def add_noise(x: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """int16 ``x`` plus white Gaussian noise at ``snr_db`` below its RMS (None: unchanged)."""
    if snr_db is None:
        return x
    xf = x.astype(np.float64)
    rms = np.sqrt(np.mean(xf**2)) + 1e-9
    noisy = xf + rng.standard_normal(len(x)) * rms / 10 ** (snr_db / 20)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def pad(x: np.ndarray, seconds: float) -> np.ndarray:
    z = np.zeros(int(seconds * SAMPLE_RATE_HZ), np.int16)
    return np.concatenate([z, x, z])


def negative_stream(paths, snr_db, rng) -> tuple[np.ndarray, int, int]:
    """Shuffled (seed 0) clips joined with 0.5 s gaps: (int16 stream, clips used, failed)."""
    paths = sorted(paths)
    random.Random(SHUFFLE_SEED).shuffle(paths)
    clips, failed = dataset.load_clips(paths)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), np.int16)
    parts = []
    for c in clips:
        parts += [add_noise(np.concatenate([c, gap]), snr_db, rng)]
    return np.concatenate(parts), len(clips), len(failed)


# --- engines ----------------------------------------------------------------------------------


class Earshot:
    name = "Earshot"

    def __init__(self, model_dir):
        from earshot import modelpkg
        from earshot.model import Model

        self.manifest, blob = modelpkg.load(model_dir)
        self.model = Model(blob)

    def settings(self) -> str:
        m = self.manifest
        return f"cutoff {m['cutoff']:.2f}, window {m['window']}, VAD on"

    def detect(self, samples: np.ndarray) -> list[float]:
        from earshot.core import Detector

        m = self.manifest
        det = Detector(self.model, cutoff=m["cutoff"], window=m["window"],
                       refractory=m["refractory"], vad=True)
        res = det.run(samples)
        return [(int(h) + 1) * HOP_S for h in res.detections]


class MicroWakeWord:
    name = "microWakeWord"

    def __init__(self):
        from pymicro_wakeword import MicroWakeWord as Mww
        from pymicro_wakeword import Model

        self.mww = Mww.from_builtin(Model.ALEXA)
        if (self.mww.probability_cutoff, self.mww.sliding_window_size) != (MWW_CUTOFF,
                                                                            MWW_WINDOW):
            raise RuntimeError("pymicro-wakeword alexa defaults changed: expected 0.9 / 5")

    def settings(self) -> str:
        return f"cutoff {MWW_CUTOFF}, window {MWW_WINDOW}"

    def detect(self, samples: np.ndarray) -> list[float]:
        from pymicro_wakeword import MicroWakeWordFeatures

        self.mww.reset()
        times = []
        feats = MicroWakeWordFeatures().process_streaming(samples.tobytes())
        for k, f in enumerate(feats):
            p = self.mww.process_streaming_prob(f)
            if (k + 1) % self.mww.stride == 0 and p is not None and p > MWW_CUTOFF:
                times.append((k + 1) * HOP_S)
        return times


# --- bench ------------------------------------------------------------------------------------


def run(model_dir, snr_db=None, limit_negatives=None, log=print) -> dict:
    """Measure every engine; returns a JSON-able dict of results."""
    engines = [Earshot(model_dir), MicroWakeWord()]
    root = dataset.data_dir()
    pos_paths = dataset.dev_positives(root)
    rng = np.random.default_rng(NOISE_SEED)
    positives, failed = [], []
    for p in pos_paths:
        clips, bad = dataset.load_clips([p])
        if bad:
            failed.append(p.name)
            log(f"skipped {p.name}: {bad[0][1]}")
            continue
        positives.append((p.name, add_noise(pad(clips[0], PAD_S), snr_db, rng)))
    neg_paths = dataset.all_negatives(root)
    held = dataset.heldout_negatives(root)
    if limit_negatives:
        neg_paths = neg_paths[:limit_negatives]
        held = held[: max(1, limit_negatives // 3)]
    stream, n_neg, n_neg_failed = negative_stream(neg_paths, snr_db, rng)
    held_stream, n_held, _ = negative_stream(held, snr_db, rng)
    hours = len(stream) / SAMPLE_RATE_HZ / 3600
    held_hours = len(held_stream) / SAMPLE_RATE_HZ / 3600
    results = {
        "snr_db": snr_db,
        "positives": len(positives),
        "positives_unreadable": failed,
        "negative_clips": n_neg,
        "negative_unreadable": n_neg_failed,
        "negative_hours": round(hours, 3),
        "heldout_clips": n_held,
        "heldout_hours": round(held_hours, 3),
        "engines": {},
    }
    for eng in engines:
        t0 = time.monotonic()
        hits = [len(eng.detect(x)) > 0 for _, x in positives]
        fa = len(merge(eng.detect(stream)))
        fa_held = len(merge(eng.detect(held_stream)))
        first20 = hits[:20]
        results["engines"][eng.name] = {
            "settings": eng.settings(),
            "detected": int(sum(hits)),
            "recall": round(sum(hits) / max(1, len(hits)), 4),
            "first20_detected": int(sum(first20)),
            "missed": [name for (name, _), h in zip(positives, hits) if not h],
            "false_accepts": fa,
            "fa_per_hour": round(fa / hours, 3) if hours else None,
            "heldout_false_accepts": fa_held,
            "heldout_fa_per_hour": round(fa_held / held_hours, 3) if held_hours else None,
            "seconds": round(time.monotonic() - t0, 1),
        }
        log(f"{eng.name}: done in {time.monotonic() - t0:.0f} s")
    return results


def table(results: dict) -> str:
    """Markdown table of one run."""
    snr = "clean" if results["snr_db"] is None else f"{results['snr_db']:g} dB SNR"
    lines = [
        f"Dev split, {snr}: {results['positives']} positives, {results['negative_clips']} "
        f"negative clips ({results['negative_hours']:.2f} h); held-out negatives "
        f"{results['heldout_clips']} clips ({results['heldout_hours']:.2f} h).",
        "",
        "| engine | settings | recall | first 20 | false accepts (FA/h) | held-out FA (FA/h) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["engines"].items():
        lines.append(
            f"| {name} | {r['settings']} | {100 * r['recall']:.1f} % "
            f"({r['detected']}/{results['positives']}) | {r['first20_detected']}/20 | "
            f"{r['false_accepts']} ({r['fa_per_hour']:.2f}) | {r['heldout_false_accepts']} "
            f"({r['heldout_fa_per_hour']:.2f}) |"
        )
    return "\n".join(lines)


def write_card(card: Path, blocks: list[str]) -> None:
    """Replace the marked block of ``card`` with ``blocks``; ValueError if the markers are
    missing."""
    text = card.read_text()
    if CARD_BEGIN not in text or CARD_END not in text:
        raise ValueError(f"{card}: markers {CARD_BEGIN} / {CARD_END} not found")
    head, rest = text.split(CARD_BEGIN, 1)
    _, tail = rest.split(CARD_END, 1)
    body = "\n\n".join(blocks)
    card.write_text(f"{head}{CARD_BEGIN}\n{body}\n{CARD_END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/alexa", help="Earshot model package folder")
    ap.add_argument("--snr", type=float, action="append",
                    help="also run with seeded noise at this SNR in dB (repeatable)")
    ap.add_argument("--clean", action="store_true", help="with --snr: also run clean")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--card", type=Path, help="write the tables into this model card")
    ap.add_argument("--limit-negatives", type=int, help="use only the first N negatives (quick)")
    args = ap.parse_args(argv)
    snrs = args.snr or [None]
    if args.snr and args.clean:
        snrs = [None] + snrs
    log = (lambda m: print(m, file=sys.stderr))
    try:
        runs = [run(args.model, s, args.limit_negatives, log) for s in snrs]
    except (ValueError, FileNotFoundError) as exc:
        print(f"accuracy: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(runs, indent=2))
    else:
        print("\n\n".join(table(r) for r in runs))
    if args.card:
        if args.limit_negatives:
            print("accuracy: not writing a card from a --limit-negatives run", file=sys.stderr)
            return 2
        write_card(args.card, [table(r) for r in runs])
    return 0


if __name__ == "__main__":
    sys.exit(main())
