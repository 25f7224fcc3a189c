"""Long-form false accepts: Earshot vs microWakeWord's "alexa" on read speech by held-out voices.

The stream: passages of English prose that training never reads (the held-out part of
``earshot.train.texts``: fortunes, man pages, Debian documents; no passage names the wake word
or a confusable), each read by a held-out voice (``earshot.train.voices``: blends of 2-3 of the
held-out English Kokoro tables, or an espeak-ng accent with a held-out variant, half each; a
model trained with ``synth.pool: "train"`` never heard them, and the shipped alexa model never
heard any English Kokoro table), with speed, rate and pitch drawn per passage. Passage ``i`` is
drawn from ``default_rng([seed, 40, i])`` and reads held-out text number ``i`` of a seeded
permutation (no text repeats before all were read). Passages are rendered in blocks of BLOCK,
cached under ``build/longform/`` (keyed like the training cache: specs, engine versions, voice
tables), and joined per block with 0.5 s gaps into clean streams, until ``--hours`` is reached.

Both engines run on the same blocks in the same run, each block from a fresh state: Earshot
through ``earshot.core.Detector`` with the model package's own cutoff, window and refractory
(VAD on), microWakeWord's alexa through ``pymicro-wakeword`` streaming at its defaults (cutoff
0.9, window 5), as ``earshot.evaluate`` runs them; detections within 1.5 s are one false
accept. Every rate has an exact 95 % Poisson confidence interval (Garwood 1936: chi-square
quantiles of 2k and 2k + 2 degrees of freedom, halved, over the hours).

Rendering speed, measured on this 2-core machine with 2 workers (Kokoro-82M int8 on
onnxruntime renders about 2x real time on one core, espeak-ng about 170x): 568 s of wall time
per hour of audio with the machine otherwise idle (block 0: 158 s for 16.7 min), 1,069 s per
hour while another benchmark kept one core busy (blocks 1-3: 979 s for 55 min). So 10 h take
about 1.6 h once (up to 3 h on a shared machine); each detector then needs about 9 s per hour.
A cached block is read, not rendered.

    python bench/longform.py [--hours 10] [--model models/alexa] [--workers 2] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from earshot.audio import SAMPLE_RATE_HZ
from earshot.evaluate import GAP_S, Earshot, MicroWakeWord, merge
from earshot.paths import BUILD
from earshot.train import specs, synth, texts, voices

#: Passages per cached block (one cache file each, about 15-20 minutes of audio).
BLOCK = 100
#: The random stream of the bench's specs (training's passages use 3).
STREAM = 40
#: Engine mix of the held-out readers.
ENGINE_WEIGHTS = {"espeak": 0.5, "kokoro": 0.5}
VOICES = voices.VoiceSet(kokoro="en", pool="heldout", passage_engine_weights=ENGINE_WEIGHTS)
TEXT_SOURCES = ("fortunes", "man", "doc")


def poisson_ci(k: int, hours: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) confidence interval of a rate (1/h) from ``k`` events in ``hours``
    hours: (lo, hi), lo 0 for k 0. Raises ValueError for hours <= 0."""
    from scipy.stats import chi2

    if hours <= 0:
        raise ValueError(f"poisson_ci: hours must be > 0, got {hours}")
    a = 1 - level
    lo = 0.0 if k == 0 else chi2.ppf(a / 2, 2 * k) / 2
    hi = chi2.ppf(1 - a / 2, 2 * k + 2) / 2
    return lo / hours, hi / hours


def bench_specs(start: int, n: int, seed: int, wake_word: str = "alexa") -> list[dict]:
    """Specs ``start`` .. ``start + n - 1`` of the bench stream: voices of VOICES, text
    number ``i`` of the held-out texts in the permutation of ``default_rng([seed, 41])``."""
    pool = texts.passage_pool(TEXT_SOURCES, wake_word, "heldout")
    order = np.random.default_rng([seed, 41]).permutation(len(pool))
    out = specs.passage_specs(start + n, seed, wake_word, VOICES, pool, stream=STREAM)[start:]
    for i, spec in enumerate(out, start):
        spec["text"] = pool[order[i % len(pool)]]
    return out


def render_blocks(hours: float, seed: int, workers: int, cache: Path, log) -> dict:
    """Blocks of BLOCK passages, rendered or read from ``cache``, until their audio (with
    gaps) reaches ``hours``. Returns {"streams": int16 stream per block, "lengths": samples
    of each passage with its gap, per block, "specs": kept specs per block,
    "render_seconds": wall time of the blocks rendered now, "rendered_hours": their hours}.
    Raises what :func:`earshot.train.synth.generate` raises (TablesMissing without the
    English tables)."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), np.int16)
    out = {"streams": [], "lengths": [], "specs": [], "render_seconds": 0.0,
           "rendered_hours": 0.0}
    total, b = 0.0, 0
    while total < hours:
        t0, rendered = time.monotonic(), []
        got = synth.generate(bench_specs(b * BLOCK, BLOCK, seed), cache / f"s{seed}-b{b:04d}",
                             check=False, workers=workers, progress=f"block {b}",
                             log=rendered.append)
        if not got["audio"]:
            raise RuntimeError(f"block {b}: no passage rendered ({got['dropped'][:1]})")
        stream = np.concatenate([np.concatenate([a, gap]) for a in got["audio"]])
        block_h = len(stream) / SAMPLE_RATE_HZ / 3600
        if rendered:
            out["render_seconds"] += time.monotonic() - t0
            out["rendered_hours"] += block_h
        out["streams"].append(stream)
        out["lengths"].append([len(a) + len(gap) for a in got["audio"]])
        out["specs"].append(got["specs"])
        total += block_h
        log(f"block {b}: {len(got['audio'])} passages, {block_h * 60:.1f} min, "
            f"{'rendered' if rendered else 'cached'} ({time.monotonic() - t0:.0f} s); "
            f"{total:.2f} of {hours:g} h")
        b += 1
    return out


def false_accepts(engine, blocks: dict) -> list[dict]:
    """Merged detections of ``engine`` over each block stream of :func:`render_blocks`
    (fresh state per block): a list of {"block", "time_s", "voice", "text"}, the voice
    (:func:`earshot.train.voices.voice_id`) and text of the passage then being read."""
    out = []
    for b, (stream, lengths, sp) in enumerate(zip(blocks["streams"], blocks["lengths"],
                                                  blocks["specs"])):
        ends = np.cumsum(lengths) / SAMPLE_RATE_HZ
        for t in merge(engine.detect(stream)):
            k = min(int(np.searchsorted(ends, t)), len(sp) - 1)
            out.append({"block": b, "time_s": round(t, 2), "voice": voices.voice_id(sp[k]),
                        "text": sp[k]["text"]})
    return out


def run(hours: float, model_dir, seed: int = 1, workers: int = 2, cache: Path | None = None,
        log=print) -> dict:
    """Render (or read) ``hours`` of the bench stream and count both engines' false accepts;
    returns the JSON-able results (see :func:`main`'s keys)."""
    cache = Path(cache or BUILD / "longform")
    blocks = render_blocks(hours, seed, workers, cache, log)
    total_h = sum(len(s) for s in blocks["streams"]) / SAMPLE_RATE_HZ / 3600
    all_specs = [s for sp in blocks["specs"] for s in sp]
    res = {"hours": round(total_h, 4), "voices": voices.count_voices(all_specs),
           "passages": len(all_specs), "seed": seed, "model": str(model_dir),
           "render_seconds": round(blocks["render_seconds"], 1),
           "render_seconds_per_hour": (round(blocks["render_seconds"] / blocks["rendered_hours"])
                                       if blocks["rendered_hours"] else None)}
    for key, engine in (("earshot", Earshot(model_dir)), ("mww", MicroWakeWord())):
        t0 = time.monotonic()
        fas = false_accepts(engine, blocks)
        lo, hi = poisson_ci(len(fas), total_h)
        res |= {f"{key}_settings": engine.settings(), f"{key}_false_accepts": len(fas),
                f"{key}_fa_per_hour": round(len(fas) / total_h, 3),
                f"{key}_fa_per_hour_ci95": [round(lo, 3), round(hi, 3)],
                f"{key}_seconds": round(time.monotonic() - t0, 1), f"{key}_details": fas}
        log(f"{key}: {len(fas)} false accepts ({time.monotonic() - t0:.0f} s)")
    return res


def table(r: dict) -> str:
    """Markdown table of one run."""
    lines = [f"Long-form read speech by held-out voices: {r['hours']:.2f} h, {r['passages']} "
             f"passages, {r['voices']} distinct voices (seed {r['seed']}).", "",
             "| engine | settings | false accepts | FA/h | 95 % CI (FA/h) |",
             "|---|---|---|---|---|"]
    for key, name in (("earshot", "Earshot"), ("mww", "microWakeWord")):
        lo, hi = r[f"{key}_fa_per_hour_ci95"]
        lines.append(f"| {name} | {r[f'{key}_settings']} | {r[f'{key}_false_accepts']} | "
                     f"{r[f'{key}_fa_per_hour']:.2f} | {lo:.2f}-{hi:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the bench; print a table or (``--json``) the results: hours, voices, passages,
    seed, model, render_seconds, render_seconds_per_hour (None when all was cached), and per
    engine (``earshot``, ``mww``) ``_settings``, ``_false_accepts``, ``_fa_per_hour``,
    ``_fa_per_hour_ci95`` ([lo, hi], 1/h), ``_seconds`` and ``_details`` (each false
    accept's block, time, voice and text). Exit 2 for missing voice tables or model."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=10.0, help="stream length (h, default 10)")
    ap.add_argument("--model", default="models/alexa", help="Earshot model package folder")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    ap.add_argument("--seed", type=int, default=1, help="seed of voices and texts (default 1)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    if args.hours <= 0:
        ap.error("--hours must be > 0")
    log = (lambda m: print(m, file=sys.stderr))
    try:
        res = run(args.hours, args.model, args.seed, args.workers, log=log)
    except (voices.TablesMissing, FileNotFoundError, ValueError) as exc:
        print(f"longform: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=2) if args.json else table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
