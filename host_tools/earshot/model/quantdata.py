"""Labelled windows for re-quantization: from the data a package was trained on.

``earshot quantize`` measures each layer's sensitivity on validation windows and fine-tunes
on training windows; both come from the same sources as ``earshot train``'s (the manifest's
``training`` record says which), kept modest so that a re-quantization takes minutes:

* positives: the synthetic clips cached by ``earshot train`` (``build/synth/<wake
  word>-pos-*.npz``: audio and the sample where the wake word ends); every fifth clip is for
  validation, the others for training. Each clip is put after silence, optionally in
  broadband noise (5-20 dB), and cut into windows that end 0-90 ms after the word (label 1)
  and one that ends 250-500 ms before it (label 0);
* negatives: the cached synthetic confusables (``neg-*.npz``, the same split) and the real
  negative speech of :func:`earshot.train.dataset.training_negatives` (``part`` "train" for
  fine-tuning, "validation" for sensitivity), joined into streams and cut every 20 hops.

The development split (``wake-word-benchmark/<wake word>``) and the held-out negatives are
never read here. Windows are the model's input rows as the detector computes them
(``earshot.core.model_features``, the model's ``input_norm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot import core
from earshot.core import HOP_SAMPLES
from earshot.paths import BUILD

SHIFTS = (0, 3, 6, 9)  # hops after the word's end of the positive windows
NEG_STRIDE = 20  # hops between two negative windows of a stream


@dataclass
class Windows:
    """int8 ``x`` (n, frames, 40) and uint8 labels ``y`` (n,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def _caches(wake_word: str, kind: str, synth_dir=None) -> list[Path]:
    """The newest cached synthesis of ``kind`` ("pos" or "neg"), sorted by chunk."""
    folder = Path(synth_dir or BUILD / "synth")
    pattern = f"{wake_word.replace(' ', '_')}-pos-*.npz" if kind == "pos" else "neg-*.npz"
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(f"{folder}: no {pattern} (earshot train caches its synthetic "
                                "clips there; run it once for this wake word)")
    newest = max(files, key=lambda p: p.stat().st_mtime)
    key = newest.name.rsplit("-c", 1)[0]
    return [p for p in files if p.name.rsplit("-c", 1)[0] == key]


def _clips(files: list[Path]) -> list[tuple[np.ndarray, int]]:
    """(int16 clip, end sample) of every clip in the cache files."""
    out = []
    for f in files:
        z = np.load(f)
        audio, offs, ends = z["audio"], z["offsets"], z["end"]
        out += [(audio[offs[i]:offs[i + 1]], int(ends[i])) for i in range(len(ends))]
    return out


def _noisy(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from earshot.train.augmentation import add_broadband_noise

    return add_broadband_noise(x, float(rng.uniform(5, 20)), rng)


def _windows_at(feats: np.ndarray, rows, frames: int) -> np.ndarray:
    rows = [r for r in rows if frames - 1 <= r < len(feats)]
    return (np.stack([feats[r - frames + 1:r + 1] for r in rows]) if rows
            else np.zeros((0, frames, feats.shape[1]), np.int8))


def _positives(clips, frames, input_norm, rng, copies: int):
    xs, ys = [], []
    for clip, end in clips:
        for c in range(copies):
            pre = np.zeros(frames * HOP_SAMPLES + int(rng.integers(0, 8000)), np.int16)
            raw = np.concatenate([pre, clip, np.zeros(6400, np.int16)])
            if c % 2 == 1:
                raw = _noisy(raw, rng)
            feats = core.model_features(raw, input_norm)
            e = (len(pre) + end - 1) // HOP_SAMPLES
            pos = _windows_at(feats, [e + s for s in SHIFTS], frames)
            neg = _windows_at(feats, [e - int(rng.integers(25, 50))], frames)
            xs += [pos, neg]
            ys += [np.ones(len(pos), np.uint8), np.zeros(len(neg), np.uint8)]
    return xs, ys


def _stream_windows(clips, frames, input_norm, rng, noisy: bool):
    if not clips:
        return np.zeros((0, frames, core.MEL_BINS), np.int8)
    gap = np.zeros(4800, np.int16)
    raw = np.concatenate([part for k in rng.permutation(len(clips)) for part in (clips[k], gap)])
    if noisy:
        raw = _noisy(raw, rng)
    feats = core.model_features(raw, input_norm)
    start = frames - 1 + int(rng.integers(0, NEG_STRIDE))
    return _windows_at(feats, range(start, len(feats), NEG_STRIDE), frames)


def windows(wake_word: str, frames: int, input_norm: int, part: str, *, max_pos: int,
            max_neg_clips: int, seed: int = 0, synth_dir=None, log=print) -> Windows:
    """Labelled windows of ``part`` ("train" or "validation", see the module docstring):
    at most ``max_pos`` positive clips (two copies each, one noisy) and ``max_neg_clips``
    real negative clips (clean and noisy streams) plus as many synthetic confusables.
    Raises FileNotFoundError without the caches or the shared negatives."""
    from earshot.train import dataset

    rng = np.random.default_rng([seed, 0 if part == "train" else 1])
    keep = (lambda i: i % 5 != 4) if part == "train" else (lambda i: i % 5 == 4)
    pos = [c for i, c in enumerate(_clips(_caches(wake_word, "pos", synth_dir))) if keep(i)]
    conf = [c for i, (c, _) in enumerate(_clips(_caches(wake_word, "neg", synth_dir)))
            if keep(i)]
    pos = [pos[i] for i in sorted(rng.choice(len(pos), min(max_pos, len(pos)), replace=False))]
    conf = [conf[i] for i in sorted(rng.choice(len(conf), min(max_neg_clips, len(conf)),
                                                replace=False))]
    real_paths = [p for paths in dataset.training_negatives(part=part).values() for p in paths]
    pick = rng.choice(len(real_paths), min(max_neg_clips, len(real_paths)), replace=False)
    real, _ = dataset.load_clips([real_paths[i] for i in sorted(pick)])
    xs, ys = _positives(pos, frames, input_norm, rng, copies=2)
    for clips in (real, conf):
        for noisy in (False, True):
            w = _stream_windows(clips, frames, input_norm, rng, noisy)
            xs.append(w)
            ys.append(np.zeros(len(w), np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    log(f"{part} windows: {int(y.sum())} positive, {int((y == 0).sum())} negative "
        f"({len(pos)} positive clips, {len(real)} real and {len(conf)} synthetic negative clips)")
    return Windows(x, y)
