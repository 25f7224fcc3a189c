"""Offline scoring through the same C core the device runs (ctypes).

The result of :func:`score_samples` is what ``earshot score --json`` prints for a file; its
detections equal those the virtual board reports for the same audio (tests/test_e2e_board.py).
"""

from pathlib import Path

import numpy as np

from earshot import audio, core
from earshot.model import Model, package as modelpkg
from earshot.paths import MODELS

HOP_S = core.HOP_S  # one feature hop, s


def default_model_dir() -> Path:
    return MODELS / "alexa"


def score_samples(samples: np.ndarray, model_dir=None, *, vad: bool = True) -> dict:
    """Score int16 mono 16 kHz samples, shape (n,), with the model package in ``model_dir``.

    Returns a dict: ``duration_s`` (float, s), ``step_s`` (s between two scores: the model's
    output stride in hops x 10 ms), ``scores`` (probability 0..1 after each step, 0 while the
    VAD gate kept the model off), ``cutoff`` (0..1, the manifest's), ``detections`` (s from the
    start to the end of the hop in which each detection fired), ``vad_duty`` (fraction of
    hops in which the model ran). Raises ValueError for a bad model package.
    """
    manifest, blob = modelpkg.load(model_dir or default_model_dir())
    model = Model(blob)
    det = core.Detector(model, vad=vad)
    res = det.run(np.ascontiguousarray(samples, dtype=np.int16))
    n_hops = len(res.probs)
    stride = int(model.info["output_stride"])
    idx = np.arange(stride - 1, n_hops, stride)
    stats = det.stats
    return {
        "duration_s": round(len(samples) / core.SAMPLE_RATE_HZ, 4),
        "step_s": round(stride * HOP_S, 4),
        "scores": [round(float(p) / 255.0, 4) for p in res.probs[idx]],
        "cutoff": round(float(manifest["cutoff"]), 4),
        "detections": [round((int(i) + 1) * HOP_S, 2) for i in res.detections],
        "vad_duty": round(stats["model_hops"] / stats["hops"], 4) if stats["hops"] else 0.0,
    }


def score_file(path, model_dir=None, *, vad: bool = True, notify=None) -> dict:
    """Load ``path`` (any wav/flac; resampled to 16 kHz mono) and score it; adds ``file``."""
    samples = audio.load(path, notify=notify)
    out = {"file": str(path)}
    out.update(score_samples(samples, model_dir, vad=vad))
    return out
