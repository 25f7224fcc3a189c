"""Synthetic speech for training: rendered, filtered and cached data sets.

The pieces live by job: :mod:`earshot.train.tts` (the engines and :func:`render`),
:mod:`earshot.train.specs` (what is said, in which voice, drawn from a seed) and
:mod:`earshot.train.augmentation` (rooms, noise, levels). This module adds the sanity filter
of synthetic positives (:func:`check_positive`) and the cached batch rendering
(:func:`generate`; its cache key also names the voice tables and extra voice packages a
chunk uses, :func:`earshot.train.voices.cache_key_extra`), and re-exports the names of those
three modules, so ``synth.render``, ``synth.positive_specs`` or ``synth.augment`` keep working
for evaluation and benchmarks.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress

from earshot.core import SAMPLE_RATE_HZ
from earshot.train.augmentation import (
    HF_SHELF,
    NOISE_ALPHA,
    PEAK_DBFS,
    ROOM_DIM_M,
    ROOM_DISTANCE_M,
    ROOM_RT60_S,
    ROOM_WALL_M,
    add_broadband_noise,
    augment,
    babble,
    check_hf_shelf,
    check_noise_alpha,
    check_peak_dbfs,
    colored_noise,
    exp_rir,
    high_shelf_sos,
    hum,
    room_rirs,
)
from earshot.train.specs import (
    ALEXA_SPELLINGS,
    CONFUSABLE_FRACTION,
    CONFUSABLES,
    ENGINE_WEIGHTS,
    FORTUNES_DIR,
    FORTUNES_SKIP,
    PASSAGE_CHARS,
    PASSAGE_ENGINE_WEIGHTS,
    PREFIXES,
    SENTENCES,
    SUFFIXES,
    negative_specs,
    passage_specs,
    passage_texts,
    positive_specs,
)
from earshot.train.tts import (
    CPU_ISA_FLAGS,
    ESPEAK_VARIANTS,
    ESPEAK_VOICES,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    KOKORO_RATE_HZ,
    KOKORO_VOICES,
    SYNTH_DEBS,
    SYNTH_DISTS,
    SynthError,
    cpu_info,
    kokoro_model_path,
    render,
    stack_versions,
    trim,
)
from earshot.train.voices import TablesMissing, cache_key_extra

__all__ = [
    "ALEXA_SPELLINGS", "CHUNK", "CONFUSABLES", "CONFUSABLE_FRACTION", "CPU_ISA_FLAGS",
    "ENGINE_WEIGHTS", "ESPEAK_VARIANTS", "ESPEAK_VOICES", "FESTIVAL_VOICES", "FLITE_VOICES",
    "FORTUNES_DIR", "FORTUNES_SKIP", "HF_SHELF", "KOKORO_RATE_HZ", "KOKORO_VOICES", "MAX_WORD_MS",
    "MIN_WORD_MS", "MWW_MIN_POSITIVE", "NOISE_ALPHA", "PASSAGE_CHARS", "PASSAGE_ENGINE_WEIGHTS",
    "PEAK_DBFS", "PREFIXES", "ROOM_DIM_M", "ROOM_DISTANCE_M", "ROOM_RT60_S", "ROOM_WALL_M",
    "SENTENCES", "SUFFIXES", "SYNTH_DEBS", "SYNTH_DISTS", "SynthError", "add_broadband_noise",
    "augment", "babble", "check_hf_shelf", "check_noise_alpha", "check_peak_dbfs",
    "check_positive", "colored_noise", "cpu_info", "exp_rir", "generate", "high_shelf_sos", "hum",
    "load_cache", "mww_probabilities", "mww_score", "negative_specs", "passage_specs",
    "passage_texts", "positive_specs", "render", "room_rirs", "stack_versions", "trim",
]  # fmt: skip

# --- sanity filter ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mww_alexa():
    """microWakeWord's built-in alexa model, loaded once per process."""
    # pymicro-wakeword is optional (the ``peers`` extra): imported where the filter runs
    from pymicro_wakeword import MicroWakeWord, Model

    return MicroWakeWord.from_builtin(Model.ALEXA)


def mww_probabilities(samples: np.ndarray) -> np.ndarray:
    """microWakeWord alexa (pymicro-wakeword 2.5.0) smoothed probabilities, float (n_steps,),
    one per 30 ms model step: the mean of the last 5 raw probabilities (its default window), 0
    until the window is full. ``samples`` int16 mono 16 kHz."""
    from pymicro_wakeword import MicroWakeWordFeatures  # optional, see _mww_alexa

    model = _mww_alexa()
    model.reset()
    out = []
    feats = MicroWakeWordFeatures().process_streaming(np.asarray(samples, np.int16).tobytes())
    for k, feat in enumerate(feats):
        p = model.process_streaming_prob(feat)
        if (k + 1) % model.stride == 0:  # the model ran on this feature (stride 3 = 30 ms)
            out.append(float(p))
    return np.asarray(out, np.float32)


def mww_score(samples: np.ndarray) -> float:
    """Highest microWakeWord alexa probability over ``samples`` (int16, 16 kHz), padded with
    1 s of silence each side."""
    pad = np.zeros(SAMPLE_RATE_HZ, np.int16)
    probs = mww_probabilities(np.concatenate([pad, np.asarray(samples, np.int16), pad]))
    return float(probs.max()) if len(probs) else 0.0


#: Minimum microWakeWord probability for a synthetic "alexa" to be kept.
MWW_MIN_POSITIVE = 0.5
MIN_WORD_MS = 250
MAX_WORD_MS = 1500


def check_positive(samples: np.ndarray, end: int, use_mww: bool = True) -> str | None:
    """Return why a synthetic positive is broken, or None when it is usable.

    Checks: not silent, clipped or cut; the wake word part (``samples[:end]``, prefix included)
    lasts MIN_WORD_MS..MAX_WORD_MS plus the prefix; and, for "alexa", that microWakeWord's model
    accepts it (max probability >= MWW_MIN_POSITIVE) when ``use_mww``.
    """
    x = np.asarray(samples, np.int16)
    if len(x) == 0 or end <= 0 or end > len(x):
        return f"bad end {end} for {len(x)} samples"
    peak = int(np.max(np.abs(x.astype(np.int32))))
    if peak < 1000:
        return f"silent (peak {peak})"
    if np.mean(np.abs(x.astype(np.int32)) >= 32767) > 0.01:
        return "clipped"
    word = trim(x[:end].astype(np.float32) / 32768.0)
    ms = 1000 * len(word) / SAMPLE_RATE_HZ
    if ms < MIN_WORD_MS:
        return f"too short ({ms:.0f} ms)"
    if ms > MAX_WORD_MS + 1200:
        return f"too long ({ms:.0f} ms)"
    if use_mww:
        score = mww_score(x[:end])
        if score < MWW_MIN_POSITIVE:
            return f"microWakeWord rejects it ({score:.2f})"
    return None


# --- batch generation -------------------------------------------------------------------------


def _render_job(job: tuple[int, dict, bool]) -> tuple[int, np.ndarray | None, int, str | None]:
    """One worker's job ``(index, spec, check)``: (index, int16 samples or None when dropped,
    end, why it was dropped or None)."""
    i, spec, check = job
    try:
        x, end = render(spec)
    except TablesMissing:
        raise  # not this clip's fault: every clip of the config would be dropped
    except SynthError as exc:
        return i, None, 0, str(exc)
    # microWakeWord's model only knows "alexa": other phrases get the phrase-independent
    # checks (level, clipping, duration) alone.
    use_mww = spec["text"].strip(" !?.,").lower() == "alexa"
    why = check_positive(x, end, use_mww=use_mww) if check else None
    return i, (None if why else x), end, why


#: Specs per cache file: growing a data set re-renders only the new chunks.
CHUNK = 500


def generate(
    specs: list[dict],
    prefix: Path,
    check: bool,
    workers: int = 1,
    progress: str = "synth",
    log=None,
) -> dict:
    """Render ``specs`` into cache files ``<prefix>-c<k>.npz`` of CHUNK specs each, reusing
    every chunk file that already holds the same specs rendered by the same engines
    (:func:`stack_versions`; a chunk from other versions is rendered again).

    ``check``: apply :func:`check_positive` and drop failures. Returns ``{"audio": list of
    int16 arrays, "end": int array, "specs": list of kept specs, "dropped": list of (spec,
    reason)}``. ``workers`` processes render in parallel; results do not depend on it.
    ``log(message)`` is told about each chunk rendered.
    """
    prefix = Path(prefix)
    versions = stack_versions()
    parts = []
    for k in range(0, len(specs), CHUNK):
        out = prefix.with_name(f"{prefix.name}-c{k // CHUNK:03d}.npz")
        t0 = time.monotonic()
        parts.append(_generate_chunk(specs[k : k + CHUNK], out, check, versions, workers,
                                     progress, log))
        if log is not None and parts[-1].get("rendered"):
            log(f"{out.name}: rendered {min(CHUNK, len(specs) - k)} clips in "
                f"{time.monotonic() - t0:.0f} s")
    return {
        "audio": [a for p in parts for a in p["audio"]],
        "end": np.concatenate([p["end"] for p in parts]) if parts else np.zeros(0, np.int64),
        "specs": [s for p in parts for s in p["specs"]],
        "dropped": [d for p in parts for d in p["dropped"]],
    }


def _generate_chunk(specs: list[dict], out: Path, check: bool, versions: dict, workers: int,
                    progress: str, log=None):
    """One chunk of :func:`generate`: its cache file ``out`` when the key (specs, check,
    engine versions) matches, else rendered (``workers`` processes, a ``progress`` bar on a
    terminal; elsewhere ``log`` is told at every tenth) and written there through a temporary
    file. Returns the :func:`load_cache` dict, with ``rendered`` True when it was
    rendered."""
    out = Path(out)
    key = {"specs": specs, "check": check, "versions": versions}
    extra = cache_key_extra(specs)  # empty for the voices of earlier versions: their keys
    if extra:
        key["voices"] = extra
    key = json.dumps(key, sort_keys=True)
    if out.exists():
        cached = load_cache(out)
        if cached["key"] == key:
            return cached
    results: list = [None] * len(specs)
    jobs = [(i, s, check) for i, s in enumerate(specs)]
    # on stderr: stdout is the command's result (a bar ending off a terminal prints a newline)
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(progress, total=len(jobs))
        lines = log is not None and not bar.console.is_terminal  # no bar: a line a tenth
        step, done = max(1, len(jobs) // 10), [0]

        def advance():
            bar.advance(task)
            done[0] += 1
            if lines and (done[0] % step == 0 or done[0] == len(jobs)):
                log(f"{progress}: {done[0]}/{len(jobs)} rendered")

        if workers > 1:
            if any(s["engine"] == "kokoro" for s in specs):
                kokoro_model_path()  # before the workers, which would race to assemble it
            with mp.get_context("spawn").Pool(workers) as pool:
                for r in pool.imap_unordered(_render_job, jobs, chunksize=4):
                    results[r[0]] = r
                    advance()
        else:
            for job in jobs:
                r = _render_job(job)
                results[r[0]] = r
                advance()
    kept = [r for r in results if r[1] is not None]
    dropped = [(specs[r[0]], r[3]) for r in results if r[1] is None]
    audio = [r[1] for r in kept]
    out.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(a) for a in audio]).astype(np.int64)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        key=np.array(key),
        audio=np.concatenate(audio) if audio else np.zeros(0, np.int16),
        offsets=offsets,
        end=np.array([r[2] for r in kept], np.int64),
        specs=np.array(json.dumps([specs[r[0]] for r in kept])),
        dropped=np.array(json.dumps(dropped)),
    )
    os.replace(tmp, out)
    return dict(load_cache(out), rendered=True)


def load_cache(path: Path) -> dict:
    """Read a cache written by :func:`generate` (see there for the keys)."""
    with np.load(path) as z:
        offsets = z["offsets"]
        audio = z["audio"]
        return {
            "key": str(z["key"]),
            "audio": [audio[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)],
            "end": z["end"],
            "specs": json.loads(str(z["specs"])),
            "dropped": json.loads(str(z["dropped"])),
        }
