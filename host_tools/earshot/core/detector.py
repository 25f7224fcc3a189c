"""Detection from the C core through ctypes: posterior smoothing (es_posterior.c) on its own,
and the whole detector (es_detector.c: frontend, VAD gate, streaming engine, posterior)."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

from earshot.core import constants as k
from earshot.core.library import (
    es_detector_config_t,
    es_detector_stats_t,
    int16_samples,
    lib,
    params_dict,
    ptr,
)


def posterior(probs, cutoff: int, window: int, refractory: int) -> np.ndarray:
    """Run the core's posterior smoothing (es_posterior.c, rule in earshot.h, after
    microWakeWord / ESPHome micro_wake_word) over uint8 model outputs ``probs`` (1-D,
    probability * 255), from a fresh state. ``cutoff``: probability * 255, 1..255;
    ``window``: outputs averaged, 1..MAX_WINDOW (32); ``refractory``: outputs ignored after a
    detection, 0..65535.

    Returns uint8, same shape as ``probs``, 1 at each output that fired a detection. Raises
    ValueError for probs not 1-D uint8 or parameters the core rejects.
    """
    p = np.asarray(probs)
    if p.dtype != np.uint8 or p.ndim != 1:
        raise ValueError(f"probs must be 1-D uint8, got {p.dtype} {p.shape}")
    if not (0 <= cutoff <= 255 and 0 <= window <= 255 and 0 <= refractory <= 65535):
        raise ValueError("cutoff and window must fit uint8, refractory uint16")
    so = lib()
    mem = ctypes.create_string_buffer(so.es_posterior_mem_size())
    handle = so.es_posterior_init(mem, ctypes.sizeof(mem), cutoff, window, refractory)
    if not handle:
        raise ValueError(
            f"posterior parameters rejected: cutoff={cutoff} (1..255), window={window} "
            f"(1..{k.MAX_WINDOW})"
        )
    return np.array([so.es_posterior_push(handle, int(v)) for v in p], np.uint8)


@dataclass
class DetectorResult:
    """Per-hop output of :meth:`Detector.run`.

    probs: uint8 (n_hops,), latest model probability (0..255) after each hop, 0 while the
    gate keeps the model off. flags: uint8 (n_hops,), FLAG_* bits. detections: hop indices
    (0-based within this call) where a detection fired.
    """

    probs: np.ndarray
    flags: np.ndarray
    detections: list[int] = field(default_factory=list)


class Detector:
    """The core's detector (es_detector.c) for one model: frontend, VAD gate, streaming
    engine, posterior smoothing. State carries across :meth:`run` calls.

    ``model`` is an ``earshot.model.Model`` (its ``handle`` is the parsed es_model_t; the
    Detector keeps a reference so the blob outlives it). ``cutoff`` (a probability in (0, 1]
    as a float, or probability * 255 as an int 1..255), ``window`` (outputs, 1..MAX_WINDOW =
    32) and ``refractory`` (outputs, 0..65535) default to the blob's. ``vad=False`` runs the
    model on every hop. Raises TypeError if ``model`` is not a Model, ValueError for
    out-of-range settings or a model the detector cannot run.
    """

    def __init__(self, model, cutoff=None, window=None, refractory=None, vad: bool = True):
        self.model = model
        self._so = lib()
        handle = getattr(model, "handle", None)
        if handle is None or not isinstance(getattr(model, "info", None), dict):
            raise TypeError(f"Detector needs an earshot.model.Model, got {type(model).__name__}")
        info = model.info
        cfg = es_detector_config_t()
        cfg.cutoff = _cutoff_u8(info["cutoff"] if cutoff is None else cutoff)
        win = int(info["window"] if window is None else window)
        refr = int(info["refractory"] if refractory is None else refractory)
        if not 1 <= win <= k.MAX_WINDOW:
            raise ValueError(f"window must be 1..{k.MAX_WINDOW} outputs, got {window}")
        if not 0 <= refr <= 65535:
            raise ValueError(f"refractory must be 0..65535 outputs, got {refractory}")
        cfg.window, cfg.refractory = win, refr
        cfg.vad_enabled = 1 if vad else 0
        self.config = params_dict(cfg)
        size = self._so.es_detector_mem_size(handle)
        if size == 0:
            raise ValueError("es_detector_mem_size: the model is not usable by the detector")
        self._mem = ctypes.create_string_buffer(size)
        self._handle = self._so.es_detector_init(self._mem, size, handle, ctypes.byref(cfg))
        if not self._handle:
            raise ValueError(f"es_detector_init rejected the configuration {self.config}")

    def run(self, samples) -> DetectorResult:
        """Process int16 mono ``samples`` at SAMPLE_RATE_HZ (16 kHz), continuing from the
        previous call; a partial trailing hop (under HOP_SAMPLES) is dropped. Returns a
        DetectorResult with one entry per hop. Raises ValueError for a wrong dtype or shape."""
        x = int16_samples(samples)
        n = x.shape[0] // k.HOP_SAMPLES
        probs = np.zeros(n, dtype=np.uint8)
        flags = np.zeros(n, dtype=np.uint8)
        if n:
            self._so.es_detector_run(self._handle, ptr(x), n, ptr(probs), ptr(flags))
        detections = [int(i) for i in np.flatnonzero(flags & k.FLAG_DETECT)]
        return DetectorResult(probs, flags, detections)

    def reset(self) -> None:
        """Back to the state after construction (history, gate, engine, posterior, stats)."""
        self._so.es_detector_reset(self._handle)

    @property
    def stats(self) -> dict:
        """hops, model_hops, detections, vad_open_hops since construction or reset."""
        s = es_detector_stats_t()
        self._so.es_detector_get_stats(self._handle, ctypes.byref(s))
        return params_dict(s)


def _cutoff_u8(cutoff) -> int:
    """A cutoff as es_detector_config_t takes it (probability * 255, 1..255) from a float
    probability in (0, 1] or an int 1..255; ValueError otherwise."""
    if isinstance(cutoff, float):
        if not 0.0 < cutoff <= 1.0:
            raise ValueError(f"cutoff must be in (0, 1] as a probability, got {cutoff}")
        return max(1, round(cutoff * 255))
    if not 1 <= int(cutoff) <= 255:
        raise ValueError(f"cutoff must be 1..255 as an integer, got {cutoff}")
    return int(cutoff)
