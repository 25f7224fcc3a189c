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
    return score_blocks([samples], model_dir, vad=vad)


def score_blocks(blocks, model_dir=None, *, vad: bool = True) -> dict:
    """:func:`score_samples` of the concatenation of ``blocks`` (an iterable of int16 mono
    16 kHz arrays), one block at a time: memory holds one block plus the scores (4 bytes
    of Python float per 60 ms step), whatever the length. A partial hop at the end of a
    block carries over to the next; the result equals scoring the whole at once."""
    manifest, blob = modelpkg.load(model_dir or default_model_dir())
    model = Model(blob)
    det = core.Detector(model, vad=vad)
    stride = int(model.info["output_stride"])
    scores, detections = [], []
    hops = samples = 0
    carry = np.zeros(0, np.int16)
    for block in blocks:
        x = np.concatenate([carry, np.ascontiguousarray(block, dtype=np.int16)])
        samples += len(block)
        n = len(x) // core.HOP_SAMPLES * core.HOP_SAMPLES
        res = det.run(x[:n])
        carry = x[n:]
        # Scores after every stride-th hop of the whole stream (hop index h: (h + 1) % stride
        # == 0), whichever block it falls in.
        idx = np.arange((stride - 1 - hops) % stride, len(res.probs), stride)
        scores += [round(float(p) / 255.0, 4) for p in res.probs[idx]]
        detections += [round((hops + int(i) + 1) * HOP_S, 2) for i in res.detections]
        hops += len(res.probs)
    stats = det.stats
    return {
        "duration_s": round(samples / core.SAMPLE_RATE_HZ, 4),
        "step_s": round(stride * HOP_S, 4),
        "scores": scores,
        "cutoff": round(float(manifest["cutoff"]), 4),
        "detections": detections,
        "vad_duty": round(stats["model_hops"] / stats["hops"], 4) if stats["hops"] else 0.0,
    }


def score_file(path, model_dir=None, *, vad: bool = True, notify=None) -> dict:
    """Score ``path`` (any wav/flac; resampled to 16 kHz mono) a block at a time
    (:func:`earshot.audio.blocks`, :func:`score_blocks`): bounded memory for files of any
    length. Adds ``file``. Raises AudioError for a bad file, ValueError for a bad model."""
    out = {"file": str(path)}
    out.update(score_blocks(audio.blocks(path, notify=notify), model_dir, vad=vad))
    return out
