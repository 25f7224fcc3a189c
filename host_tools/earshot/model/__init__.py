"""A model blob parsed by the C core, and its streaming engine, from CPython (ctypes).

``Model(blob)`` runs ``es_model_parse`` on a private, 4-byte aligned copy of the blob that it
keeps alive as long as the Model (the parsed model points into it); ``Engine(model)`` wraps
``es_engine_*`` over a buffer it owns. Both use the same C code the device runs.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from earshot import core

MEL_BINS = core.MEL_BINS

_INFO_FIELDS = [
    ("format_version", ctypes.c_uint16),
    ("n_layers", ctypes.c_uint16),
    ("input_frames", ctypes.c_uint16),
    ("input_bins", ctypes.c_uint16),
    ("output_stride", ctypes.c_uint16),
    ("cutoff", ctypes.c_uint8),
    ("window", ctypes.c_uint8),
    ("refractory", ctypes.c_uint16),
    ("macs_per_output", ctypes.c_uint32),
    ("engine_bytes", ctypes.c_uint32),
    ("payload_bytes", ctypes.c_uint32),
    ("input_norm", ctypes.c_uint8),
    ("reserved", ctypes.c_uint8 * 3),
]


class es_model_info_t(ctypes.Structure):
    _fields_ = _INFO_FIELDS


def _lib() -> ctypes.CDLL:
    so = core.lib()
    c, p, sz = ctypes, ctypes.c_void_p, ctypes.c_size_t
    sigs = {
        "es_model_mem_size": (sz, []),
        "es_model_parse": (p, [p, sz, p, sz, c.POINTER(c.c_char_p)]),
        "es_model_get_info": (None, [p, c.POINTER(es_model_info_t)]),
        "es_model_probability": (c.c_uint8, [p, c.c_int8]),
        "es_engine_mem_size": (sz, [p]),
        "es_engine_init": (p, [p, sz, p]),
        "es_engine_reset": (None, [p]),
        "es_engine_push": (c.c_int, [p, p, p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(so, name)
        fn.restype = res
        fn.argtypes = args
    return so


class Model:
    """A validated model blob.

    ``Model(blob, name=None)``: ``blob`` is bytes-like (the file ``models/<word>/model.bin``;
    TypeError otherwise); ``name``, where it came from (a file path), starts the message of
    a refusal. Raises ValueError ``"[<name>: ]bad model blob: <reason>"`` with the C parser's
    reason ("bad magic", "payload CRC mismatch", "blob truncated ...") for a bad blob; see
    also :meth:`from_file`. Attributes: ``blob`` (bytes), ``info`` (dict of every
    es_model_info_t field: format_version, n_layers, input_frames [hops], input_bins,
    output_stride [hops], cutoff [probability * 255], window [outputs], refractory
    [outputs], macs_per_output, engine_bytes, payload_bytes, input_norm [0, or 1/2: es_norm
    first, 2 with its noise gate]), ``handle`` (the es_model_t* as ctypes.c_void_p, for
    other ctypes wrappers such as earshot.core; valid while this object lives).
    """

    def __init__(self, blob, name: str | None = None):
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob must be bytes-like, got {type(blob).__name__}")
        self.blob = bytes(blob)
        so = _lib()
        # An 8-byte aligned private copy (ctypes buffers are malloc'd): the C model keeps
        # pointers into it, so it lives as long as this object.
        self._blob_buf = ctypes.create_string_buffer(self.blob, max(len(self.blob), 1))
        self._mem = ctypes.create_string_buffer(so.es_model_mem_size())
        why = ctypes.c_char_p()
        handle = so.es_model_parse(
            self._mem,
            ctypes.sizeof(self._mem),
            self._blob_buf,
            len(self.blob),
            ctypes.byref(why),
        )
        if not handle:
            reason = why.value.decode() if why.value else "unknown error"
            raise ValueError(f"{name + ': ' if name else ''}bad model blob: {reason}")
        self.handle = ctypes.c_void_p(handle)
        info = es_model_info_t()
        so.es_model_get_info(self.handle, ctypes.byref(info))
        self.info = {n: int(getattr(info, n)) for n, _ in _INFO_FIELDS if n != "reserved"}

    @classmethod
    def from_file(cls, path) -> "Model":
        """The blob in file ``path``, parsed; ValueError ``"<path>: bad model blob: ..."``
        when the C parser refuses it, OSError when the file cannot be read."""
        return cls(Path(path).read_bytes(), name=str(path))

    def probability(self, logit: int) -> int:
        """uint8 probability (0..255) of an int8 logit, from the blob's logistic table."""
        if not -128 <= int(logit) <= 127:
            raise ValueError(f"logit must be int8, got {logit}")
        return int(_lib().es_model_probability(self.handle, int(logit)))


class Engine:
    """The streaming engine of a Model: one int8 feature row (40 bins) in per 10 ms hop.

    After hop n (counted from 0 since creation or ``reset()``) it outputs an int8 logit when
    n >= input_frames - 1 and (n - input_frames + 1) is a multiple of output_stride; that
    logit equals the non-streaming network on feature rows n - input_frames + 1 .. n.
    """

    def __init__(self, model: Model):
        if not isinstance(model, Model):
            raise TypeError(f"Engine needs an earshot.model.Model, got {type(model).__name__}")
        so = _lib()
        self.model = model  # keeps the blob alive
        self._mem = ctypes.create_string_buffer(so.es_engine_mem_size(model.handle))
        handle = so.es_engine_init(self._mem, ctypes.sizeof(self._mem), model.handle)
        if not handle:
            raise RuntimeError("es_engine_init failed")
        self._handle = ctypes.c_void_p(handle)
        self._out = ctypes.c_int8()
        self.hops = 0

    def reset(self) -> None:
        """Clear all layer state (as after creation)."""
        _lib().es_engine_reset(self._handle)
        self.hops = 0

    @staticmethod
    def _rows(features) -> np.ndarray:
        x = np.asarray(features)
        if x.dtype != np.int8:
            raise ValueError(f"features must be int8, got {x.dtype}")
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != MEL_BINS:
            raise ValueError(f"features must have shape (n, {MEL_BINS}), got {x.shape}")
        return np.ascontiguousarray(x)

    def push(self, row) -> int | None:
        """Feed one hop of features (int8, shape (40,)); return the int8 logit if this hop
        produced an output, else None. Raises ValueError for a wrong dtype or shape."""
        x = self._rows(row)
        if x.shape[0] != 1:
            raise ValueError(f"push takes one row of {MEL_BINS} features, got {x.shape[0]}")
        self.hops += 1
        so = _lib()
        if so.es_engine_push(self._handle, x.ctypes.data, ctypes.byref(self._out)):
            return int(self._out.value)
        return None

    def run(self, features) -> tuple[np.ndarray, np.ndarray]:
        """Feed int8 features (n, 40), continuing the stream. Returns (hop_indices int64,
        logits int8): the hops (0-based within this call) that produced an output, and the
        logits. Raises ValueError for a wrong dtype or shape."""
        x = self._rows(features)
        so = _lib()
        push, handle, out = so.es_engine_push, self._handle, ctypes.byref(self._out)
        base = x.ctypes.data
        hops, logits = [], []
        for i in range(x.shape[0]):
            if push(handle, base + i * MEL_BINS, out):
                hops.append(i)
                logits.append(self._out.value)
        self.hops += x.shape[0]
        return np.array(hops, dtype=np.int64), np.array(logits, dtype=np.int8)
