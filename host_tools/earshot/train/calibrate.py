"""Detector settings chosen on validation data, and the choice between training runs.

The validation data (:class:`earshot.train.data.ValidationSet`) are the synthetic validation
positives, the real positives of ``real_positives.validation_folds`` (when a config names
them) and the validation part of the real negatives, which training never fits. They are
scored with the float Keras model and, by default (``detector.validation_model`` "int8"), with
the int8 model through the C core as the device runs it (:class:`Int8Scorer`);
:func:`choose_detector` then picks the posterior window and cutoff (config ``detector``), and
:func:`validation_rank` orders students and seeds by those validation numbers alone.
"""

from __future__ import annotations

import numpy as np

from earshot.core import HOP_MS, MAX_WINDOW
from earshot.model import Engine, Model
from earshot.model.tflite import from_tflite
from earshot.train import augmentation
from earshot.train.mining import predict, stream_logits
from earshot.train.windows import end_row, inputs, windows_ending


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) in float64, same shape as ``z``."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def validation_probs(model, cache, idx, frames, stride, ctx, seed, cfg,
                     scorer=None, whole: bool = False, stream: int = 12) -> list[np.ndarray]:
    """Per validation positive: probabilities at the streaming outputs from 300 ms before to
    400 ms after the end of the word (one augmented copy each, as in training, drawn from
    ``[seed, stream, i]``). ``whole``: ``cache["end"]`` is each clip's length (a real
    recording, whose word end is not known) and the outputs run from the clip's start (the
    context before it left out) to 400 ms after its end.

    ``model``: the float Keras model, scored by :func:`predict`; or, with ``scorer`` (an
    :class:`Int8Scorer`), the int8 model as the device runs it (``model`` is then unused)."""
    out = []
    for i in idx:
        rng = np.random.default_rng([seed, stream, int(i)])
        pre = ctx.pre(rng, frames)
        raw = np.concatenate([pre, cache["audio"][i], np.zeros(8000, np.int16)])
        aug, aug_end = augmentation.augment(raw, len(pre) + int(cache["end"][i]), rng,
                                            speech=ctx.clips)
        feats = inputs(aug, cfg)
        e = end_row(aug_end)
        if whole:  # the first output row after the clip's start (moved by the speed change)
            lo = end_row(len(pre) * aug_end / (len(pre) + int(cache["end"][i])))
            first = frames - 1 + -(-max(0, lo - (frames - 1)) // stride) * stride
        else:
            first = frames - 1 + ((max(frames - 1, e - 30) - (frames - 1)) // stride) * stride
        rows = np.arange(first, min(len(feats), e + 41), stride)
        if scorer is not None:
            out.append(scorer.at_rows(feats, rows))
        else:
            out.append(sigmoid(predict(model, windows_ending(feats, rows, frames))))
    return out


class Int8Scorer:
    """Probabilities of the int8 model as the device computes them: the .tflite converted to a
    blob (:func:`earshot.model.tflite.from_tflite`), run by the C core's streaming engine
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
        self.model = Model(from_tflite(tflite, cutoff=0.5, window=1, refractory=0,
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


def refractory_outputs(det: dict, stride: int) -> int:
    """``det["refractory_ms"]`` in model outputs of ``stride`` hops (``core.HOP_MS``, 10 ms,
    each), rounded up."""
    return int(np.ceil(det["refractory_ms"] / HOP_MS / stride))


def choose_cutoff(pos_probs, neg_stream_probs, hours: float, det: dict, stride: int, log):
    """Lowest cutoff (0.50..0.99 in 0.01 steps) with false accepts per hour on the validation
    negative streams <= ``det["max_fa_per_hour"]``, plus ``det["margin"]``, at most 0.99.

    ``pos_probs``: (N, k) probabilities of validation positives at their streaming outputs
    around the word end; returns (cutoff, recall at it, false accepts at it). With
    ``det["validation_model"] == "int8"`` (probabilities uint8/255 from :class:`Int8Scorer`)
    each cutoff c is applied as the device applies it, round(c * 255) / 255.
    """
    refractory = refractory_outputs(det, stride)
    window = det["window"]
    on_device = validation_model(det) == "int8"

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


def recall_at(pos_probs, cutoff: float, window: int, det: dict) -> float:
    """Fraction of ``pos_probs`` (one array of probabilities per positive) with a detection
    at ``cutoff`` and ``window`` (the cutoff as the device applies it when
    ``det["validation_model"]`` is "int8"); 0.0 for no positive."""
    c = round(float(cutoff) * 255) / 255.0 if validation_model(det) == "int8" else cutoff
    if not len(pos_probs):
        return 0.0
    return float(np.mean([len(detections(p, c, window, 10**6)) > 0 for p in pos_probs]))


def validation_model(det: dict) -> str:
    """``det["validation_model"]``: "float" (the Keras model) or "int8" (the packaged model
    through the C core, :class:`Int8Scorer`). Raises ValueError for anything else."""
    v = det.get("validation_model", "float")
    if v not in ("float", "int8"):
        raise ValueError(f'config: detector.validation_model must be "float" or "int8", got {v!r}')
    return v


def detector_windows(det: dict) -> list[int]:
    """``det["window"]`` (one window or a list) as a list of windows in model outputs.
    Raises ValueError unless each is an int in 1..``core.MAX_WINDOW`` (32, ES_MAX_WINDOW in
    earshot.h)."""
    windows = det["window"] if isinstance(det["window"], list) else [det["window"]]
    if not windows or any(isinstance(w, bool) or not isinstance(w, int)
                          or not 1 <= w <= MAX_WINDOW for w in windows):
        raise ValueError(f"config: detector.window must be 1..{MAX_WINDOW} outputs or a list "
                         f"of them, got {det['window']!r}")
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



def validation_rank(summary: dict) -> tuple:
    """Sort key of a training run by its validation numbers only (higher is better): false
    accepts within detector.max_fa_per_hour at its own cutoff (``validation_within_budget``;
    summaries without it count as within), then recall at that cutoff, then fewer validation
    false accepts, then a lower cutoff."""
    return (bool(summary.get("validation_within_budget", True)), summary["validation_recall"],
            -summary["validation_false_accepts"], -summary["cutoff"])


def validate(model, tflite: bytes, val, cfg: dict, frames: int, stride: int, log) -> dict:
    """Detector settings of one trained network from the validation set ``val``
    (:class:`earshot.train.data.ValidationSet`): the Keras ``model`` scores it, and with
    ``detector.validation_model`` "int8" the int8 ``tflite`` through the C core
    (:class:`Int8Scorer`) scores it again and decides, the float model's choice kept for the
    record. The real validation positives (``val.real``, each scored whole, draws of stream
    31) count in the recall as the synthetic ones do. Returns {"pos_probs", "neg_probs" (the
    deciding probabilities), "window", "cutoff", "validation_recall",
    "validation_false_accepts", "validation_within_budget", "window_rows",
    "float_window_rows" (None unless int8 decided), "validation_real_recall" (their recall
    at the chosen settings, None without them), "validation_real_positives" (their
    number)}."""
    det, seed = cfg["detector"], int(cfg["seed"])
    n_real = len(val.real["audio"]) if getattr(val, "real", None) else 0

    def positives(scorer=None):
        probs = validation_probs(model, val.pos, val.idx, frames, stride, val.ctx, seed, cfg,
                                 scorer=scorer)
        if n_real:
            probs += validation_probs(model, val.real, range(n_real), frames, stride, val.ctx,
                                      seed, cfg, scorer=scorer, whole=True, stream=31)
        return probs

    pos_probs = positives()
    neg_probs = [sigmoid(stream_logits(model, f, frames, stride)) for f in val.feats]
    float_rows = None
    if validation_model(det) == "int8":
        # the float model's choice, for the record; the int8 model's decides
        log("validation on the float model (for comparison):")
        float_rows = choose_detector(pos_probs, neg_probs, val.hours,
                                     {**det, "validation_model": "float"}, stride, log)[4]
        log("validation on the int8 model (the C core, as the device runs it):")
        scorer = Int8Scorer(tflite, cfg, frames, stride)
        pos_probs = positives(scorer)
        neg_probs = [scorer.stream(f) for f in val.feats]
    window, cutoff, val_recall, val_fa, window_rows = choose_detector(
        pos_probs, neg_probs, val.hours, det, stride, log)
    return {"pos_probs": pos_probs, "neg_probs": neg_probs, "window": window, "cutoff": cutoff,
            "validation_recall": round(val_recall, 4), "validation_false_accepts": int(val_fa),
            "validation_within_budget": next(r["within_budget"] for r in window_rows
                                             if r["window"] == window),
            "window_rows": window_rows, "float_window_rows": float_rows,
            "validation_real_recall": (round(recall_at(pos_probs[len(pos_probs) - n_real:],
                                                       cutoff, window, det), 4)
                                       if n_real else None),
            "validation_real_positives": n_real}
