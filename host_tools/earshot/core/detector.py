"""Detection from the C core through ctypes: posterior smoothing (es_posterior.c) on its own,
and the whole detector (es_detector.c: first-stage gate, frontend, VAD gate, input
normalisation, streaming engine, posterior)."""

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
    """The core's detector (es_detector.c) for one model: first-stage gate, frontend, VAD
    gate, streaming engine, posterior smoothing. State carries across :meth:`run` calls.

    ``model`` is an ``earshot.model.Model`` (its ``handle`` is the parsed es_model_t; the
    Detector keeps a reference so the blob outlives it). ``cutoff`` (a probability in (0, 1]
    as a float, or probability * 255 as an int 1..255), ``window`` (outputs, 1..MAX_WINDOW =
    32) and ``refractory`` (outputs, 0..65535) default to the blob's. ``vad=False`` runs the
    model on every hop the frontend runs live. ``gate`` (default: as ``vad``, so ``vad=False``
    still runs the model on every hop) turns the first stage on or off (off: the frontend
    runs on every hop, as before core 0.4; earshot.h, "Detector": while the first
    stage is closed only every GATE_DECIMATE-th hop's features are computed, and a
    GATE_PREROLL_HOPS-hop raw pre-roll is caught up when it opens). Raises TypeError if
    ``model`` is not a Model, ValueError for out-of-range settings or a model the detector
    cannot run.
    """

    def __init__(
        self, model, cutoff=None, window=None, refractory=None, vad: bool = True,
        gate: bool | None = None,
    ):  # fmt: skip
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
        cfg.gate_enabled = 1 if (vad if gate is None else gate) else 0
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

    def run_rows(self, samples) -> tuple[DetectorResult, np.ndarray]:
        """:meth:`run` over ``samples`` (as there), in chunks short enough that every feature
        row the detector finalises is read back (:meth:`rows`) before it leaves the detector.
        Returns the DetectorResult and int8 rows of shape (stats["rows"] - rows before the
        call, MEL_BINS): the model-input rows of those hops, in hop order, i.e. what the model
        was (or would have been) fed, decimated rows included; the last GATE_PREROLL_HOPS
        hops' rows may come in the next call (first stage closed). On-device adaptation reads
        the same rows (firmware/modules/es_adapt.py), so host and board see the same windows."""
        x = int16_samples(samples)
        info = self.model.info
        kept = info["input_frames"] + info["output_stride"] - 1
        chunk = max(1, kept - k.GATE_PREROLL_HOPS - 1) * k.HOP_SAMPLES
        parts, rows = [], []
        got = self.stats["rows"]
        for at in range(0, max(len(x) - len(x) % k.HOP_SAMPLES, 0), chunk):
            parts.append(self.run(x[at : at + chunk]))
            now = self.stats["rows"]
            if now > got:
                rows.append(self.rows(got, now - got))
                got = now
        res = DetectorResult(
            np.concatenate([p.probs for p in parts]) if parts else np.zeros(0, np.uint8),
            np.concatenate([p.flags for p in parts]) if parts else np.zeros(0, np.uint8),
        )
        res.detections = [int(i) for i in np.flatnonzero(res.flags & k.FLAG_DETECT)]
        feats = np.concatenate(rows) if rows else np.zeros((0, k.MEL_BINS), np.int8)
        return res, feats

    def reset(self) -> None:
        """Back to the state after construction (history, gate, engine, posterior, stats)."""
        self._so.es_detector_reset(self._handle)

    def rows(self, first: int, n: int) -> np.ndarray | None:
        """The model-input feature rows (int8, shape (n, MEL_BINS): after the model's input
        normalisation) of hops ``first`` .. ``first + n - 1``, counted from construction or
        reset, as the detector finalised them (es_detector_rows); None if any is not finalised
        yet (``stats["rows"]``) or no longer kept (the last input_frames + output_stride - 1
        rows are)."""
        out = np.zeros((max(n, 0), k.MEL_BINS), dtype=np.int8)
        if n <= 0 or self._so.es_detector_rows(self._handle, first, n, ptr(out)) != n:
            return None
        return out

    @property
    def stats(self) -> dict:
        """hops, model_hops, detections, vad_open_hops, gate_open_hops, frontend_hops (hops),
        rows (feature rows finalised) since construction or reset."""
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
