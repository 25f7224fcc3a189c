"""Accuracy evaluation: Earshot and microWakeWord's "alexa" on the same audio, same run.

Method (shared ``data/README.md``, also used by ``bench/accuracy.py``):

- each positive clip is padded with ``PAD_S`` = 1 s of silence on both sides and run on its own
  (a fresh detector); it counts as detected when at least one detection fires;
- all negative clips, resampled to 16 kHz, are sorted, shuffled with ``random.Random(0)`` and
  joined with ``GAP_S`` = 0.5 s of silence into one stream; detections closer than ``MERGE_S`` =
  1.5 s are merged into one false accept; FA/h = false accepts / stream hours;
- ``snr_db``: seeded white Gaussian noise (``numpy.random.default_rng(1)``) at that SNR relative
  to each clip's own RMS (pads and gaps included in the noise), identical for both engines.

The negative stream is never held whole: :class:`NegativeStream` yields it in blocks of at most
``BLOCK_S`` s, drawing the same noise in the same order as the stream built in memory would,
and :func:`scan_negatives` feeds each block to every engine in one pass, each engine keeping
its streaming state (and a partial hop) from block to block. Memory is bounded by a block,
the positives and the detections, whatever the hours of negatives; the results equal those of
the whole stream at once (tests/test_eval.py).

Real positives of the wake word that a model may have trained on (config ``real_positives``)
are grouped into speaker folds (:mod:`earshot.train.dataset`); its manifest records which folds
it trained and validated on. :func:`fold_positives` gives the clips of the folds it never
used, and a measurement that would include a used fold raises :class:`UsedFolds`. Rates come
with 95 % intervals: Wilson's for recall (:func:`wilson`), the exact Poisson one for FA/h
(:func:`poisson_rate`).

Undecodable files are reported and skipped, never fatal. The engines (:mod:`earshot.engines`,
re-exported here): Earshot runs through the C core
(:class:`earshot.core.Detector`, VAD gate on, the model's cutoff/window/refractory).
microWakeWord runs through ``pymicro-wakeword`` 2.5.0 with its defaults (cutoff 0.9, window 5):
each 30 ms step whose window mean exceeds the cutoff is a detection, merged as above.

The DET curve (:func:`det_curve`) sweeps the cutoff: FRR (1 - recall, fraction) against FA/h,
measured the same way at each cutoff (Earshot: one detector per cutoff; microWakeWord: its
smoothed probabilities thresholded at each cutoff).
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import numpy as np

from earshot import audio
from earshot.audio import SAMPLE_RATE_HZ
from earshot.core.constants import HOP_S  # noqa: F401 (one feature hop, s; benches import it)
from earshot.engines import (  # noqa: F401 (the engines; benches import them from here)
    MWW_CUTOFF,
    MWW_STEP_S,
    MWW_WINDOW,
    Earshot,
    MicroWakeWord,
    scan_negatives,
)
from earshot.train import dataset

MERGE_S = 1.5
PAD_S = 1.0
GAP_S = 0.5
SHUFFLE_SEED = 0
NOISE_SEED = 1
#: Cutoffs of the DET sweep (probability, both engines).
DET_CUTOFFS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98)
#: Longest block of the negative stream, s of audio (60 s: 1.9 MB of int16 at 16 kHz).
BLOCK_S = 60.0


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
    return _mix(x, np.sqrt(np.mean(xf**2)) + 1e-9, snr_db, rng)


def _mix(x: np.ndarray, rms: float, snr_db: float | None, rng) -> np.ndarray:
    """int16 ``x`` plus ``len(x)`` draws of white Gaussian noise from ``rng`` at ``snr_db``
    below ``rms`` (int16 units), rounded and saturated to int16; ``x`` itself for None.
    Elementwise, so noising a clip piece by piece in order equals noising it whole."""
    if snr_db is None:
        return x
    noisy = x.astype(np.float64) + rng.standard_normal(len(x)) * rms / 10 ** (snr_db / 20)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def pad(x: np.ndarray, seconds: float) -> np.ndarray:
    """int16 ``x`` with ``seconds`` of digital silence on both sides."""
    z = np.zeros(int(seconds * SAMPLE_RATE_HZ), np.int16)
    return np.concatenate([z, x, z])


def load_positives(paths, snr_db, rng, log=print):
    """Positive clips ready to run: (list of (file name, int16 padded and noised clip),
    list of unreadable file names). Each unreadable file is reported through ``log``."""
    positives, failed = [], []
    for p in paths:
        clips, bad = dataset.load_clips([p])
        if bad:
            failed.append(Path(p).name)
            log(f"skipped {Path(p).name}: {bad[0][1]}")
            continue
        positives.append((Path(p).name, add_noise(pad(clips[0], PAD_S), snr_db, rng)))
    return positives, failed


class NegativeStream:
    """The negative stream as int16 blocks at 16 kHz, read once: ``paths`` sorted and
    shuffled (``random.Random(SHUFFLE_SEED)``), each readable clip followed by ``GAP_S`` s of
    silence and, with ``snr_db`` (dB), noised at its own RMS (gap included) with draws from
    ``rng``, clip after clip: the same samples, bit for bit, as the whole stream built in
    memory (:func:`negative_stream`), and ``rng`` left in the same state.

    Blocks hold at most ``block_s`` s of audio (None: one block per clip, read whole with
    :func:`earshot.audio.load`). A file longer than ``block_s`` is read twice in blocks
    (:func:`earshot.audio.blocks`, bit-exact with ``load``): first to check that it decodes
    to its end and to sum its squares (exact, in integers), then to yield it; its RMS equals
    the in-memory one whenever that float sum is exact (a sum of squares under 2**53: any
    clip under 8.7 min, hours of ordinary speech). Unreadable files (AudioError) are skipped
    whole and reported through ``log`` ("skipped ..."), as :func:`dataset.load_clips` does.

    ``clips``, ``failed`` (files), ``samples`` (16 kHz) and :attr:`hours` count what has
    been yielded: complete when the iteration ends. Iterating a second time raises
    RuntimeError (the noise is drawn from ``rng``); a file that stops decoding between its
    two reads raises its AudioError.
    """

    def __init__(self, paths, snr_db, rng, log=None, block_s: float | None = BLOCK_S):
        self.paths = sorted(paths)
        random.Random(SHUFFLE_SEED).shuffle(self.paths)
        if block_s is not None and not block_s > 0:
            raise ValueError(f"block_s must be > 0 s or None, got {block_s}")
        self.snr_db, self.rng, self.log, self.block_s = snr_db, rng, log, block_s
        self.clips = self.failed = self.samples = 0
        self._read = False

    @property
    def hours(self) -> float:
        """Hours of audio yielded so far (all of the stream once the iteration ended)."""
        return self.samples / SAMPLE_RATE_HZ / 3600

    def __iter__(self):
        if self._read:
            raise RuntimeError("a NegativeStream is read once (its noise comes from rng)")
        self._read = True
        most = None if self.block_s is None else max(1, round(self.block_s * SAMPLE_RATE_HZ))
        for path in self.paths:
            parts = self._clip(path)
            if parts is None:
                continue
            self.clips += 1
            for part in parts:
                step = most or max(len(part), 1)
                for a in range(0, len(part), step):
                    self.samples += len(part[a : a + step])
                    yield part[a : a + step]

    def _clip(self, path):
        """The clip at ``path`` and its gap, noised, as an iterable of int16 arrays; None
        (counted and reported) when it does not decode."""
        gap = np.zeros(int(GAP_S * SAMPLE_RATE_HZ), np.int16)
        try:
            if self.block_s is None:
                whole = audio.load(path)
            else:
                blocks = audio.blocks(path, block_s=self.block_s)
                whole, second = next(blocks), next(blocks, None)
                if second is not None:  # a long file: check it to the end, sum its squares
                    n, sumsq = 0, 0
                    for b in itertools.chain([whole, second], blocks):
                        n, sumsq = n + len(b), sumsq + int(np.dot(b, b.astype(np.int64)))
                    del whole, second
                    rms = np.sqrt(np.float64(sumsq) / (n + len(gap))) + 1e-9
                    return self._long(path, gap, rms)
        except audio.AudioError as exc:
            self.failed += 1
            if self.log is not None:
                self.log(f"skipped {exc}")
            return None
        return [add_noise(np.concatenate([whole, gap]), self.snr_db, self.rng)]

    def _long(self, path, gap, rms):
        """The blocks of a long file, then its gap, noised at ``rms`` (its RMS, gap included)."""
        for b in audio.blocks(path, block_s=self.block_s):
            yield _mix(b, rms, self.snr_db, self.rng)
        yield _mix(gap, rms, self.snr_db, self.rng)


def negative_stream(paths, snr_db, rng, log=None) -> tuple[np.ndarray, int, int]:
    """The whole :class:`NegativeStream` in memory: (int16 stream, clips used, failed). For
    benches that keep the stream; memory grows with its length (115 MB per hour at 16 kHz)."""
    stream = NegativeStream(paths, snr_db, rng, log, block_s=None)
    parts = list(stream)
    whole = np.concatenate(parts) if parts else np.zeros(0, np.int16)
    return whole, stream.clips, stream.failed


# --- speaker folds of the real positives ------------------------------------------------------


class UsedFolds(ValueError):
    """A dev-split measurement would include clips of folds the model trained or validated on."""


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (fractions) of a proportion ``k`` of ``n``, at ``z`` standard
    errors (1.96: 95 %); (0.0, 1.0) for n = 0. E. B. Wilson, "Probable inference, the law of
    succession, and statistical inference", JASA 22, 1927."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(mid - half)), min(1.0, float(mid + half))


def poisson_rate(k: int, hours: float, conf: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate, per hour, for ``k`` events in ``hours``:
    chi-square quantiles; the lower end is 0 for k = 0. Raises ValueError for hours <= 0."""
    from scipy.stats import chi2

    if hours <= 0:
        raise ValueError("poisson_rate: hours must be > 0")
    a = (1 - conf) / 2
    lo = chi2.ppf(a, 2 * k) / 2 if k > 0 else 0.0
    return float(lo / hours), float(chi2.ppf(1 - a, 2 * k + 2) / 2 / hours)


def _fold_folder(source: str) -> Path:
    """The folder a manifest's ``real_positives.source`` names: absolute, or relative to the
    data folder (:func:`earshot.paths.data_dir`)."""
    p = Path(source)
    return p if p.is_absolute() else dataset.data_dir() / p


def _touched(folder: Path, used: set, groups) -> set:
    """File names (relative to ``folder``) of every speaker group holding a ``used`` name."""
    out = set()
    for g in groups:
        names = {p.resolve().relative_to(folder.resolve()).as_posix() for p in g}
        if names & used:
            out |= names
    return out


def fold_positives(manifest: dict, folds="test") -> tuple[list[Path], dict]:
    """The real positives of a model's speaker folds that it may be reported on, and what was
    chosen. ``folds``: "test" (every fold the model neither trained nor validated on), "all",
    or fold indices (ints, or a string such as "3,4").

    With ``training.real_positives`` in ``manifest`` (:func:`earshot.train.dataset.fold_record`)
    the folds and their files are the recorded ones; every file that shares a speaker group
    (today's :func:`earshot.train.dataset.speakers`) with a used file is left out as well.
    Without it the model never read real positives: the folds are those of the development
    clips of its wake word (``dataset.DEFAULT_FOLDS``), all unused, and ``recorded`` is False
    (selection done with the dev split in view is not recorded anywhere).

    Returns (paths in fold order, info: ``source``, ``folds`` (k), ``selected``,
    ``train_folds``, ``validation_folds``, ``unused_folds``, ``recorded``, ``left_out``
    (files left out for sharing a speaker with a used file)). Raises :class:`UsedFolds` when
    the selection holds a trained or validated fold, ValueError for an unknown selection,
    FileNotFoundError / DataMissing when the clips are missing."""
    rec = manifest.get("training", {}).get("real_positives")
    if rec is None:
        folder, source = dataset.source_name(None, None, manifest["wake_word"])
        groups = dataset.dev_speakers(None, manifest["wake_word"])
        fold_paths = dataset.speaker_folds(groups, dataset.DEFAULT_FOLDS)
        rec = {"source": source, "folds": len(fold_paths), "train_folds": [],
               "validation_folds": [], "unused_folds": list(range(len(fold_paths))),
               "fold_files": [[p.relative_to(folder).as_posix() for p in f]
                              for f in fold_paths]}
        recorded = False
    else:
        folder, recorded = _fold_folder(rec["source"]), True
    k, used_folds = rec["folds"], set(rec["train_folds"]) | set(rec["validation_folds"])
    if folds == "test":
        selected = list(rec["unused_folds"])
    elif folds == "all":
        selected = list(range(k))
    else:
        items = folds.split(",") if isinstance(folds, str) else folds
        try:
            selected = sorted({int(f) for f in items})
        except ValueError:
            raise ValueError(f"folds: 'test', 'all' or fold indices, got {folds!r}") from None
        if any(not 0 <= f < k for f in selected):
            raise ValueError(f"folds: indices 0..{k - 1}, got {selected}")
    if set(selected) & used_folds:
        raise UsedFolds(
            f"folds {sorted(set(selected) & used_folds)} were trained on "
            f"({rec['train_folds']}) or validated on ({rec['validation_folds']}): a number "
            f"on them says nothing about unseen speakers; use the folds never used "
            f"({rec['unused_folds']}, --folds test)")
    used = {n for f in sorted(used_folds) for n in rec["fold_files"][f]}
    left_out = set()
    if used:
        source = None if rec["source"] == f"{dataset.WWB}/{manifest['wake_word']}" else folder
        left_out = _touched(folder, used, dataset.speakers(source, None, manifest["wake_word"]))
    names = [n for f in selected for n in rec["fold_files"][f] if n not in left_out]
    info = {"source": rec["source"], "folds": k, "selected": selected,
            "train_folds": rec["train_folds"], "validation_folds": rec["validation_folds"],
            "unused_folds": rec["unused_folds"], "recorded": recorded,
            "left_out": len([n for f in selected for n in rec["fold_files"][f]]) - len(names)}
    return [folder / n for n in names], info


def check_not_trained_on(manifest: dict, paths) -> None:
    """Raise :class:`UsedFolds` when any of ``paths`` is a file of a fold the model (its
    ``manifest``) trained or validated on; nothing without a fold record."""
    rec = manifest.get("training", {}).get("real_positives")
    if rec is None:
        return
    folder = _fold_folder(rec["source"]).resolve()
    used = {n for f in rec["train_folds"] + rec["validation_folds"] for n in rec["fold_files"][f]}
    hit = [p for p in paths if Path(p).resolve().is_relative_to(folder)
           and Path(p).resolve().relative_to(folder).as_posix() in used]
    if hit:
        raise UsedFolds(
            f"{len(hit)} positive files ({Path(hit[0]).name}, ...) belong to folds the model "
            f"trained or validated on ({rec['train_folds']}, {rec['validation_folds']} of "
            f"{rec['source']}): report on the unused folds with --folds test")


# --- evaluation -------------------------------------------------------------------------------


def dev_side_by_side(model_dir, folds="test") -> tuple[list, list, dict]:
    """The positives-only benches' setup (``bench/level.py``, ``bench/noise.py``): the two
    engines, ``[Earshot(model_dir), MicroWakeWord()]``, the development positives
    (``dataset.dev_positives``, in that order) of the speaker ``folds`` the model may be
    reported on (:func:`fold_positives`: "test" keeps only folds it neither trained nor
    validated on; a model that never read real positives keeps all of them) padded and clean,
    as :func:`load_positives` gives them (list of (file name, int16 (n,) at 16 kHz)), and the
    fold info. Raises what those raise (a missing data folder, a bad model, UsedFolds)."""
    engines = [Earshot(model_dir), MicroWakeWord()]
    chosen, info = fold_positives(engines[0].manifest, folds)
    keep = {p.resolve() for p in chosen}
    paths = [p for p in dataset.dev_positives(dataset.data_dir()) if p.resolve() in keep]
    pos, _ = load_positives(paths, None, np.random.default_rng(NOISE_SEED), log=lambda m: None)
    return engines, pos, info


def audio_files(folder) -> list[Path]:
    """Audio files (.wav, .flac) under ``folder``, sorted. Raises FileNotFoundError when the
    folder does not exist and ValueError when it holds no audio file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in dataset.AUDIO_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no audio files (.wav, .flac) found")
    return files


def evaluate(
    positives_dir,
    negatives_dir,
    model_dir,
    snr_db=None,
    det=False,
    cutoffs=DET_CUTOFFS,
    mww=True,
    log=print,
    folds=None,
    block_s: float | None = BLOCK_S,
) -> dict:
    """Measure Earshot (``model_dir``) and, when ``mww``, microWakeWord's alexa on the audio
    files under ``positives_dir`` and ``negatives_dir``; returns a JSON-able dict:

    ``snr_db`` (dB or None), ``positives`` (clips run), ``positives_unreadable`` (file names),
    ``negative_clips``, ``negative_unreadable`` (count), ``negative_hours`` (h), and per engine
    under ``engines``: ``settings``, ``cutoff`` (probability), ``detected`` (clips),
    ``recall`` (fraction, detected / positives), ``first20_detected`` (of the first 20
    positives), ``missed`` (file names), ``false_accepts``
    (merged detections in the stream), ``fa_per_hour`` (1/h), ``seconds`` (the engine's own
    processing time, s; reading the negatives is not counted); with
    ``det`` also ``det``: a list of ``{"cutoff", "frr", "fa_per_hour"}`` over ``cutoffs``;
    ``recall_ci`` and ``fa_per_hour_ci``: 95 % intervals (:func:`wilson`,
    :func:`poisson_rate`).

    The negatives are read once, in blocks of at most ``block_s`` s (:class:`NegativeStream`,
    None: a clip at a time, each whole), every engine fed each block (:func:`scan_negatives`):
    memory does not grow with their hours, and the results do not depend on ``block_s``.

    ``folds`` ("test", "all" or fold indices; :func:`fold_positives`): the positives are the
    development clips of those speaker folds of the model (``positives_dir`` is then unused)
    and the results get ``folds`` (what was chosen). Without it, positive files of folds the
    model trained or validated on are refused (:func:`check_not_trained_on`).

    Raises FileNotFoundError / ValueError for a missing folder, a folder without audio or with
    no readable clip; :class:`UsedFolds` (a ValueError) for clips the model trained or
    validated on.
    """
    neg_paths = audio_files(negatives_dir)
    engines = [Earshot(model_dir)] + ([MicroWakeWord()] if mww else [])
    fold_info = None
    if folds is not None:
        pos_paths, fold_info = fold_positives(engines[0].manifest, folds)
        positives_dir = fold_info["source"]
    else:
        pos_paths = audio_files(positives_dir)
        check_not_trained_on(engines[0].manifest, pos_paths)
    rng = np.random.default_rng(NOISE_SEED)
    positives, failed = load_positives(pos_paths, snr_db, rng, log)
    if not positives:
        raise ValueError(f"{positives_dir}: no readable audio file")
    stream = NegativeStream(neg_paths, snr_db, rng, log, block_s)
    negatives, spent = scan_negatives(engines, stream, [None] + (list(cutoffs) if det else []))
    if stream.clips == 0:
        raise ValueError(f"{negatives_dir}: no readable audio file")
    results = run_header(snr_db, positives, failed, stream.clips, stream.failed, stream.hours)
    if fold_info is not None:
        results["folds"] = fold_info
    for eng, times, seconds in zip(engines, negatives, spent):
        t0 = time.monotonic()
        r = measure(eng, positives, times[0], stream.hours)
        r["cutoff"] = float(eng.cutoff)
        if det:
            r["det"] = det_curve(eng, positives, times[1:], stream.hours, cutoffs)
        r["seconds"] = round(time.monotonic() - t0 + seconds, 1)
        results["engines"][eng.name] = r
        log(f"{eng.name}: done in {r['seconds']:.0f} s")
    return results


def run_header(snr_db, positives, failed, n_neg, n_neg_failed, hours, digits=4) -> dict:
    """The audio part of a results dict (see :func:`evaluate`), with an empty ``engines``;
    ``negative_hours`` rounded to ``digits``."""
    return {
        "snr_db": snr_db,
        "positives": len(positives),
        "positives_unreadable": failed,
        "negative_clips": n_neg,
        "negative_unreadable": n_neg_failed,
        "negative_hours": round(hours, digits),
        "engines": {},
    }


def measure(engine, positives, negative_times, hours: float) -> dict:
    """Recall on ``positives`` (list of (name, int16 samples), one detector run per clip) and
    false accepts among ``negative_times`` (s, the engine's detections at its own cutoff on
    the negative stream, :func:`scan_negatives`; those within MERGE_S merged) in ``hours``
    hours. Returns settings, detected, recall (0..1), recall_ci (95 %, :func:`wilson`),
    first20_detected, missed (names), false_accepts, fa_per_hour and fa_per_hour_ci (95 %,
    :func:`poisson_rate`; both None when ``hours`` is 0)."""
    hits = [len(engine.detect(x)) > 0 for _, x in positives]
    fa = len(merge(negative_times))
    return {
        "settings": engine.settings(),
        "detected": int(sum(hits)),
        "recall": round(sum(hits) / max(1, len(hits)), 4),
        "recall_ci": [round(v, 4) for v in wilson(int(sum(hits)), len(hits))],
        "first20_detected": int(sum(hits[:20])),
        "missed": [name for (name, _), h in zip(positives, hits) if not h],
        "false_accepts": fa,
        "fa_per_hour": round(fa / hours, 3) if hours else None,
        "fa_per_hour_ci": [round(v, 3) for v in poisson_rate(fa, hours)] if hours else None,
    }


def det_curve(engine, positives, negative_times, hours, cutoffs=DET_CUTOFFS) -> list[dict]:
    """FRR (fraction) and FA/h of ``engine`` at each of ``cutoffs``, measured as in
    :func:`evaluate` (``positives``: list of (name, int16 clip); ``negative_times``: per
    cutoff, the detection times (s) on the negative stream of ``hours`` hours, as
    :func:`scan_negatives` gives them). ZeroDivisionError for no positives or 0 hours."""
    hit = np.zeros(len(cutoffs), np.int64)
    for _, x in positives:
        hit += np.array([len(d) > 0 for d in engine.sweep(x, cutoffs)], np.int64)
    fas = [len(merge(d)) for d in negative_times]
    return [
        {
            "cutoff": float(c),
            "frr": round(1 - int(h) / len(positives), 4),
            "fa_per_hour": round(fa / hours, 3),
        }
        for c, h, fa in zip(cutoffs, hit, fas)
    ]


def plot_det(results: dict, path) -> Path:
    """Write the DET curves of ``results`` (from :func:`evaluate` with ``det=True``) as a PNG:
    FRR (%) against FA/h, one line per engine, each engine's own cutoff marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for name, r in results["engines"].items():
        if "det" not in r:
            raise ValueError(f"{name}: no DET sweep in these results (run with det=True)")
        fa = [d["fa_per_hour"] for d in r["det"]]
        frr = [100 * d["frr"] for d in r["det"]]
        line = ax.plot(fa, frr, marker="o", ms=3, label=f"{name} (sweep)")[0]
        ax.plot(
            [r["fa_per_hour"]],
            [100 * (1 - r["recall"])],
            marker="*",
            ms=14,
            color=line.get_color(),
            ls="none",
            label=f"{name} at cutoff {r['cutoff']:.2f}",
        )
    snr = "clean" if results["snr_db"] is None else f"{results['snr_db']:g} dB SNR"
    ax.set_title(
        f"DET, {snr}: {results['positives']} positives, "
        f"{results['negative_hours']:.2f} h negatives"
    )
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false rejection rate (%)")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
