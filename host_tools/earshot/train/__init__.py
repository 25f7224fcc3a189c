"""Train a wake-word model and package it: synthetic positives, real negatives, int8 export.

Pipeline (:func:`train`):

1. Synthetic speech (:mod:`earshot.train.synth`): positives of the wake word, filtered by
   :func:`earshot.train.synth.check_positive`; confusable words and sentences as negatives. Cached
   under ``build/synth/``.
2. Windows of ``T = arch.receptive_field(cfg)`` feature rows, the model's input from the C core
   (:func:`inputs`: the log-mel, through ``es_norm`` when ``input_norm`` is set), augmented by
   :func:`earshot.train.synth.augment` (with ``augment``: room impulse responses and clipping):

   - positives: each clip, preceded by silence or real negative speech and augmented
     (:func:`earshot.train.synth.augment`) several times; windows whose last row lies 0..``max_shift_ms``
     after the end of the word (label 1), and one window ending well before it (label 0: an
     unfinished word);
   - synthetic negatives, augmented, windows at random ends (label 0);
   - real negatives (:func:`earshot.train.dataset.training_negatives`, never the held-out part or the
     development positives), joined into streams, windows every ``stride_hops`` (label 0), plus
     an augmented copy; with ``synth_passages``, long TTS passages the same way;
   - noise-only windows (coloured noise, hum) at random levels (label 0).
3. Keras training (binary cross-entropy on the logit, class weights), then hard-negative
   mining: score every real-negative window at the streaming output stride, add the
   highest-scoring ones and fine-tune. With ``distill.width`` this trains the wider teacher,
   and the student then learns the teacher's soft targets; ``qat.epochs`` ends with weight
   quantization-aware fine-tuning (:func:`weight_qat_callback`).
4. Int8 conversion (:func:`earshot.train.arch.to_tflite_int8`), detector settings chosen on the
   training side only (synthetic validation positives and the validation part of the real
   negatives, which training does not fit: ``dataset.training_negatives(part="validation")``;
   scored with the int8 model through the C core, :class:`Int8Scorer`, unless
   ``detector.validation_model`` is "float"), the blob
   (:func:`earshot.model.blob.from_tflite`) and the package (:func:`earshot.model.package.write`).

The development clips ``wake-word-benchmark/alexa`` are never read here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from earshot.train import dataset, synth
from earshot.paths import BUILD

HOP = 160  # samples per hop (ES_HOP_SAMPLES)

#: Training configuration defaults; a JSON config overrides any subset (deep merge).
DEFAULT_CONFIG = {
    "wake_word": "alexa",
    "seed": 1,
    # Seed of weight initialisation, shuffling and mining only (None: ``seed``). The data
    # (synthesis, augmentation, windows, validation) follow ``seed``, so two runs that differ in
    # train_seed alone measure the spread of training itself.
    "train_seed": None,
    "arch": None,  # None: earshot.train.arch.DEFAULT_ARCH
    "synth": {"positives": 2000, "negatives": 1200, "workers": 1, "check": True},
    "positives": {"copies": 3, "shifts": 3, "max_shift_ms": 250, "early_negative": True},
    "synth_negatives": {"copies": 2, "windows": 3},
    # Long TTS passages (earshot.train.synth.passage_specs: fortunes read in many voices), general
    # negative speech beyond the real recordings: ``count`` passages (0: none) joined into a
    # stream like the real negatives, every passage augmented (reverb, noise, level), plus
    # ``noisy_copies`` streams with broadband noise at real_negatives.noisy_copy_snr_db (or
    # broadband_snr_db). Windows every real_negatives.stride_hops; mined like the real ones.
    "synth_passages": {"count": 0, "noisy_copies": 1},
    # Training augmentation beyond synth.augment's defaults (validation keeps the defaults, so
    # candidates stay comparable): room_rirs > 0 replaces the exponential-decay reverb by that
    # many pyroomacoustics image-source room responses (synth.room_rirs, drawn from ``seed``);
    # clip_fraction: share of augmented clips driven into clipping; peak_dbfs: the range
    # (dBFS) of each augmented clip's final peak level, positives and negatives alike
    # (synth.PEAK_DBFS, -35..-6; real recordings reach full scale: HISTORY.md, session 17);
    # hf_shelf: share ``p`` of augmented clips, positives and negatives alike, whose band
    # above a corner uniform in ``hz`` (Hz) is cut by a gain uniform in ``db`` (dB), as a
    # talker turned away from the microphone sounds (synth.augment; HISTORY.md, session 19);
    # noise_alpha: the range of the coloured noise's exponent (power ~ 1/f^alpha; default 0..2,
    # white to brown; below 0 blue and violet, noise that leans to the high band).
    "augment": {"room_rirs": 0, "clip_fraction": 0.0, "peak_dbfs": list(synth.PEAK_DBFS),
                "noise_alpha": list(synth.NOISE_ALPHA),
                "hf_shelf": {"p": synth.HF_SHELF["p"], "hz": list(synth.HF_SHELF["hz"]),
                             "db": list(synth.HF_SHELF["db"])}},
    # Share of augmented positive and synthetic negative copies that also get broadband noise
    # (add_broadband_noise) at an SNR uniform in broadband_snr_db; the same range is used for
    # real_negatives.noisy_copy_snr_db in configs/alexa.json, so both classes see that noise.
    "broadband_fraction": 0.0,
    "broadband_snr_db": [0.0, 20.0],
    "real_negatives": {
        "sources": ["wwb", "precise", "wuw"],
        "max_clips": None,
        "stride_hops": 12,
        "augmented_copy": True,
        "augmented_fraction": 0.5,
        "noisy_copy_snr_db": None,
        # how many such noisy copies (each its own noise draw and SNRs); used when
        # noisy_copy_snr_db is set
        "noisy_copies": 1,
    },
    "noise_windows": 3000,
    "validation_fraction": 0.1,
    "epochs": 12,
    "batch_size": 256,
    "learning_rate": 0.003,
    "positive_weight": 1.0,
    "mining": {"rounds": 1, "top_k": 3000, "epochs": 4, "learning_rate": 0.0005},
    # Knowledge distillation (off when width is 0): a teacher of the same layout with every
    # layer's filters multiplied by ``width`` is trained first (same windows, same mining);
    # the student then learns the targets alpha * label + (1 - alpha) * sigmoid(teacher
    # logit / temperature) (Hinton, Vinyals and Dean, "Distilling the knowledge in a neural
    # network", 2015, with the binary cross-entropy of a single logit). teacher_channel_dropout:
    # the teacher's arch.channel_dropout (None: the student's). teachers: how many teachers
    # (each its own initialisation, training and mining, one after another); the soft target
    # is the mean of their sigmoids (an ensemble teacher, as in the paper's section 2), which
    # averages out one teacher's run-to-run spread. clean_targets: a synthetic positive copy
    # that got broadband noise (broadband_fraction) takes its soft targets from the teachers'
    # scores of the same windows without that noise (teacher-student learning on parallel
    # clean/noisy data: J. Li, M. L. Seltzer, X. Wang, R. Zhao and Y. Gong, "Large-scale domain
    # adaptation via teacher-student learning", Interspeech 2017), so the student learns to
    # score noisy words as the teachers score them clean; its hard labels are unchanged.
    # student_mining: rounds of hard-negative mining for the student itself after its training
    # (its own top mining.top_k outputs on the negative streams, weight 2, with the teachers'
    # soft targets, then mining.epochs at mining.learning_rate); 0: the student learns only
    # from the windows the teachers mined. students: how many students learn from the same
    # teachers and data, each with its own initialisation, shuffling and mining (student 0
    # with train_seed's seeds, student k with train_seed + 500 + 1000 k); the one that
    # validation_rank puts first is packaged. Fitting runs differ by more than most recipe
    # changes (HISTORY.md), and a student costs about a third of a run with its teacher.
    # first_student: the index of the first student trained (students first_student ..
    # first_student + students - 1, each with its index's seeds), so a later run draws new
    # students of the same teachers without training the earlier ones again.
    # student_epochs: the students' epochs (None: ``epochs``, as the teachers'); a student
    # matching a fixed teacher on fixed views keeps improving over long schedules (Beyer et
    # al., "Knowledge distillation: a good teacher is patient and consistent", CVPR 2022,
    # section 4), and the cosine decay of _fit stretches over all of them.
    # mixup: the fraction of every student batch (0: off) replaced by function matching
    # (Beyer et al. 2022, section 3: "consistent" teaching with mixup): each such window's
    # model input becomes lam * a + (1 - lam) * b with b another window of the same batch
    # and lam ~ U(0, 1), and its target is the teachers' score of that very input (the mean
    # of sigmoid(logit / temperature), no hard label), computed as the batch is drawn; its
    # weight is lam * w_a + (1 - lam) * w_b. So the student matches the teachers on inputs
    # off the fixed training views, not only on them.
    # cache_teachers: keep the trained teachers and the windows they mined under
    # <cache_dir>/teachers/, keyed on everything they depend on (teacher_cache_key), so a
    # run that changes only the students' keys loads them instead of training them again
    # (the same students follow); only with train_seed set, as without it the students'
    # initial weights depend on the random state the teachers' training left behind.
    "distill": {"width": 0, "alpha": 0.5, "temperature": 1.0, "teacher_channel_dropout": None,
                "teachers": 1, "clean_targets": False, "student_mining": 0, "students": 1,
                "first_student": 0, "student_epochs": None, "mixup": 0.0,
                "cache_teachers": True},
    # Quantization-aware fine-tuning of the weights (weight_qat_callback) after training:
    # epochs (0: off) at learning_rate.
    "qat": {"epochs": 0, "learning_rate": 0.0002},
    # Weight averaging for the network that ships (the student when distilling, else the
    # model; never a teacher; not the qat fit): each fit keeps an exponential moving average
    # of the trainable weights (Keras's optimizer ``use_ema``, Polyak and Juditsky 1992) with
    # ``momentum`` (0: off; 0.999 averages over about the last 1,000 batches) and ends with
    # those weights; BatchNorm's moving statistics are then estimated again for them over
    # ``bn_batches`` training batches (as SWA does: Izmailov et al., "Averaging weights leads
    # to wider optima and better generalization", UAI 2018, section 3.2).
    "weight_average": {"momentum": 0.0, "bn_batches": 200},
    # Detector defaults chosen on validation data (choose_detector): window in model outputs,
    # or a list of windows to choose from (3..6 outputs: 180-360 ms at an output stride of 6
    # hops, as in models/alexa; HISTORY.md there, session 11: W1's validation recall rose
    # from 0.823 at 3 to 0.906 at 6); the lowest cutoff with at most max_fa_per_hour on the
    # validation negatives (clean, plus a copy at each validation_snr_db), plus margin.
    # validation_model: "int8" scores validation with the packaged int8 model through the C
    # core (Int8Scorer: the device's arithmetic and uint8 cutoff); "float" with the Keras
    # model, as every model up to HISTORY.md session 14 was (their configs say so). On W1 and
    # R3 the int8 model needed cutoffs 0.01-0.02 higher (HISTORY.md, session 12).
    "detector": {"window": [3, 4, 5, 6], "refractory_ms": 1500, "max_fa_per_hour": 0.2,
                 "margin": 0.05, "validation_snr_db": [], "validation_model": "int8"},
    # 0: the model takes the frontend's log-mel; 1: es_norm (level above each bin's 0.8-1.6 s
    # minimum, earshot.h) runs first, on the host here and in the device's detector; 2: the
    # same with es_norm's per-bin noise gate (ES_NORM_MINSTAT_GATE).
    "input_norm": 0,
    # SpecAugment's masking (Park et al., "SpecAugment: a simple data augmentation method for
    # automatic speech recognition", Interspeech 2019, section 2; no time warping) on every
    # training window each time a batch is drawn, for the teacher and the student: ``freq_masks``
    # bands of 0..``freq_max_bins`` adjacent mel bins and ``time_masks`` spans of
    # 0..``time_max_frames`` frames (10 ms each) set to -128, the int8 floor of the features
    # (with input_norm, "no energy above the noise floor": the band or span as broadband noise
    # leaves it). 0 masks: off. Targets and the windows scored for mining stay unmasked.
    "spec_augment": {"freq_masks": 0, "freq_max_bins": 8, "time_masks": 0,
                     "time_max_frames": 10},
    "threads": 2,
}


def _config_chain(path: Path, seen: tuple = ()) -> list[tuple[Path, dict]]:
    """The JSON objects a config file stands for, base first: a file with ``"extends":
    "<path>"`` (relative to its own folder) is that file's chain plus its own keys, so a
    candidate recipe can be a few keys on top of a shipped config. ``comment`` is dropped.
    Raises ValueError naming the file for an unreadable file, a non-object or a cycle."""
    if path.resolve() in seen:
        raise ValueError(f"{path}: config extends itself")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read config ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config is a JSON object, not {type(data).__name__}")
    data.pop("comment", None)
    base = data.pop("extends", None)
    if base is None:
        return [(path, data)]
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'extends' is a path, not {base!r}")
    return _config_chain(path.parent / base, seen + (path.resolve(),)) + [(path, data)]


def load_config(path=None, overrides: dict | None = None) -> dict:
    """DEFAULT_CONFIG deep-merged with the JSON file ``path`` (after the files it
    ``extends``, see :func:`_config_chain`) and then ``overrides``.

    Raises ValueError for an unknown key (a typo would otherwise be silently ignored).
    """

    def merge(base: dict, new: dict, where: str) -> dict:
        out = copy.deepcopy(base)
        for k, v in new.items():
            if k not in base:
                raise ValueError(f"config: unknown key {where}{k!r}")
            if isinstance(base[k], dict) and isinstance(v, dict):
                out[k] = merge(base[k], v, f"{where}{k}.")
            else:
                out[k] = v
        return out

    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        for where, data in _config_chain(Path(path)):
            try:
                cfg = merge(cfg, data, "")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    if overrides:
        cfg = merge(cfg, overrides, "")
    return cfg


# --- windows ----------------------------------------------------------------------------------


def end_row(end_sample: int) -> int:
    """Feature row whose 30 ms window is the first to contain sample ``end_sample - 1``.

    Row i covers the window ending with the last sample of hop i (earshot.h), so the row
    holding sample s is s // HOP.
    """
    return max(0, (int(end_sample) - 1) // HOP)


def windows_ending(feats: np.ndarray, rows, frames: int) -> np.ndarray:
    """Windows of ``frames`` rows ending (inclusive) at each of ``rows``: int8 (k, frames, 40).
    Rows with too little history or beyond the end are skipped."""
    rows = [r for r in rows if frames - 1 <= r < len(feats)]
    if not rows:
        return np.zeros((0, frames, feats.shape[1]), np.int8)
    return np.stack([feats[r - frames + 1 : r + 1] for r in rows])


class _Context:
    """Real negative speech used as preceding context and babble noise, and the extra
    augmentation of ``cfg["augment"]`` (``aug``: keyword arguments of synth.augment)."""

    def __init__(self, clips: list[np.ndarray], cfg: dict | None = None):
        self.clips = clips
        cfg = cfg or DEFAULT_CONFIG
        n_rirs = int(cfg["augment"]["room_rirs"])
        clip_p = float(cfg["augment"]["clip_fraction"])
        if n_rirs < 0 or not 0.0 <= clip_p <= 1.0:
            raise ValueError(f"config: augment.room_rirs must be >= 0 and clip_fraction in "
                             f"[0, 1], got {n_rirs}, {clip_p}")
        try:
            peak = synth.check_peak_dbfs(cfg["augment"]["peak_dbfs"])
        except ValueError as exc:
            raise ValueError(f"config: augment.{exc}") from None
        try:
            hf = synth.check_hf_shelf(cfg["augment"]["hf_shelf"])
            alpha = synth.check_noise_alpha(cfg["augment"]["noise_alpha"])
        except ValueError as exc:
            raise ValueError(f"config: augment.{exc}") from None
        rirs = synth.room_rirs(n_rirs, int(cfg["seed"])) if n_rirs else None
        self.aug = {"rirs": rirs, "clip_p": clip_p, "peak_dbfs": peak, "hf_shelf": hf,
                    "noise_alpha": alpha}

    def pre(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        """Audio to put before a clip: at least ``frames`` hops of silence or real speech."""
        n = frames * HOP + int(rng.integers(0, 8000))
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
    from earshot import core

    return core.model_features(np.ascontiguousarray(samples, dtype=np.int16),
                               int(cfg["input_norm"]))


def positive_windows(cache: dict, idx, cfg: dict, frames: int, ctx: _Context, seed: int,
                     twins: list | None = None):
    """Windows of synthetic positives ``cache`` clips ``idx``; returns (xs, ys): lists of int8
    (k, frames, 40) windows and their uint8 (k,) labels.

    ``twins``: when a list, one int8 array per entry of xs is appended to it: the same
    windows computed before the broadband noise (the windows themselves when the copy got
    none), for distill.clean_targets. The windows and labels do not depend on it."""
    pc = cfg["positives"]
    max_shift = int(pc["max_shift_ms"] // 10)
    xs, ys = [], []
    for i in idx:
        clip, end = cache["audio"][i], int(cache["end"][i])
        for c in range(pc["copies"]):
            rng = np.random.default_rng([seed, 3, int(i), c])
            pre = ctx.pre(rng, frames)
            post = np.zeros(int(rng.integers(3200, 8000)), np.int16)
            raw = np.concatenate([pre, clip, post])
            aug, aug_end = synth.augment(raw, len(pre) + end, rng, speech=ctx.clips, **ctx.aug)
            clean = aug
            if rng.random() < cfg["broadband_fraction"]:
                aug = add_broadband_noise(aug, rng.uniform(*cfg["broadband_snr_db"]), rng)
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


def synth_negative_windows(cache: dict, cfg: dict, frames: int, ctx: _Context, seed: int):
    nc = cfg["synth_negatives"]
    xs = []
    for i, clip in enumerate(cache["audio"]):
        for c in range(nc["copies"]):
            rng = np.random.default_rng([seed, 4, i, c])
            pre = ctx.pre(rng, frames)
            raw = np.concatenate([pre, clip, np.zeros(4800, np.int16)])
            aug, _ = synth.augment(raw, len(raw), rng, speech=ctx.clips, **ctx.aug)
            if rng.random() < cfg["broadband_fraction"]:
                aug = add_broadband_noise(aug, rng.uniform(*cfg["broadband_snr_db"]), rng)
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


def add_broadband_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """int16 ``x`` plus white (p 0.5) or coloured (1/f^alpha, alpha 0..1) Gaussian noise at
    ``snr_db`` below the RMS of ``x`` itself, as ``earshot.evaluate.add_noise`` measures SNR
    (silences included). Returns int16 (n,)."""
    xf = x.astype(np.float64)
    rms = np.sqrt(np.mean(xf**2)) + 1e-9
    alpha = 0.0 if rng.random() < 0.5 else rng.uniform(0.0, 1.0)
    noise = synth.colored_noise(len(x), alpha, rng).astype(np.float64)
    noisy = xf + noise * rms / 10 ** (snr_db / 20)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def noisy_stream(clips: list[np.ndarray], snr_db, rng: np.random.Generator,
                 gap: int = 4800) -> np.ndarray:
    """Like :func:`stream`, each clip with its trailing gap mixed with broadband noise
    (:func:`add_broadband_noise`) at an SNR drawn uniformly from ``snr_db`` (lo, hi) dB."""
    silence = np.zeros(gap, np.int16)
    out = [add_broadband_noise(np.concatenate([clips[k], silence]),
                               rng.uniform(*snr_db), rng) for k in rng.permutation(len(clips))]
    return np.concatenate(out) if out else np.zeros(0, np.int16)


def noise_windows(n: int, frames: int, seed: int, cfg: dict) -> np.ndarray:
    """``n`` noise-only windows (coloured noise or hum, -60..-10 dBFS RMS)."""
    xs = []
    per = 20  # windows per generated noise stretch
    for k in range(max(1, n // per)):
        rng = np.random.default_rng([seed, 5, k])
        length = (frames + per * 8) * HOP
        if rng.random() < 0.8:
            x = synth.colored_noise(length, rng.uniform(0, 2), rng)
        else:
            x = synth.hum(length, rng)
        x = np.clip(x * 32768 * 10 ** (rng.uniform(-60, -10) / 20), -32768, 32767)
        feats = inputs(x.astype(np.int16), cfg)
        xs.append(windows_ending(feats, range(frames - 1, len(feats), 8), frames)[:per])
    return np.concatenate(xs)[:n]


def validation_probs(model, cache, idx, frames, stride, ctx, seed, cfg,
                     scorer=None) -> list[np.ndarray]:
    """Per validation positive: probabilities at the streaming outputs from 300 ms before to
    400 ms after the end of the word (one augmented copy each, as in training).

    ``model``: the float Keras model, scored by :func:`predict`; or, with ``scorer`` (an
    :class:`Int8Scorer`), the int8 model as the device runs it (``model`` is then unused)."""
    out = []
    for i in idx:
        rng = np.random.default_rng([seed, 12, int(i)])
        pre = ctx.pre(rng, frames)
        raw = np.concatenate([pre, cache["audio"][i], np.zeros(8000, np.int16)])
        aug, aug_end = synth.augment(raw, len(pre) + int(cache["end"][i]), rng, speech=ctx.clips)
        feats = inputs(aug, cfg)
        e = end_row(aug_end)
        first = frames - 1 + ((max(frames - 1, e - 30) - (frames - 1)) // stride) * stride
        rows = np.arange(first, min(len(feats), e + 41), stride)
        if scorer is not None:
            out.append(scorer.at_rows(feats, rows))
        else:
            out.append(_sigmoid(predict(model, windows_ending(feats, rows, frames))))
    return out


class Int8Scorer:
    """Probabilities of the int8 model as the device computes them: the .tflite converted to a
    blob (:func:`earshot.model.blob.from_tflite`), run by the C core's streaming engine
    (``es_engine_push``, :class:`earshot.model.Engine`) and mapped through the blob's logistic
    table (uint8 0..255). Probabilities are returned as float64 uint8/255, so
    :func:`choose_cutoff` with ``det["validation_model"] == "int8"`` compares window sums as
    ``es_posterior`` does (sum of uint8 >= round(cutoff * 255) * window).

    ``frames``, ``stride``: the network's input window and output stride in hops (10 ms); the
    engine outputs after hops frames-1, frames-1+stride, ... of a fresh stream, the rows
    :func:`stream_logits` scores. Raises ValueError when the .tflite cannot be converted or its
    window differs from ``frames``.
    """

    def __init__(self, tflite: bytes, cfg: dict, frames: int, stride: int):
        from earshot.model import Model, blob

        self.model = Model(blob.from_tflite(tflite, cutoff=0.5, window=1, refractory=0,
                                            input_norm=int(cfg["input_norm"])))
        if self.model.info["input_frames"] != frames or self.model.info["output_stride"] != stride:
            raise ValueError(f"Int8Scorer: the blob takes {self.model.info['input_frames']} "
                             f"frames at stride {self.model.info['output_stride']}, training "
                             f"uses {frames} at {stride}")
        self.table = np.array([self.model.probability(v) for v in range(-128, 128)],
                              np.float64) / 255.0
        self.frames, self.stride = frames, stride

    def stream(self, feats: np.ndarray) -> np.ndarray:
        """Probabilities at every streaming output of int8 features (n, 40), fresh state:
        float64 (k,), k = number of rows frames-1, frames-1+stride, ... below n."""
        from earshot.model import Engine

        _, logits = Engine(self.model).run(feats)
        return self.table[logits.astype(np.int16) + 128]

    def at_rows(self, feats: np.ndarray, rows) -> np.ndarray:
        """Probabilities at the output ``rows`` (hop indices on the engine's output grid) of
        int8 features (n, 40) from a fresh state: float64 (len(rows),). Raises ValueError for
        a row off that grid."""
        rows = np.asarray(rows, np.int64)
        if len(rows) == 0:
            return np.zeros(0, np.float64)
        off = rows - (self.frames - 1)
        if np.any(off < 0) or np.any(off % self.stride):
            raise ValueError(f"Int8Scorer: rows must be frames-1 + k*stride, got {rows[:5]}")
        p = self.stream(feats[: int(rows[-1]) + 1])
        return p[off // self.stride]


# --- model ------------------------------------------------------------------------------------


def _seed_init(cfg: dict, seed: int) -> None:
    """Seed Keras before a model is built, so its initial weights follow ``train_seed``; a
    config without train_seed keeps the process's random state (earlier runs unchanged)."""
    if cfg["train_seed"] is not None:
        import keras

        keras.utils.set_random_seed(seed)


def spec_augment(x: np.ndarray, rng: np.random.Generator, sa: dict) -> np.ndarray:
    """SpecAugment masks on a batch of int8 feature windows ``x`` (N, T, bins): a masked copy.

    Each window gets its own ``sa["freq_masks"]`` bands of w ~ U{0..freq_max_bins} adjacent
    bins starting at f0 ~ U{0..bins - w}, and ``sa["time_masks"]`` spans of t ~
    U{0..time_max_frames} frames starting at t0 ~ U{0..T - t}, all set to -128 (Park et al.
    2019, section 2, masks F and T; the masked value is the features' floor, not a mean).
    Raises ValueError when a mask can be wider than the window or x is not (N, T, bins) int8.
    """
    if x.dtype != np.int8 or x.ndim != 3:
        raise ValueError(f"spec_augment: int8 (N, T, bins) windows, got {x.dtype} {x.shape}")
    n, frames, bins = x.shape
    out = x.copy()
    for axis, count, widest in ((2, sa["freq_masks"], sa["freq_max_bins"]),
                                (1, sa["time_masks"], sa["time_max_frames"])):
        size = bins if axis == 2 else frames
        if int(count) < 0 or not 0 <= int(widest) <= size:
            raise ValueError(f"spec_augment: masks {count} of up to {widest} "
                             f"{'bins' if axis == 2 else 'frames'} do not fit in {size}")
        pos = np.arange(size)
        for _ in range(int(count)):
            width = rng.integers(0, int(widest) + 1, size=n)
            start = (rng.random(n) * (size - width + 1)).astype(np.int64)
            hit = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (n, size)
            if axis == 2:
                out[np.broadcast_to(hit[:, None, :], out.shape)] = -128
            else:
                out[np.broadcast_to(hit[:, :, None], out.shape)] = -128
    return out


def _weight_average(cfg: dict) -> tuple[float, int]:
    """``cfg["weight_average"]`` checked: (momentum in [0, 1), bn_batches >= 1). ValueError
    names the bad key."""
    wa = cfg["weight_average"]
    m, nb = wa["momentum"], wa["bn_batches"]
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0.0 <= m < 1.0:
        raise ValueError(f"config: weight_average.momentum must be a number in [0, 1), got {m!r}")
    if isinstance(nb, bool) or not isinstance(nb, int) or nb < 1:
        raise ValueError(f"config: weight_average.bn_batches must be an int >= 1, got {nb!r}")
    return float(m), nb


def refresh_batchnorm(model, x: np.ndarray, batches: int, batch: int, seed: int) -> None:
    """Estimate BatchNorm's moving mean and variance again for ``model``'s current weights:
    ``batches`` forward passes in training mode over random batches of ``batch`` windows of
    ``x`` (int8 (n, frames, 40) features), every BatchNormalization layer's momentum set to
    (k - 1) / k at pass k so the statistics end as the plain mean over the passes (the
    cumulative average of SWA's bn_update), then restored. Trainable weights do not change.
    """
    import keras

    from earshot.train.arch import features_to_input

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [layer.momentum for layer in bns]
    rng = np.random.default_rng([seed, 77])
    try:
        for k in range(1, batches + 1):
            for layer in bns:
                layer.momentum = (k - 1) / k
            sel = np.sort(rng.choice(len(x), size=min(batch, len(x)), replace=False))
            model(features_to_input(x[sel]), training=True)
    finally:
        for layer, m in zip(bns, saved):
            layer.momentum = m


def mix_batch(xin: np.ndarray, y: np.ndarray, w: np.ndarray, fraction: float, teachers,
              temperature: float, rng: np.random.Generator):
    """Function matching with mixup on one batch (``distill.mixup``; Beyer et al., CVPR
    2022, section 3): about ``fraction`` of the rows of ``xin`` (float32 model input
    (n, T, 1, 40), :func:`earshot.train.arch.features_to_input`) become ``lam * a + (1 - lam) * b``
    with ``b`` a random row of the same batch and ``lam ~ U(0, 1)`` per row; their targets
    become the mean over ``teachers`` (Keras models) of sigmoid(logit / ``temperature``) on
    that mixed input, their weights ``lam * w_a + (1 - lam) * w_b``. ``y`` (n,) float32
    targets and ``w`` (n,) float32 weights. Returns (xin, y, w): copies with the other rows
    unchanged (the inputs themselves when no row is drawn); the caller's arrays are never
    written to. ValueError for a fraction outside [0, 1] or without a teacher."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"mixup fraction must be in [0, 1], got {fraction!r}")
    if not teachers:
        raise ValueError("mixup needs at least one teacher")
    n = len(xin)
    rows = np.flatnonzero(rng.random(n) < fraction)
    if n < 2 or not len(rows):
        return xin, y, w
    other = (rows + rng.integers(1, n, size=len(rows))) % n  # never the row itself
    lam = rng.random(len(rows)).astype(np.float32)
    xin, y, w = xin.copy(), y.copy(), w.copy()
    mixed = lam[:, None, None, None] * xin[rows] + (1.0 - lam[:, None, None, None]) * xin[other]
    logits = [np.asarray(t(mixed, training=False)).reshape(-1) for t in teachers]
    y[rows], _ = distill_targets(np.zeros(len(rows), np.float32), logits, 0.0, temperature)
    w[rows] = lam * w[rows] + (1.0 - lam) * w[other]
    xin[rows] = mixed
    return xin, y, w


def _rounded_accuracy(y_true, logit):
    """Keras metric: per window, 1.0 when its logit > 0 agrees with its target > 0.5 (hard
    labels and soft distillation targets alike), else 0.0. ``y_true`` (n,) or (n, 1),
    ``logit`` (n, 1) as the model outputs it; returns float32 (n,), one value per window, so
    the sample weights line up (without flattening, (n,) against (n, 1) would broadcast to
    (n, n))."""
    import keras

    ops = keras.ops
    y_true, logit = ops.reshape(y_true, (-1,)), ops.reshape(logit, (-1,))
    return ops.cast(ops.equal(y_true > 0.5, logit > 0.0), "float32")


def _fit(model, x, y, w, cfg, epochs, lr, log, seed, val=None, callbacks=(), ema=0.0,
         teachers=None):
    """Fit ``model`` on windows ``x`` (int8 (n, frames, 40)), targets ``y`` and weights ``w``
    for ``epochs`` with Adam and a cosine decay from ``lr``. ``ema`` > 0: keep the moving
    average of the trainable weights with that momentum, end with it, then
    :func:`refresh_batchnorm` (``cfg["weight_average"]["bn_batches"]`` batches).
    ``teachers`` (a distilled student's, with ``distill.mixup`` > 0): every batch goes
    through :func:`mix_batch`."""
    import keras

    from earshot.train.arch import features_to_input

    keras.utils.set_random_seed(seed)
    # by name, so a clone of the compiled model (arch.to_tflite_int8) finds the metric
    keras.saving.get_custom_objects()["_rounded_accuracy"] = _rounded_accuracy
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(
                lr, decay_steps=max(1, epochs * (len(x) // cfg["batch_size"] + 1))
            ),
            **({"use_ema": True, "ema_momentum": float(ema)} if ema else {}),
        ),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        # accuracy against the targets rounded at 0.5: a distilled student's soft targets
        # never equal 0 or 1, so BinaryAccuracy (which rounds only the prediction) reads 0
        metrics=[keras.metrics.MeanMetricWrapper(_rounded_accuracy, name="accuracy")],
    )
    batch = cfg["batch_size"]
    rng = np.random.default_rng(seed)
    sa = cfg["spec_augment"]
    masking = bool(int(sa["freq_masks"]) or int(sa["time_masks"]))
    mask_rng = np.random.default_rng([seed, 99])  # its own stream: shuffling is unchanged
    mix = float(cfg["distill"]["mixup"]) if teachers else 0.0
    mix_rng = np.random.default_rng([seed, 98])

    class Data(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = rng.permutation(len(x))

        def __len__(self):
            return (len(x) + batch - 1) // batch

        def __getitem__(self, k):
            sel = np.sort(self.order[k * batch : (k + 1) * batch])
            xb = spec_augment(x[sel], mask_rng, sa) if masking else x[sel]
            xin, yb, wb = features_to_input(xb), y[sel].astype(np.float32), w[sel]
            if mix:
                xin, yb, wb = mix_batch(xin, yb, wb, mix, teachers,
                                        cfg["distill"]["temperature"], mix_rng)
            return xin, yb, wb

        def on_epoch_end(self):
            self.order = rng.permutation(len(x))

    class Log(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log(f"  epoch {epoch + 1}/{epochs}: loss {logs['loss']:.4f} acc "
                f"{logs['accuracy']:.4f}")

    model.fit(Data(), epochs=epochs, verbose=0, callbacks=[Log(), *callbacks])
    if ema:  # fit ended on the averaged weights (Keras's finalize_variable_values)
        refresh_batchnorm(model, x, int(cfg["weight_average"]["bn_batches"]), batch, seed)
        log(f"  weights: moving average (momentum {ema}), BatchNorm statistics estimated again")


def quantize_per_channel(kernel: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel int8 fake quantization of a float kernel, as the TFLite
    converter quantizes weights (scale = max|w| / 127 per channel along ``axis``, values
    rounded to -127..127, zero point 0), returned in float: same shape and dtype.
    Folding a BatchNorm multiplies a channel by one factor, which moves its scale but not
    its grid, so quantizing before the fold is exact."""
    k = np.asarray(kernel)
    other = tuple(a for a in range(k.ndim) if a != axis % k.ndim)
    scale = np.max(np.abs(k), axis=other, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    return (np.clip(np.round(k / scale), -127, 127) * scale).astype(k.dtype)


def weight_qat_callback(model):
    """A Keras callback for quantization-aware training of the weights (straight-through
    estimator; Jacob et al., "Quantization and training of neural networks for efficient
    integer-arithmetic-only inference", CVPR 2018): before each batch every conv, depthwise
    and dense kernel is replaced by its int8 fake quantization Q(w); after the optimizer's
    step (computed at Q(w)), the float kernel becomes w + (step result - Q(w)). Activations
    are not fake-quantized (the converter calibrates them afterwards)."""
    import keras

    targets = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        # Per output channel: the last axis for Conv2D / Dense, the input-channel axis for
        # DepthwiseConv2D (kernel (kh, kw, channels, multiplier 1)).
        axis = 2 if isinstance(layer, keras.layers.DepthwiseConv2D) else -1
        targets.append((kernel, axis))

    class WeightQAT(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.saved = []
            for var, axis in targets:
                w = var.numpy()
                q = quantize_per_channel(w, axis)
                self.saved.append((w, q))
                var.assign(q)

        def on_train_batch_end(self, batch, logs=None):
            for (var, _), (w, q) in zip(targets, self.saved):
                var.assign(w + (var.numpy() - q))

    return WeightQAT()


def teacher_arch(arch_cfg: dict, width: float, channel_dropout: float | None = None) -> dict:
    """``arch_cfg`` with every layer's filters multiplied by ``width`` (same kernels and
    strides, so the same receptive field and windows): the distillation teacher.
    ``channel_dropout`` replaces the student's ``channel_dropout`` when not None; the
    teacher has no ``slimming`` (it is never pruned)."""
    t = copy.deepcopy(arch_cfg)
    t["slimming"] = 0.0  # the teacher is never pruned
    if channel_dropout is not None:
        t["channel_dropout"] = float(channel_dropout)
    t["first"]["filters"] = int(round(t["first"]["filters"] * width))
    for b in t["blocks"]:
        b["filters"] = int(round(b["filters"] * width))
    return t


def distill_targets(y: np.ndarray, teacher_logits, alpha: float, temperature: float):
    """Soft targets of distillation: ``alpha * y + (1 - alpha) * p`` with ``p`` the mean over
    teachers of ``sigmoid(logit / temperature)`` (Hinton, Vinyals and Dean 2015; the mean of
    the teachers' probabilities is their section 2 ensemble). ``y``: (n,) 0/1 labels;
    ``teacher_logits``: one (n,) float array per teacher. Returns (targets float32 (n,), p).
    ValueError without a teacher or with a length that is not n."""
    if not teacher_logits:
        raise ValueError("distill_targets needs at least one teacher's logits")
    if any(len(t) != len(y) for t in teacher_logits):
        raise ValueError(f"every teacher needs {len(y)} logits, got "
                         f"{[len(t) for t in teacher_logits]}")
    temp = float(temperature)
    probs = [1.0 / (1.0 + np.exp(-t / temp)) for t in teacher_logits]
    p = probs[0] if len(probs) == 1 else np.mean(probs, axis=0)
    return (alpha * y + (1.0 - alpha) * p).astype(np.float32), p


# Keys that act only after the teachers (on the students, the detector, the package): a run
# that differs from another only in them can reuse the other's teachers.
_STUDENT_ONLY = {"detector": None, "qat": None, "weight_average": None,
                 "distill": ("alpha", "temperature", "clean_targets", "student_mining",
                             "students", "first_student", "student_epochs", "mixup",
                             "cache_teachers")}


def teacher_cache_key(cfg: dict, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> str:
    """The sha256 (hex) that names a run's cached teachers: the config without
    _STUDENT_ONLY's keys, the training windows ``x`` (int8 (n, frames, 40)), labels ``y``
    and weights ``w`` they are fitted on, the TensorFlow, Keras and NumPy versions, the CPU
    (synth.cpu_info: kernels differ by instruction set) and the source of earshot.train and
    earshot.train.arch (the fitting code). Anything else that changes the teachers changes one of
    these."""
    import hashlib

    import keras
    import tensorflow as tf

    c = copy.deepcopy(cfg)
    for key, sub in _STUDENT_ONLY.items():
        if sub is None:
            c.pop(key, None)
        else:
            for k in sub:
                c.get(key, {}).pop(k, None)
    c.pop("comment", None)
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    h.update(json.dumps({"config": c, "tensorflow": tf.__version__, "keras": keras.__version__,
                         "numpy": np.__version__, "cpu": synth.cpu_info()},
                        sort_keys=True, default=str).encode())
    for name in ("__init__.py", "arch.py"):
        h.update((here / name).read_bytes())
    for a in (x, y, w):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def save_teachers(path: Path, teachers, x_add: np.ndarray, y_add: np.ndarray,
                  w_add: np.ndarray) -> None:
    """Write ``teachers`` (Keras models: every weight, BatchNorm statistics included) and the
    windows their mining added (int8 (m, frames, 40), uint8 (m,), float32 (m,)) to ``path``
    (.npz), through a temporary file and a rename, so a reader never sees half a file."""
    arrays = {"teachers": np.int64(len(teachers)), "x_add": x_add, "y_add": y_add,
              "w_add": w_add}
    for k, t in enumerate(teachers):
        for i, v in enumerate(t.get_weights()):
            arrays[f"t{k}_{i}"] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_teachers(path: Path, build, log):
    """Read :func:`save_teachers`' file: (teachers, x_add, y_add, w_add), each teacher
    ``build(k)`` (a fresh model of the teacher layout) given the saved weights. None, after a
    log line naming the file and the problem, when it is missing, damaged or does not fit
    the layout (the caller trains the teachers again)."""
    import zipfile

    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            teachers = []
            for k in range(int(f["teachers"])):
                t = build(k)
                n = len(t.get_weights())
                t.set_weights([f[f"t{k}_{i}"] for i in range(n)])
                teachers.append(t)
            return teachers, f["x_add"], f["y_add"], f["w_add"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log(f"teacher cache {path} unreadable ({type(exc).__name__}: {exc}): training again")
        return None


def _train_and_mine(model, x, y, w, stream_feats, frames, stride, cfg, log, seed, ema=0.0):
    """Fit ``model``, then ``mining.rounds`` rounds of adding the top-scoring windows of the
    negative streams (weight 2) and fitting again (every fit with :func:`_fit`'s ``ema``).
    Returns the grown (x, y, w)."""
    log(f"training {cfg['epochs']} epochs on {len(x)} windows")
    _fit(model, x, y, w, cfg, cfg["epochs"], cfg["learning_rate"], log, seed, ema=ema)
    mc = cfg["mining"]
    for r in range(mc["rounds"]):
        hard = mine(model, stream_feats, frames, stride, mc["top_k"], log, f"mining round {r + 1}")
        x = np.concatenate([x, hard])
        y = np.concatenate([y, np.zeros(len(hard), np.uint8)])
        w = np.concatenate([w, np.full(len(hard), 2.0, np.float32)])
        _fit(model, x, y, w, cfg, mc["epochs"], mc["learning_rate"], log, seed + r + 1,
             ema=ema)
    return x, y, w


def mine(model, stream_feats, frames: int, stride: int, top_k: int, log, what: str):
    """The ``top_k`` highest-scoring windows of ``model`` among every streaming output of the
    negative streams ``stream_feats`` (int8 (n, 40) each): int8 (top_k, frames, 40).

    The candidates are cut one batch of ``predict`` at a time (the same batches as predicting
    them all at once), so memory holds their logits, not all their windows (4.7 GB for R3's
    streams)."""
    where = np.concatenate([
        np.stack([np.full(len(r), k), r], axis=1)
        for k, r in enumerate(np.arange(frames - 1, len(f), stride) for f in stream_feats)
    ])  # (stream, last row) of every candidate, in stream order

    def windows(sel):
        return np.stack([stream_feats[k][r - frames + 1 : r + 1] for k, r in where[sel]])

    batch = 2048
    logits = np.concatenate([predict(model, windows(np.arange(a, min(a + batch, len(where)))))
                             for a in range(0, len(where), batch)])
    top = np.argsort(-logits)[:top_k]
    log(f"{what}: {int(np.sum(logits > 0))} of {len(where)} negative outputs above p=0.5; "
        f"adding the top {len(top)}")
    return windows(top)


def predict(model, x: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Float logits of the Keras model for int8 windows (N, T, 40): float32 (N,)."""
    from earshot.train.arch import features_to_input

    out = [
        model(features_to_input(x[k : k + batch]), training=False).numpy().ravel()
        for k in range(0, len(x), batch)
    ]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def stream_logits(model, feats: np.ndarray, frames: int, stride: int) -> np.ndarray:
    """Logits at every streaming output of a feature stream (rows frames-1, +stride, ...)."""
    rows = np.arange(frames - 1, len(feats), stride)
    out = []
    for k in range(0, len(rows), 2048):
        out.append(predict(model, windows_ending(feats, rows[k : k + 2048], frames)))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def detections(probs: np.ndarray, cutoff: float, window: int, refractory: int) -> np.ndarray:
    """Indices of outputs where the mean of the last ``window`` probabilities >= ``cutoff``,
    skipping ``refractory`` outputs after each (the C core's posterior rule, in float)."""
    if len(probs) < window:
        return np.zeros(0, np.int64)
    total = np.convolve(probs, np.ones(window), mode="valid")
    hits, last = [], -(10**9)
    for k in np.flatnonzero(total >= cutoff * window - 1e-9):
        if k - last > refractory:
            hits.append(k + window - 1)
            last = k
    return np.asarray(hits, np.int64)


def choose_cutoff(pos_probs, neg_stream_probs, hours: float, det: dict, stride: int, log):
    """Lowest cutoff (0.50..0.99 in 0.01 steps) with false accepts per hour on the validation
    negative streams <= ``det["max_fa_per_hour"]``, plus ``det["margin"]``, at most 0.99.

    ``pos_probs``: (N, k) probabilities of validation positives at their streaming outputs
    around the word end; returns (cutoff, recall at it, false accepts at it). With
    ``det["validation_model"] == "int8"`` (probabilities uint8/255 from :class:`Int8Scorer`)
    each cutoff c is applied as the device applies it, round(c * 255) / 255.
    """
    refractory = int(np.ceil(det["refractory_ms"] / 10 / stride))
    window = det["window"]
    on_device = _validation_model(det) == "int8"

    def at(c):  # es_posterior compares with the uint8 cutoff, round(c * 255)
        return round(float(c) * 255) / 255.0 if on_device else c

    chosen = 0.99
    for c in np.arange(0.50, 0.995, 0.01):
        fa = sum(len(detections(p, at(c), window, refractory)) for p in neg_stream_probs)
        if fa / hours <= det["max_fa_per_hour"]:
            chosen = min(0.99, round(float(c) + det["margin"], 2))
            log(f"lowest cutoff meeting {det['max_fa_per_hour']} false accepts per hour: "
                f"{c:.2f}")
            break
    fa = sum(len(detections(p, at(chosen), window, refractory)) for p in neg_stream_probs)
    recall = float(np.mean([len(detections(p, at(chosen), window, 10**6)) > 0
                            for p in pos_probs]))
    log(f"cutoff {chosen:.2f}: validation recall {recall:.3f}, {fa} false accepts in "
        f"{hours:.2f} h of validation negatives")
    return chosen, recall, fa


def _validation_model(det: dict) -> str:
    """``det["validation_model"]``: "float" (the Keras model) or "int8" (the packaged model
    through the C core, :class:`Int8Scorer`). Raises ValueError for anything else."""
    v = det.get("validation_model", "float")
    if v not in ("float", "int8"):
        raise ValueError(f'config: detector.validation_model must be "float" or "int8", got {v!r}')
    return v


def detector_windows(det: dict) -> list[int]:
    """``det["window"]`` (one window or a list) as a list of windows in model outputs.
    Raises ValueError unless each is an int in 1..32 (ES_MAX_WINDOW in earshot.h)."""
    windows = det["window"] if isinstance(det["window"], list) else [det["window"]]
    if not windows or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 32
                          for w in windows):
        raise ValueError("config: detector.window must be 1..32 outputs or a list of them, "
                         f"got {det['window']!r}")
    return list(windows)


def choose_detector(pos_probs, neg_stream_probs, hours: float, det: dict, stride: int, log):
    """Posterior window and cutoff from the validation data alone.

    ``det["window"]`` is one window (model outputs, 1..32) or a list of them. For each,
    :func:`choose_cutoff` gives its own cutoff. A window whose false accepts at that cutoff
    stay within ``det["max_fa_per_hour"]`` beats one that stays over it even at the 0.99
    cap; then the highest validation recall wins, then fewer validation false accepts, then
    the lower cutoff, then the shorter window (less latency). Returns (window, cutoff,
    recall, false accepts, rows), one row ``{"window", "cutoff", "recall", "false_accepts",
    "within_budget"}`` per window tried.

    Raises ValueError for a window outside 1..32 (ES_MAX_WINDOW in earshot.h).
    """
    windows = detector_windows(det)
    rows = []
    for w in windows:
        if len(windows) > 1:
            log(f"posterior window {w} outputs:")
        c, r, fa = choose_cutoff(pos_probs, neg_stream_probs, hours, {**det, "window": w},
                                 stride, log)
        rows.append({"window": w, "cutoff": c, "recall": round(r, 4), "false_accepts": int(fa),
                     "within_budget": bool(fa / hours <= det["max_fa_per_hour"])})
    best = max(rows, key=lambda t: (t["within_budget"], t["recall"], -t["false_accepts"],
                                    -t["cutoff"], -t["window"]))
    if len(windows) > 1:
        log(f"chosen: window {best['window']}, cutoff {best['cutoff']:.2f}")
    return best["window"], best["cutoff"], best["recall"], best["false_accepts"], rows


# --- pipeline ---------------------------------------------------------------------------------


def train(cfg: dict, out_dir, log=print, cache_dir=None, stage_dir=None) -> dict:
    """Run the whole pipeline for ``cfg`` (see :func:`load_config`) and write the model package
    to ``out_dir``. Returns a summary dict (numbers measured during the run).

    ``cache_dir``: synthetic audio cache (default ``build/synth``). ``stage_dir``: where the
    Keras model, the .tflite and the summary are kept before packaging (default
    ``build/train/<wake word>``), so :func:`package` can be rerun without training.

    Raises ValueError for a bad config, FileNotFoundError when the recordings are missing.
    """
    t_start = time.monotonic()
    threads = int(cfg["threads"])
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # TensorFlow already started in this process (e.g. a test converted a model before):
        # its thread pools are fixed now; training still runs, with those pools.
        log(f"TensorFlow already initialised: keeping its thread settings ({threads} asked)")

    from earshot.train import arch

    seed = int(cfg["seed"])
    tseed = seed if cfg["train_seed"] is None else int(cfg["train_seed"])
    wake_word = cfg["wake_word"]
    arch_cfg = cfg["arch"] or arch.DEFAULT_ARCH
    frames = arch.receptive_field(arch_cfg)
    stride = arch.output_stride(arch_cfg)
    cache_dir = Path(cache_dir or BUILD / "synth")
    sc = cfg["synth"]
    sa = cfg["spec_augment"]
    spec_augment(np.zeros((1, frames, arch_cfg.get("input_bins", arch.MEL_BINS)), np.int8),
                 np.random.default_rng(0), sa)  # a bad mask config fails before any work
    dc = cfg["distill"]
    if dc["clean_targets"] and not dc["width"]:
        raise ValueError("config: distill.clean_targets needs a teacher (distill.width > 0)")
    if isinstance(dc["students"], bool) or not isinstance(dc["students"], int) \
            or dc["students"] < 1 or (dc["students"] > 1 and not dc["width"]):
        raise ValueError("config: distill.students must be an int >= 1, and > 1 only with a "
                         f"teacher (distill.width > 0), got {dc['students']!r}")
    first, epochs = dc["first_student"], dc["student_epochs"]
    if isinstance(first, bool) or not isinstance(first, int) or first < 0 \
            or (first and not dc["width"]):
        raise ValueError("config: distill.first_student must be an int >= 0 and needs a "
                         f"teacher (distill.width > 0), got {first!r}")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1 or not dc["width"]):
        raise ValueError("config: distill.student_epochs must be an int >= 1 (or null) and "
                         f"needs a teacher (distill.width > 0), got {epochs!r}")
    mixup = dc["mixup"]
    if isinstance(mixup, bool) or not isinstance(mixup, (int, float)) \
            or not 0.0 <= mixup <= 1.0 or (mixup and not dc["width"]):
        raise ValueError("config: distill.mixup must be a number in [0, 1] and needs a "
                         f"teacher (distill.width > 0), got {mixup!r}")
    detector_windows(cfg["detector"])  # a bad window fails before any work
    _validation_model(cfg["detector"])
    ema, _ = _weight_average(cfg)

    # 1. synthetic speech
    log(f"synthesising {sc['positives']} positives and {sc['negatives']} negatives")
    pos = synth.generate(
        synth.positive_specs(sc["positives"], seed, wake_word),
        cache_dir / f"{wake_word.replace(' ', '_')}-pos-s{seed}",
        check=sc["check"],
        workers=sc["workers"],
        progress="positives",
        log=log,
    )
    neg = synth.generate(
        synth.negative_specs(sc["negatives"], seed),
        cache_dir / f"neg-s{seed}",
        check=False,
        workers=sc["workers"],
        progress="negatives",
        log=log,
    )
    n_pass = int(cfg["synth_passages"]["count"])
    if n_pass < 0:
        raise ValueError(f"config: synth_passages.count must be >= 0, got {n_pass}")
    passages = synth.generate(
        synth.passage_specs(n_pass, seed, wake_word),
        cache_dir / f"passages-{wake_word.replace(' ', '_')}-s{seed}",
        check=False,
        workers=sc["workers"],
        progress="passages",
        log=log,
    )["audio"] if n_pass else []
    log(f"positives kept {len(pos['audio'])}, dropped {len(pos['dropped'])}")
    if len(pos["audio"]) < 2:
        raise ValueError("fewer than 2 usable synthetic positives: check the TTS engines")

    # 2. real negatives
    rc = cfg["real_negatives"]
    sources = dataset.training_negatives(sources=rc["sources"])
    paths = [p for s in rc["sources"] for p in sources[s]]
    rng = np.random.default_rng([seed, 6])
    if rc["max_clips"] is not None:
        paths = [paths[k] for k in sorted(rng.permutation(len(paths))[: rc["max_clips"]])]
    real, failed = dataset.load_clips(paths)
    val_sources = dataset.training_negatives(part="validation", sources=rc["sources"])
    val_paths = [p for s in rc["sources"] for p in val_sources[s]]
    if rc["max_clips"] is not None:  # a quick run: a quarter as many validation clips
        keep = max(10, rc["max_clips"] // 4)
        val_paths = [val_paths[k] for k in sorted(rng.permutation(len(val_paths))[:keep])]
    val_real, _ = dataset.load_clips(val_paths)
    log(f"real negatives: {len(real)} clips for training ({len(failed)} unreadable), "
        f"{len(val_real)} for validation")
    ctx = _Context(real, cfg)

    # split synthetic positives into train / validation by index (seeded)
    n_pos = len(pos["audio"])
    order = np.random.default_rng([seed, 7]).permutation(n_pos)
    n_val = max(1, int(round(cfg["validation_fraction"] * n_pos)))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])

    t0 = time.monotonic()
    twins = [] if dc["width"] and dc["clean_targets"] else None
    xs, ys = positive_windows(pos, train_idx, cfg, frames, ctx, seed, twins)
    # x's first len(x_twin) rows are these windows; their clean twins give the teachers' targets
    x_twin = np.concatenate(twins) if twins else None
    del twins
    xs_neg = synth_negative_windows(neg, cfg, frames, ctx, seed)
    ys += [np.zeros(len(a), np.uint8) for a in xs_neg]
    xs += xs_neg
    # real negative streams: clean, and an augmented copy (noise, reverb, level)
    n_aug = int(round(rc["augmented_fraction"] * len(real)))
    streams = [stream(real, np.random.default_rng([seed, 8]))]
    if rc["augmented_copy"]:
        arng = np.random.default_rng([seed, 9])
        aug = [
            synth.augment(c, len(c), arng, speech=real, snr_db=(5, 30), **ctx.aug)[0]
            for c in real[:n_aug]
        ]
        streams.append(stream(aug, arng))
    if rc["noisy_copy_snr_db"] is not None:  # speech in broadband noise, every clip
        for k in range(int(rc["noisy_copies"])):
            nrng = np.random.default_rng([seed, 14] if k == 0 else [seed, 14, k])
            streams.append(noisy_stream(real, rc["noisy_copy_snr_db"], nrng))
    hours = len(streams[0]) / 16000 / 3600
    pass_hours = 0.0
    if passages:
        prng = np.random.default_rng([seed, 16])
        aug = [synth.augment(c, len(c), prng, speech=real, snr_db=(5, 30), **ctx.aug)[0]
               for c in passages]
        streams.append(stream(aug, prng))
        pass_hours = len(streams[-1]) / 16000 / 3600
        snr = rc["noisy_copy_snr_db"] or cfg["broadband_snr_db"]
        for k in range(int(cfg["synth_passages"]["noisy_copies"])):
            streams.append(noisy_stream(passages, snr, np.random.default_rng([seed, 17, k])))
    stream_feats = [inputs(s, cfg) for s in streams]
    # validation negatives: clean and with noise/reverb, never fitted
    vrng = np.random.default_rng([seed, 13])
    val_streams = [stream(val_real, vrng)]
    val_streams.append(stream([synth.augment(c, len(c), vrng, speech=real, snr_db=(5, 30))[0]
                               for c in val_real], vrng))
    for k, snr in enumerate(cfg["detector"]["validation_snr_db"]):
        val_streams.append(noisy_stream(val_real, (snr, snr),
                                        np.random.default_rng([seed, 15, k])))
    val_hours = sum(len(s) for s in val_streams) / 16000 / 3600
    for k, f in enumerate(stream_feats):
        off = int(np.random.default_rng([seed, 10, k]).integers(rc["stride_hops"]))
        w = windows_ending(f, range(frames - 1 + off, len(f), rc["stride_hops"]), frames)
        xs.append(w)
        ys.append(np.zeros(len(w), np.uint8))
    xn = noise_windows(cfg["noise_windows"], frames, seed, cfg)
    xs.append(xn)
    ys.append(np.zeros(len(xn), np.uint8))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    del xs, ys
    n1 = int(y.sum())
    log(f"windows: {n1} positive, {len(y) - n1} negative, T={frames} "
        f"({time.monotonic() - t0:.0f} s)")
    weight_pos = cfg["positive_weight"] * (len(y) - n1) / max(1, n1)
    w = np.where(y == 1, weight_pos, 1.0).astype(np.float32)
    w /= w.mean()

    # 3. train, then mine hard negatives on the real negative streams (the teacher first,
    # when distilling: its mined windows are kept for the student, with its soft targets)
    t0 = time.monotonic()
    teacher_info = None
    if dc["width"]:
        t_arch = teacher_arch(arch_cfg, float(dc["width"]), dc["teacher_channel_dropout"])
        n_teachers = int(dc["teachers"])
        if n_teachers < 1:
            raise ValueError(f"config: distill.teachers must be >= 1, got {n_teachers}")
        teachers = []
        cache_state, loaded, t_path = "off", None, None
        if dc["cache_teachers"] and cfg["train_seed"] is not None:
            t_path = cache_dir / "teachers" / \
                f"{wake_word.replace(' ', '_')}-{teacher_cache_key(cfg, x, y, w)[:24]}.npz"
            loaded = load_teachers(
                t_path, lambda k: arch.build_model(t_arch, name=f"teacher{k}" if k else "teacher"),
                log)
        if loaded is not None:
            teachers, x_add, y_add, w_add = loaded
            if len(teachers) != n_teachers:
                raise ValueError(f"teacher cache {t_path}: {len(teachers)} teachers, the config "
                                 f"has {n_teachers}")
            x, y, w = (np.concatenate([x, x_add]), np.concatenate([y, y_add]),
                       np.concatenate([w, w_add]))
            cache_state = "loaded"
            log(f"teachers: {n_teachers} loaded from {t_path} ({len(x_add)} mined windows)")
        else:
            n_before = len(x)
            for k in range(n_teachers):
                # teacher 0 keeps the seed of a single-teacher run
                t_seed = tseed + 100 + 1000 * k
                _seed_init(cfg, t_seed)
                teacher = arch.build_model(t_arch, name=f"teacher{k}" if k else "teacher")
                log(f"teacher {k + 1}/{n_teachers}: filters x{dc['width']}, "
                    f"{arch.macs_per_output(t_arch) * 3 // stride} MACs per 30 ms")
                x, y, w = _train_and_mine(teacher, x, y, w, stream_feats, frames, stride, cfg,
                                          log, t_seed)
                teachers.append(teacher)
            del teacher
            if t_path is not None:
                save_teachers(t_path, teachers, x[n_before:], y[n_before:], w[n_before:])
                cache_state = "saved"
                log(f"teachers saved to {t_path}")
        # after all mining, on every window
        t_logits = [predict(t, x) for t in teachers]
        teacher_info = {}
        if x_twin is not None:
            n_noisy = int(np.sum(np.any(x_twin != x[: len(x_twin)], axis=(1, 2))))
            for t, lg in zip(teachers, t_logits):
                lg[: len(x_twin)] = predict(t, x_twin)
            log(f"clean targets: {n_noisy} of {len(x_twin)} positive-clip windows scored "
                f"without their broadband noise")
            teacher_info["clean_target_windows"] = n_noisy
        targets, soft = distill_targets(y, t_logits, dc["alpha"], dc["temperature"])
        teacher_info |= {"teacher_cache": cache_state,
                         "teacher_macs_per_30ms": int(arch.macs_per_output(t_arch) * 3 // stride),
                         "teacher_train_accuracy": round(float(np.mean((soft > 0.5) == y)), 4)}
        if n_teachers > 1:
            teacher_info["teachers"] = n_teachers
        log(f"teacher accuracy on the training windows {teacher_info['teacher_train_accuracy']}")
        n_students = int(dc["students"])
        first_student = int(dc["first_student"])
        student_epochs = int(dc["student_epochs"] or cfg["epochs"])
        if dc["student_mining"]:
            teacher_info["student_mining"] = int(dc["student_mining"])
    else:
        n_students, first_student, student_epochs = 1, 0, cfg["epochs"]
    train_s = time.monotonic() - t0
    val_feats = [inputs(s, cfg) for s in val_streams]
    det = cfg["detector"]
    qc = cfg["qat"]
    best, selection = None, []
    for k in range(first_student, first_student + n_students):
        # student 0 keeps the seeds of a single-student run
        s_seed = tseed if k == 0 else tseed + 500 + 1000 * k
        t1 = time.monotonic()
        _seed_init(cfg, s_seed)
        model = arch.build_model(arch_cfg)
        if dc["width"]:
            if n_students > 1 or first_student:
                log(f"student {k + 1} ({k - first_student + 1} of {n_students}):")
            log(f"student: training {student_epochs} epochs on {len(x)} distilled targets")
            _fit(model, x, targets, w, cfg, student_epochs, cfg["learning_rate"], log, s_seed,
                 ema=ema, teachers=teachers)
            xk, labels, wk = x, targets, w
            mc = cfg["mining"]
            for r in range(int(dc["student_mining"])):
                hard = mine(model, stream_feats, frames, stride, mc["top_k"], log,
                            f"student mining round {r + 1}")
                t_hard, _ = distill_targets(np.zeros(len(hard), np.uint8),
                                            [predict(t, hard) for t in teachers], dc["alpha"],
                                            dc["temperature"])
                xk = np.concatenate([xk, hard])
                labels = np.concatenate([labels, t_hard])
                wk = np.concatenate([wk, np.full(len(hard), 2.0, np.float32)])
                _fit(model, xk, labels, wk, cfg, mc["epochs"], mc["learning_rate"], log,
                     s_seed + 200 + r, ema=ema, teachers=teachers)
        else:
            x, y, w = _train_and_mine(model, x, y, w, stream_feats, frames, stride, cfg, log,
                                      s_seed, ema=ema)
            xk, labels, wk = x, y, w
        if qc["epochs"]:
            log(f"quantization-aware fine-tuning: {qc['epochs']} epochs")
            _fit(model, xk, labels, wk, cfg, qc["epochs"], qc["learning_rate"], log,
                 s_seed + 50, callbacks=[weight_qat_callback(model)])
        train_s += time.monotonic() - t1

        # 4. int8 conversion and detector settings (training side only)
        rep = xk[np.random.default_rng([seed, 11]).choice(len(xk), size=min(500, len(xk)),
                                                          replace=False)]
        del xk, labels, wk
        with contextlib.redirect_stdout(sys.stderr):  # the converter prints to stdout
            tflite = arch.to_tflite_int8(model, rep)
        pos_probs = validation_probs(model, pos, val_idx, frames, stride, ctx, seed, cfg)
        neg_probs = [_sigmoid(stream_logits(model, f, frames, stride)) for f in val_feats]
        float_rows = None
        if _validation_model(det) == "int8":
            # the float model's choice, for the record; the int8 model's decides
            log("validation on the float model (for comparison):")
            float_rows = choose_detector(pos_probs, neg_probs, val_hours,
                                         {**det, "validation_model": "float"}, stride, log)[4]
            log("validation on the int8 model (the C core, as the device runs it):")
            scorer = Int8Scorer(tflite, cfg, frames, stride)
            pos_probs = validation_probs(None, pos, val_idx, frames, stride, ctx, seed, cfg,
                                         scorer=scorer)
            neg_probs = [scorer.stream(f) for f in val_feats]
        window, cutoff, val_recall, val_fa, window_rows = choose_detector(
            pos_probs, neg_probs, val_hours, det, stride, log)
        run = {"student": k, "model": model, "tflite": tflite, "pos_probs": pos_probs,
               "neg_probs": neg_probs, "window": window, "cutoff": cutoff,
               "validation_recall": round(val_recall, 4), "validation_false_accepts": int(val_fa),
               "validation_within_budget": next(r["within_budget"] for r in window_rows
                                                if r["window"] == window),
               "window_rows": window_rows, "float_window_rows": float_rows}
        selection.append({key: run[key] for key in ("student", "validation_recall",
                                                      "validation_false_accepts",
                                                      "validation_within_budget", "cutoff",
                                                      "window")})
        if n_students > 1 or first_student:
            log(f"student {k + 1}: validation recall {run['validation_recall']:.3f} at "
                f"window {window}, cutoff {cutoff:.2f}")
        # keep only the best so far (one Keras model in memory); a tie keeps the earlier
        if best is None or validation_rank(run) > validation_rank(best):
            best = run
    if dc["width"]:
        del teachers, x_twin
    model, tflite, pos_probs, neg_probs = (best[key] for key in
                                           ("model", "tflite", "pos_probs", "neg_probs"))
    window, cutoff, window_rows = best["window"], best["cutoff"], best["window_rows"]
    val_recall, val_fa = best["validation_recall"], best["validation_false_accepts"]
    within_budget = best["validation_within_budget"]
    refractory = int(np.ceil(det["refractory_ms"] / 10 / stride))
    summary = {
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.monotonic() - t_start, 1),
        "threads": threads,
        "synthetic_positives": n_pos,
        "synthetic_positives_dropped": len(pos["dropped"]),
        "synthetic_negatives": len(neg["audio"]),
        "real_negative_clips": len(real),
        "real_negative_sources": sorted(rc["sources"]),
        "negative_streams": len(streams),
        "real_negative_hours": round(hours, 3),
        "validation_negative_clips": len(val_real),
        "validation_negative_hours": round(val_hours, 3),
        "windows": int(len(y)),
        "validation_recall": round(val_recall, 4),
        "validation_false_accepts": int(val_fa),
        "validation_within_budget": within_budget,
        "cutoff": cutoff,
        "window": window,
        "refractory": refractory,
        "input_norm": int(cfg["input_norm"]),
        "channel_dropout": float(arch_cfg.get("channel_dropout", 0.0)),
    }
    if len(window_rows) > 1:
        summary["window_search"] = window_rows
    summary["validation_model"] = _validation_model(det)
    if best["float_window_rows"] is not None:
        summary["float_window_search"] = best["float_window_rows"]
    if n_students > 1 or first_student:
        summary["students"] = n_students
        summary["student"] = best["student"]
        summary["student_selection"] = selection
    if dc["width"] and student_epochs != cfg["epochs"]:
        summary["student_epochs"] = student_epochs
    if dc["mixup"]:
        summary["mixup"] = float(dc["mixup"])
    if ctx.aug["rirs"] or ctx.aug["clip_p"]:
        summary["room_rirs"] = len(ctx.aug["rirs"] or ())
        summary["clip_fraction"] = ctx.aug["clip_p"]
    if ctx.aug["peak_dbfs"] != synth.PEAK_DBFS:
        summary["peak_dbfs"] = list(ctx.aug["peak_dbfs"])
    if ctx.aug["hf_shelf"]["p"] > 0:
        hf = ctx.aug["hf_shelf"]
        summary["hf_shelf"] = {"p": hf["p"], "hz": list(hf["hz"]), "db": list(hf["db"])}
    if ctx.aug["noise_alpha"] != synth.NOISE_ALPHA:
        summary["noise_alpha"] = list(ctx.aug["noise_alpha"])
    if passages:
        summary["synth_passages"] = len(passages)
        summary["synth_passage_hours"] = round(pass_hours, 3)
    summary["synth_versions"] = synth.stack_versions()
    summary["cpu"] = synth.cpu_info()
    if cfg["train_seed"] is not None:
        summary["train_seed"] = tseed
    if arch_cfg.get("slimming"):
        summary["slimming"] = float(arch_cfg["slimming"])
    if teacher_info is not None:
        summary.update(teacher_info)
    if qc["epochs"]:
        summary["qat_epochs"] = int(qc["epochs"])
    if ema:
        summary["weight_average"] = dict(cfg["weight_average"])
    if int(sa["freq_masks"]) or int(sa["time_masks"]):
        summary["spec_augment"] = {k: int(v) for k, v in sa.items()}
    # Keep the trained network before packaging, so packaging can be redone without training.
    stage = _stage_path(stage_dir, wake_word)
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "model.tflite").write_bytes(tflite)
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    model.save(stage / "model.keras")
    # The validation probabilities, so the detector settings can be chosen again without
    # training: pos (sum of lengths,) float32 with pos_lengths; neg_<k> one array per stream.
    np.savez_compressed(stage / "validation_probs.npz",
                        pos=np.concatenate(pos_probs).astype(np.float32),
                        pos_lengths=np.array([len(p) for p in pos_probs], np.int64),
                        hours=np.float64(val_hours),
                        **{f"neg_{k}": p.astype(np.float32) for k, p in enumerate(neg_probs)})
    _publish(tflite, summary, out_dir, cfg)
    log(f"wrote {out_dir} in {time.monotonic() - t_start:.0f} s")
    return summary


def _stage_path(stage_dir, wake_word: str) -> Path:
    return Path(stage_dir or BUILD / "train" / wake_word.replace(" ", "_"))


def _publish(tflite: bytes, summary: dict, out_dir, cfg: dict) -> None:
    """:func:`package` into ``out_dir``, then its model card: started from :func:`new_card`
    for a new wake word, its numbers block rewritten in any case."""
    man = package(tflite, summary, out_dir, cfg["wake_word"])
    card = Path(out_dir) / "README.md"
    if not card.is_file():
        card.write_text(new_card(cfg["wake_word"], cfg))
    write_card_numbers(card, man)


def validation_rank(summary: dict) -> tuple:
    """Sort key of a training run by its validation numbers only (higher is better): false
    accepts within detector.max_fa_per_hour at its own cutoff (``validation_within_budget``;
    summaries without it count as within), then recall at that cutoff, then fewer validation
    false accepts, then a lower cutoff."""
    return (bool(summary.get("validation_within_budget", True)), summary["validation_recall"],
            -summary["validation_false_accepts"], -summary["cutoff"])


def train_seeds(cfg: dict, out_dir, seeds, log=print, cache_dir=None, stage_dir=None) -> dict:
    """:func:`train` once per ``train_seed`` in ``seeds`` (same data: ``cfg["seed"]``), then
    package the run that :func:`validation_rank` puts first into ``out_dir``. Runs differ by
    more than most recipe changes (models/alexa/HISTORY.md), and the validation split
    ranks them as the development clips do, so the choice uses validation only.

    Each run keeps its own package and stage under ``stage_dir`` (default
    ``build/train/<wake word>``) ``/seed-<s>``. Returns the chosen summary plus
    ``seed_selection``: every run's train_seed, validation recall, false accepts and cutoff.
    Raises ValueError for an empty ``seeds`` and what :func:`train` raises."""
    seeds = [int(x) for x in seeds]
    if not seeds:
        raise ValueError("train_seeds: give at least one seed")
    stage = _stage_path(stage_dir, cfg["wake_word"])
    runs = []
    for k in seeds:
        log(f"train_seed {k} ({len(runs) + 1} of {len(seeds)})")
        run_cfg = copy.deepcopy(cfg)
        run_cfg["train_seed"] = k
        run_stage = stage / f"seed-{k}"
        runs.append((train(run_cfg, run_stage / "package", log, cache_dir, run_stage), run_stage))
    best, best_stage = max(runs, key=lambda r: validation_rank(r[0]))
    summary = dict(best)
    summary["seed_selection"] = [
        {**{key: r[key] for key in ("train_seed", "validation_recall",
                                    "validation_false_accepts", "cutoff")},
         "validation_within_budget": bool(r.get("validation_within_budget", True))}
        for r, _ in runs
    ]
    log(f"chosen on validation: train_seed {best['train_seed']} of {seeds}")
    (best_stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _publish((best_stage / "model.tflite").read_bytes(), summary, out_dir,
             {**cfg, "train_seed": best["train_seed"]})
    return summary


def package(tflite: bytes, summary: dict, out_dir, wake_word: str) -> dict:
    """Blob from ``tflite`` with the detector settings in ``summary`` (cutoff 0..1, window,
    refractory), written with the .tflite and manifest to ``out_dir``. Returns the manifest."""
    from earshot.model import blob, package as modelpkg

    model_blob = blob.from_tflite(
        tflite,
        cutoff=summary["cutoff"],
        window=summary["window"],
        refractory=summary["refractory"],
        input_norm=int(summary.get("input_norm", 0)),
    )
    return modelpkg.write(out_dir, wake_word, model_blob, tflite, training=summary)


CARD_BEGIN = "<!-- train:numbers:begin -->"
CARD_END = "<!-- train:numbers:end -->"


def new_card(wake_word: str, cfg: dict) -> str:
    """Markdown model card for a newly trained wake word: what it is, how it was trained, and
    the CARD_BEGIN/CARD_END block that :func:`write_card_numbers` fills with measured numbers.
    Accuracy on real recordings is not claimed: there are none of a new phrase."""
    sc = cfg["synth"]
    tseed_note = "" if cfg["train_seed"] is None else f", train_seed {cfg['train_seed']}"
    n_pass = int(cfg["synth_passages"]["count"])
    passages = f",\n  {n_pass} TTS passages (`earshot.train.synth.passage_texts`)" if n_pass else ""
    aug = cfg["augment"]
    reverb = (f"{aug['room_rirs']} simulated rooms (`synth.room_rirs`)" if aug["room_rirs"]
              else "exponential-decay reverb")
    clip = f", clipping ({100 * aug['clip_fraction']:g} %)" if aug["clip_fraction"] else ""
    hf = aug["hf_shelf"]
    if float(hf["p"]) > 0:
        clip += (f", high band cut by {-float(hf['db'][1]):g}-{-float(hf['db'][0]):g} dB above "
                 f"{float(hf['hz'][0]) / 1000:g}-{float(hf['hz'][1]) / 1000:g} kHz "
                 f"({100 * float(hf['p']):g} %)")
    if tuple(float(v) for v in aug["noise_alpha"]) != synth.NOISE_ALPHA:
        lo, hi = (float(v) for v in aug["noise_alpha"])
        clip += f", coloured noise 1/f^{lo:g} to 1/f^{hi:g}"
    return f"""# Model card: Earshot "{wake_word}"

| | |
|---|---|
| wake word | "{wake_word}" (English) |
| files | `model.bin` (Earshot blob), `model.tflite` (int8), `manifest.json` (schema 1) |
| network | time-only DS-CNN (`earshot.train.arch`), int8 weights per channel, int8 activations |
| input | 40 int8 log-mel bins per 10 ms hop from the Earshot C frontend |
| detector defaults | `cutoff`, `window`, `refractory` in `manifest.json` (training data only) |
| trained by | `earshot train --wake-word "{wake_word}"`, seed {cfg['seed']}{tseed_note} (`earshot.train`) |

## Training data

- Positives: synthetic only, {sc['positives']} text-to-speech specs of "{wake_word}"
  (espeak-ng, Festival, Flite, Kokoro; `earshot.train.synth`), filtered by the phrase-independent
  checks of `earshot.train.synth.check_positive` (level, clipping, duration); microWakeWord's check
  is used for "alexa" only.
- Negatives: {sc['negatives']} synthetic confusable words and sentences, the training part of
  the real negative speech (`earshot.train.dataset.training_negatives`), noise{passages}.
- Augmentation (`earshot.train.synth.augment`): speed, {reverb},
  band-limits, noise and babble, level{clip}.

## Measured sizes and compute

{CARD_BEGIN}
{CARD_END}
"""


def write_card_numbers(card: Path, man: dict) -> None:
    """Replace the block between CARD_BEGIN and CARD_END of a model card with the measured
    numbers of manifest ``man`` (sizes from the C parser, training times from the run)."""
    t = man.get("training", {})
    rows = [
        ("blob", f"{man['blob_bytes']:,} B (CRC-32 {man['blob_crc32']:#010x})"),
        ("engine RAM (state + scratch)", f"{man['engine_bytes']:,} B"),
        ("receptive field", f"{man['input_frames']} hops ({10 * man['input_frames']} ms)"),
        ("output stride", f"{man['output_stride']} hops ({10 * man['output_stride']} ms)"),
        ("MACs per 30 ms (VAD open)", f"{man['macs_per_30ms']:,}"),
        ("detector defaults", f"cutoff {man['cutoff']:.3f}, window {man['window']} outputs, "
         f"refractory {man['refractory']} outputs"),
    ]
    if t:
        passages = (f"{t['synth_passages']} TTS passages ({t['synth_passage_hours']:.2f} h), "
                    if t.get("synth_passages") else "")
        rows += [
            ("training time", f"{t['train_seconds']:.0f} s fitting, {t['total_seconds']:.0f} s "
             f"in all (data, fit, mining, conversion), {t['threads']} "
             f"thread{'s' if t['threads'] != 1 else ''}; synthetic audio cached beforehand"),
            ("training data", f"{t['synthetic_positives']} synthetic positives "
             f"({t['synthetic_positives_dropped']} dropped by the sanity filter), "
             f"{t['synthetic_negatives']} synthetic negatives, {passages}"
             f"{t['real_negative_clips']} real negative clips "
             f"({t['real_negative_hours']:.2f} h), {t['windows']:,} windows"),
            ("validation (synthetic positives; real negatives not fitted, clean + noisy)",
             f"recall {100 * t['validation_recall']:.1f} %, "
             f"{t['validation_false_accepts']} false accepts in "
             f"{t.get('validation_negative_hours', 0):.2f} h"
             + (f", scored on the {t['validation_model']} model" if "validation_model" in t
                else "")),
        ]
    body = "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    text = card.read_text()
    if CARD_BEGIN not in text or CARD_END not in text:
        raise ValueError(f"{card}: markers {CARD_BEGIN} / {CARD_END} not found")
    head, rest = text.split(CARD_BEGIN, 1)
    tail = rest.split(CARD_END, 1)[1]
    card.write_text(f"{head}{CARD_BEGIN}\n{body}\n{CARD_END}{tail}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))
