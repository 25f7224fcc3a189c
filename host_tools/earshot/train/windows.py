"""Training windows from audio: the model's input rows, cut at labelled ends.

A window is ``frames`` consecutive feature rows (``frames = arch.receptive_field(cfg)``), int8
(frames, ``core.MEL_BINS``), as the C core computes them (:func:`inputs`). Positives end just
after the wake word (label 1) or well before its end (label 0); negatives end anywhere in
synthetic confusables, real speech streams or noise. Row i covers the window ending with the
last sample of hop i (``core.HOP_SAMPLES`` samples, 10 ms).
"""

from __future__ import annotations

import numpy as np

from earshot import core
from earshot.core import HOP_MS, HOP_SAMPLES
from earshot.train import augmentation
from earshot.train.augmentation import add_broadband_noise
from earshot.train.config import DEFAULT_CONFIG


def end_row(end_sample: int) -> int:
    """Feature row whose 30 ms window is the first to contain sample ``end_sample - 1``.

    Row i covers the window ending with the last sample of hop i (earshot.h), so the row
    holding sample s is s // HOP_SAMPLES.
    """
    return max(0, (int(end_sample) - 1) // HOP_SAMPLES)


def windows_ending(feats: np.ndarray, rows, frames: int) -> np.ndarray:
    """Windows of ``frames`` rows ending (inclusive) at each of ``rows``: int8 (k, frames, 40).
    Rows with too little history or beyond the end are skipped."""
    rows = [r for r in rows if frames - 1 <= r < len(feats)]
    if not rows:
        return np.zeros((0, frames, feats.shape[1]), np.int8)
    return np.stack([feats[r - frames + 1 : r + 1] for r in rows])


class Context:
    """Real negative speech used as preceding context and babble noise, and the extra
    augmentation of ``cfg["augment"]`` (``aug``: keyword arguments of augmentation.augment)."""

    def __init__(self, clips: list[np.ndarray], cfg: dict | None = None):
        self.clips = clips
        cfg = cfg or DEFAULT_CONFIG
        n_rirs = int(cfg["augment"]["room_rirs"])
        clip_p = float(cfg["augment"]["clip_fraction"])
        if n_rirs < 0 or not 0.0 <= clip_p <= 1.0:
            raise ValueError(f"config: augment.room_rirs must be >= 0 and clip_fraction in "
                             f"[0, 1], got {n_rirs}, {clip_p}")
        try:
            peak = augmentation.check_peak_dbfs(cfg["augment"]["peak_dbfs"])
        except ValueError as exc:
            raise ValueError(f"config: augment.{exc}") from None
        try:
            hf = augmentation.check_hf_shelf(cfg["augment"]["hf_shelf"])
            alpha = augmentation.check_noise_alpha(cfg["augment"]["noise_alpha"])
            speaker = augmentation.check_speaker(cfg["augment"].get("speaker",
                                                                    augmentation.SPEAKER))
        except ValueError as exc:
            raise ValueError(f"config: augment.{exc}") from None
        rirs = augmentation.room_rirs(n_rirs, int(cfg["seed"])) if n_rirs else None
        self.aug = {"rirs": rirs, "clip_p": clip_p, "peak_dbfs": peak, "hf_shelf": hf,
                    "noise_alpha": alpha, "speaker": speaker}

    def pre(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        """Audio to put before a clip: at least ``frames`` hops of silence or real speech."""
        n = frames * HOP_SAMPLES + int(rng.integers(0, 8000))
        if rng.random() < 0.5 or not self.clips:
            return np.zeros(n, np.int16)
        clip = self.clips[rng.integers(len(self.clips))]
        seg = np.resize(clip, max(n, len(clip)))[-n:].astype(np.float32)
        gap = np.zeros(int(rng.integers(800, 8000)), np.float32)
        level = 10 ** (rng.uniform(-20, 0) / 20) * 16000 / (np.max(np.abs(seg)) + 1)
        return np.concatenate([seg * level, gap])[-n:].astype(np.int16)


def inputs(samples: np.ndarray, cfg: dict) -> np.ndarray:
    """The model's input rows for int16 ``samples`` from a fresh state: int8 (n_hops, 40), by
    the C core (``core.model_features``), so training sees what the device's detector feeds."""
    return core.model_features(np.ascontiguousarray(samples, dtype=np.int16),
                               int(cfg["input_norm"]))


def positive_windows(cache: dict, idx, cfg: dict, frames: int, ctx: Context, seed: int,
                     twins: list | None = None, stream: int = 3):
    """Windows of synthetic positives ``cache`` clips ``idx``; returns (xs, ys): lists of int8
    (k, frames, 40) windows and their uint8 (k,) labels. Copy c of clip i draws from
    ``default_rng([seed, stream, i, c])`` (``stream`` 3 for the synthetic positives, another
    for the real ones, :func:`earshot.train.data.real_positive_windows`).

    ``twins``: when a list, one int8 array per entry of xs is appended to it: the same
    windows computed before the broadband noise (the windows themselves when the copy got
    none), for distill.clean_targets. The windows and labels do not depend on it."""
    pc = cfg["positives"]
    max_shift = int(pc["max_shift_ms"] // HOP_MS)
    xs, ys = [], []
    for i in idx:
        clip, end = cache["audio"][i], int(cache["end"][i])
        for c in range(pc["copies"]):
            rng = np.random.default_rng([seed, stream, int(i), c])
            pre = ctx.pre(rng, frames)
            post = np.zeros(int(rng.integers(3200, 8000)), np.int16)
            raw = np.concatenate([pre, clip, post])
            aug, aug_end = augmentation.augment(raw, len(pre) + end, rng, speech=ctx.clips,
                                                **ctx.aug)
            clean = aug
            if rng.random() < cfg["broadband_fraction"]:
                aug = add_broadband_noise(aug, rng.uniform(*cfg["broadband_snr_db"]), rng,
                                          cfg["broadband_bands"])
            feats = inputs(aug, cfg)
            clean_feats = feats if clean is aug or twins is None else inputs(clean, cfg)
            e = end_row(aug_end)
            n_shifts = min(pc["shifts"], max_shift + 1)
            shifts = np.sort(rng.choice(max_shift + 1, size=n_shifts, replace=False))
            rows = [e + shifts]
            if pc["early_negative"]:
                rows.append([e - int(rng.integers(25, 50))])
            for k, r in enumerate(rows):
                w = windows_ending(feats, r, frames)
                xs.append(w)
                ys.append(np.full(len(w), 1 if k == 0 else 0, np.uint8))
                if twins is not None:
                    twins.append(windows_ending(clean_feats, r, frames))
    return xs, ys


def synth_negative_windows(cache: dict, cfg: dict, frames: int, ctx: Context, seed: int):
    """Windows of the synthetic negatives ``cache`` (every clip, ``synth_negatives.copies``
    augmented copies, ``synth_negatives.windows`` windows each, ending at random rows at least
    20 rows after the preceding context): a list of int8 (k, frames, 40) arrays, all label 0."""
    nc = cfg["synth_negatives"]
    xs = []
    for i, clip in enumerate(cache["audio"]):
        for c in range(nc["copies"]):
            rng = np.random.default_rng([seed, 4, i, c])
            pre = ctx.pre(rng, frames)
            raw = np.concatenate([pre, clip, np.zeros(4800, np.int16)])
            aug, _ = augmentation.augment(raw, len(raw), rng, speech=ctx.clips, **ctx.aug)
            if rng.random() < cfg["broadband_fraction"]:
                aug = add_broadband_noise(aug, rng.uniform(*cfg["broadband_snr_db"]), rng,
                                          cfg["broadband_bands"])
            feats = inputs(aug, cfg)
            lo, hi = end_row(len(pre)) + 20, len(feats) - 1
            if hi <= lo:
                continue
            xs.append(windows_ending(feats, rng.integers(lo, hi + 1, nc["windows"]), frames))
    return xs


def stream(clips: list[np.ndarray], rng: np.random.Generator, gap: int = 4800) -> np.ndarray:
    """Clips in a random order joined with ``gap`` samples of silence: int16 (n,)."""
    out = []
    silence = np.zeros(gap, np.int16)
    for k in rng.permutation(len(clips)):
        out += [clips[k], silence]
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def noisy_stream(clips: list[np.ndarray], snr_db, rng: np.random.Generator,
                 gap: int = 4800, bands: dict | None = None) -> np.ndarray:
    """Like :func:`stream`, each clip with its trailing gap mixed with broadband noise
    (:func:`add_broadband_noise`, band-limited as ``bands`` says) at an SNR drawn uniformly
    from ``snr_db`` (lo, hi) dB."""
    silence = np.zeros(gap, np.int16)
    out = [add_broadband_noise(np.concatenate([clips[k], silence]),
                               rng.uniform(*snr_db), rng, bands)
           for k in rng.permutation(len(clips))]
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def noise_windows(n: int, frames: int, seed: int, cfg: dict) -> np.ndarray:
    """``n`` noise-only windows (coloured noise or hum, -60..-10 dBFS RMS)."""
    xs = []
    per = 20  # windows per generated noise stretch
    for k in range(max(1, n // per)):
        rng = np.random.default_rng([seed, 5, k])
        length = (frames + per * 8) * HOP_SAMPLES
        if rng.random() < 0.8:
            x = augmentation.colored_noise(length, rng.uniform(0, 2), rng)
        else:
            x = augmentation.hum(length, rng)
        x = np.clip(x * 32768 * 10 ** (rng.uniform(-60, -10) / 20), -32768, 32767)
        feats = inputs(x.astype(np.int16), cfg)
        xs.append(windows_ending(feats, range(frames - 1, len(feats), 8), frames)[:per])
    return np.concatenate(xs)[:n]


