"""Hard-negative mining: score the negative streams, keep what the model gets most wrong.

:func:`mine` scores every streaming output of the real (and TTS passage) negative streams and
returns the ``mining.top_k`` highest-scoring windows; :func:`fit_and_mine` fits a model, then
adds those windows (label 0, weight 2) and fits again for ``mining.rounds`` rounds (config
``mining``: rounds, top_k, epochs, learning_rate). :func:`predict` and :func:`stream_logits`
run the float Keras model on int8 windows.
"""

from __future__ import annotations

import numpy as np

from earshot.train import arch
from earshot.train.fit import fit_model
from earshot.train.windows import windows_ending


def fit_and_mine(model, x, y, w, stream_feats, frames, stride, cfg, log, seed, ema=0.0):
    """Fit ``model``, then ``mining.rounds`` rounds of adding the top-scoring windows of the
    negative streams (weight 2) and fitting again (every fit with :func:`fit_model`'s
    ``ema``). Returns the grown (x, y, w)."""
    log(f"training {cfg['epochs']} epochs on {len(x)} windows")
    fit_model(model, x, y, w, cfg, cfg["epochs"], cfg["learning_rate"], log, seed, ema=ema)
    mc = cfg["mining"]
    for r in range(mc["rounds"]):
        hard = mine(model, stream_feats, frames, stride, mc["top_k"], log, f"mining round {r + 1}")
        x = np.concatenate([x, hard])
        y = np.concatenate([y, np.zeros(len(hard), np.uint8)])
        w = np.concatenate([w, np.full(len(hard), 2.0, np.float32)])
        fit_model(model, x, y, w, cfg, mc["epochs"], mc["learning_rate"], log, seed + r + 1,
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
    out = [
        model(arch.features_to_input(x[k : k + batch]), training=False).numpy().ravel()
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
