"""Offline scoring through the same C core the device runs (ctypes).

The result of :func:`score_samples` is what ``earshot score --json`` prints for a file; its
detections equal those the virtual board reports for the same audio (tests/test_e2e_board.py).
"""

import itertools
from pathlib import Path

import numpy as np

from earshot import audio, core
from earshot.model import Model, package as modelpkg
from earshot.paths import MODELS

HOP_S = core.HOP_S  # one feature hop, s
#: Seconds of digital silence :func:`score_file` appends by default, as ``earshot eval`` pads
#: its positives (:data:`earshot.evaluate.PAD_S`; eval also pads the start, which would shift
#: every time reported here): a clip that ends right after the word still lets the model see
#: the word's end and the posterior window fill.
PAD_S = 1.0


def default_model_dir() -> Path:
    return MODELS / "alexa"


def load_model(path=None) -> tuple[float, bytes]:
    """(cutoff as a probability 0..1, blob bytes) of ``path``: a package folder, or a blob
    file, inside its package (the manifest's cutoff) or alone (the cutoff in its header).
    ``None``: the default model. Raises ValueError naming the file and the problem."""
    man, blob, _ = modelpkg.load_blob(path or default_model_dir())
    if man is not None:
        return float(man["cutoff"]), blob
    return Model(blob).info["cutoff"] / 255.0, blob


def score_samples(samples: np.ndarray, model_dir=None, *, vad: bool = True) -> dict:
    """Score int16 mono 16 kHz samples, shape (n,), with the model in ``model_dir`` (a package
    folder or a blob file, :func:`load_model`).

    Returns a dict: ``duration_s`` (float, s), ``step_s`` (s between two scores: the model's
    output stride in hops x 10 ms), ``scores`` (probability 0..1 after each step, 0 while the
    VAD gate kept the model off), ``cutoff`` (0..1, the manifest's, or the blob's alone),
    ``detections`` (s from the start to the end of the hop in which each detection fired),
    ``vad_duty`` (fraction of hops in which the model ran). Raises ValueError for a bad model
    package or blob.
    """
    return score_blocks([samples], model_dir, vad=vad)


def score_blocks(blocks, model_dir=None, *, vad: bool = True) -> dict:
    """:func:`score_samples` of the concatenation of ``blocks`` (an iterable of int16 mono
    16 kHz arrays), one block at a time: memory holds one block plus the scores (4 bytes
    of Python float per 60 ms step), whatever the length. A partial hop at the end of a
    block carries over to the next; the result equals scoring the whole at once."""
    cutoff, blob = load_model(model_dir)
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
        "cutoff": round(cutoff, 4),
        "detections": detections,
        "vad_duty": round(stats["model_hops"] / stats["hops"], 4) if stats["hops"] else 0.0,
    }


def score_file(path, model_dir=None, *, vad: bool = True, notify=None,
               pad_s: float = PAD_S) -> dict:  # fmt: skip
    """Score ``path`` (any wav/flac; resampled to 16 kHz mono) a block at a time
    (:func:`earshot.audio.blocks`, :func:`score_blocks`): bounded memory for files of any
    length. ``pad_s`` seconds of silence are scored after the file (:data:`PAD_S`; 0: none);
    ``duration_s`` is the file's own length. Adds ``file`` and ``pad_s``. Raises AudioError
    for a bad file, ValueError for a bad model."""
    if not pad_s >= 0:
        raise ValueError(f"pad must be 0 or more seconds, got {pad_s}")
    tail = np.zeros(round(pad_s * core.SAMPLE_RATE_HZ), np.int16)
    out = {"file": str(path)}
    blocks = itertools.chain(audio.blocks(path, notify=notify), [tail])
    out.update(score_blocks(blocks, model_dir, vad=vad))
    out["duration_s"] = round(out["duration_s"] - len(tail) / core.SAMPLE_RATE_HZ, 4)
    out["pad_s"] = pad_s
    return out
