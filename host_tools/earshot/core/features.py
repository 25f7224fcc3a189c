"""What a model sees: the core's log-mel frontend (es_frontend.c), its input normalisation
(es_norm.c) and CRC-32 (es_crc32.c), through ctypes."""

from __future__ import annotations

import ctypes

import numpy as np

from earshot.core import constants as k
from earshot.core.library import int8_features, int16_samples, lib, ptr


def features(samples) -> np.ndarray:
    """Log-mel features of int16 mono ``samples`` at SAMPLE_RATE_HZ (16 kHz), shape
    (n_samples // HOP_SAMPLES, MEL_BINS) = (n_samples // 160, 40), int8: steps of 0.376 dB
    (8 per octave of power, es_tables.h), -128 for digital silence.

    Row i is the 30 ms window ending with the last sample of hop i (zeros before the
    start), exactly as on the device (es_frontend_run). A partial trailing hop is dropped.
    Raises ValueError if ``samples`` is not a 1-D int16 array.
    """
    x = int16_samples(samples)
    so = lib()
    n_hops = x.shape[0] // k.HOP_SAMPLES
    out = np.empty((n_hops, k.MEL_BINS), dtype=np.int8)
    mem = ctypes.create_string_buffer(so.es_frontend_mem_size())
    fe = so.es_frontend_init(mem, ctypes.sizeof(mem))
    if not fe:
        raise RuntimeError("es_frontend_init failed")
    if n_hops:
        so.es_frontend_run(fe, ptr(x), n_hops, ptr(out))
    return out


def normalize(features, mode: int = k.NORM_MINSTAT) -> np.ndarray:
    """The core's input normalisation (es_norm.c) over int8 log-mel ``features``, shape
    (n_hops, MEL_BINS), from a fresh state: int8 level above each bin's minimum over the last
    0.8 to 1.6 s (minimum statistics, R. Martin 2001), same shape (-128 = at the floor, steps
    of 0.376 dB). ``mode``: NORM_MINSTAT (1), or NORM_MINSTAT_GATE (2): the level less each
    bin's noise gate (es_norm.c), -128 below it. Raises ValueError for a bad shape, dtype or
    mode."""
    f = int8_features(features)
    if int(mode) not in (k.NORM_MINSTAT, k.NORM_MINSTAT_GATE):
        raise ValueError(f"input_norm mode must be {k.NORM_MINSTAT} or {k.NORM_MINSTAT_GATE}, "
                         f"got {mode}")
    so = lib()
    mem = ctypes.create_string_buffer(so.es_norm_mem_size())
    n = so.es_norm_init(mem, ctypes.sizeof(mem), int(mode))
    out = np.empty_like(f)
    if len(f):
        so.es_norm_run(n, ptr(f), len(f), ptr(out))
    return out


def model_features(samples, input_norm: int = 0) -> np.ndarray:
    """What a model sees for int16 ``samples`` in a fresh detector: ``features(samples)``,
    then ``normalize(..., input_norm)`` when ``input_norm`` (a model's info["input_norm"])
    is not 0. Shape (n_samples // HOP_SAMPLES, MEL_BINS), int8. Raises ValueError as those two
    do."""
    f = features(samples)
    return normalize(f, input_norm) if input_norm else f


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 (IEEE 802.3, as ``zlib.crc32``) of bytes-like ``data`` continuing from ``crc``,
    by es_crc32; an int in 0..2**32 - 1."""
    buf = bytes(data)
    return int(lib().es_crc32(crc & 0xFFFFFFFF, buf, len(buf)))
