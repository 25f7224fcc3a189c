"""The core's VAD (es_vad.c; rule and units in earshot.h) over int8 log-mel features, through
ctypes: the gate, and every per-hop quantity it decides on."""

from __future__ import annotations

import ctypes

import numpy as np

from earshot.core import constants as k
from earshot.core.library import (
    es_vad_params_t,
    es_vad_state_t,
    int8_features,
    lib,
    params_dict,
)

#: Names of the VAD parameters (es_vad_params_t's fields, in order).
VAD_PARAMS = tuple(name for name, _ in es_vad_params_t._fields_)
#: es_vad_state_t's floors and excess are in Q4: 1/16 feature steps.
Q4 = 16


def vad(features, **params):
    """Run the core's VAD over int8 ``features``, shape (n_hops, MEL_BINS), from a fresh
    state.

    Returns ``(gate, floor)``: gate uint8 (n_hops,), 1 where the gate is open; floor float64
    (n_hops, MEL_BINS), each bin's noise floor after each hop (int8 feature steps of
    0.376 dB). Keyword parameters (names in VAD_PARAMS, units in earshot.h's es_vad_params_t)
    override the C defaults (es_vad_default_params). Raises ValueError for features of the
    wrong dtype/shape, an unknown parameter, or parameters the core rejects.
    """
    trace = vad_trace(features, **params)
    return trace["gate"], trace["floor"]


def vad_trace(features, **params) -> dict:
    """As :func:`vad`, with every per-hop quantity (es_vad_get_state after each hop):
    ``gate`` and ``speech`` (uint8 (n_hops,), the gate and the hop's own speech-like
    decision), ``excess`` (float64 (n_hops,), mean clamped per-bin SNR in steps, the quantity
    compared with ``onset``) and ``floor`` (float64 (n_hops, MEL_BINS), steps). Raises
    ValueError as :func:`vad`."""
    f = int8_features(features)
    so = lib()
    p = _params(so, params)
    mem = ctypes.create_string_buffer(so.es_vad_mem_size())
    handle = so.es_vad_init(mem, ctypes.sizeof(mem), ctypes.byref(p))
    if not handle:
        raise ValueError(f"VAD parameters rejected by es_vad_init: {params_dict(p)}")
    n = len(f)
    gate = np.zeros(n, dtype=np.uint8)
    # One es_vad_state_t per hop, written in place by the C code.
    states = np.zeros(n, dtype=np.dtype(es_vad_state_t))
    row, state = f.ctypes.data, states.ctypes.data
    for i in range(n):
        gate[i] = so.es_vad_update(handle, row + i * k.MEL_BINS)
        so.es_vad_get_state(handle, state + i * states.itemsize)
    return {
        "gate": gate,
        "speech": states["speech"].copy(),
        "excess": states["excess_q4"] / Q4 / k.MEL_BINS,
        "floor": states["floor_q4"] / Q4,
    }


def _params(so: ctypes.CDLL, params: dict) -> es_vad_params_t:
    unknown = sorted(set(params) - set(VAD_PARAMS))
    if unknown:
        raise ValueError(f"unknown VAD parameter(s) {unknown}; known: {list(VAD_PARAMS)}")
    p = es_vad_params_t()
    so.es_vad_default_params(ctypes.byref(p))
    for name, value in params.items():
        if value is not None:
            setattr(p, name, int(value))
            if getattr(p, name) != int(value):
                raise ValueError(f"VAD parameter {name}={value} does not fit its C type")
    return p


def vad_defaults() -> dict:
    """The C VAD defaults (es_vad_default_params; es_vad.c gives each one's reason) as a
    dict keyed by VAD_PARAMS."""
    params = es_vad_params_t()
    lib().es_vad_default_params(ctypes.byref(params))
    return params_dict(params)
