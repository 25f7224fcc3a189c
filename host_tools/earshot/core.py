"""The Earshot C core from CPython (ctypes): features, detector, CRC-32.

The core is built as ``build/libearshot.so`` by the root Makefile (``make lib``); :func:`lib`
runs that build when the library is missing or older than any ``firmware/core`` source, so
training features are always computed by the same C code the device runs, bit for bit.
"""

from __future__ import annotations

import ctypes
import fcntl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earshot.paths import BUILD, FIRMWARE, ROOT

#: Mirrors of firmware/core/earshot.h (tests/test_frontend.py checks them against the header).
SAMPLE_RATE_HZ = 16000
WINDOW_SAMPLES = 480
HOP_SAMPLES = 160
MEL_BINS = 40
MAX_WINDOW = 32
FLAG_VAD = 1 << 0
FLAG_RAN = 1 << 1
FLAG_OUTPUT = 1 << 2
FLAG_DETECT = 1 << 3

LIB_PATH = BUILD / "libearshot.so"
CORE_DIR = FIRMWARE / "core"

_lib: ctypes.CDLL | None = None


class CoreBuildError(RuntimeError):
    """``make lib`` failed; the message carries the compiler's output."""


def _stale(path: Path) -> bool:
    if not path.is_file():
        return True
    built = path.stat().st_mtime
    sources = [*CORE_DIR.glob("*.c"), *CORE_DIR.glob("*.h"), CORE_DIR / "core.mk"]
    return any(s.stat().st_mtime > built for s in sources)


def _build() -> None:
    BUILD.mkdir(parents=True, exist_ok=True)
    # Several processes (pytest workers, tools) may ask at once: build under a lock.
    with open(BUILD / ".libearshot.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _stale(LIB_PATH):
            return
        env_build = [] if BUILD == ROOT / "build" else [f"BUILD={BUILD}"]
        proc = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "lib", *env_build],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise CoreBuildError(f"make lib failed:\n{proc.stdout}{proc.stderr}")


class es_detector_config_t(ctypes.Structure):  # noqa: N801 (C name)
    _fields_ = [
        ("cutoff", ctypes.c_uint8),
        ("window", ctypes.c_uint8),
        ("refractory", ctypes.c_uint16),
        ("vad_enabled", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    ]


class es_detector_stats_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("hops", ctypes.c_uint32),
        ("model_hops", ctypes.c_uint32),
        ("detections", ctypes.c_uint32),
        ("vad_open_hops", ctypes.c_uint32),
    ]


class es_vad_params_t(ctypes.Structure):  # noqa: N801 (es_internal.h)
    _fields_ = [
        ("onset", ctypes.c_int16),
        ("min_floor", ctypes.c_int16),
        ("hangover", ctypes.c_uint16),
        ("down_shift", ctypes.c_uint8),
        ("up_shift", ctypes.c_uint8),
    ]


class es_vad_t(ctypes.Structure):  # noqa: N801 (es_internal.h)
    _fields_ = [
        ("p", es_vad_params_t),
        ("floor_q4", ctypes.c_int32),
        ("hold", ctypes.c_uint16),
        ("primed", ctypes.c_uint8),
        ("open", ctypes.c_uint8),
    ]


class es_posterior_t(ctypes.Structure):  # noqa: N801 (es_internal.h)
    _fields_ = [
        ("ring", ctypes.c_uint8 * MAX_WINDOW),
        ("sum", ctypes.c_uint16),
        ("pos", ctypes.c_uint8),
        ("window", ctypes.c_uint8),
        ("cutoff", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
        ("refractory", ctypes.c_uint16),
        ("ignore", ctypes.c_uint16),
    ]


def _declare(so: ctypes.CDLL) -> None:
    c = ctypes
    p, sz = c.c_void_p, c.c_size_t
    sigs = {
        "es_frontend_mem_size": (sz, []),
        "es_frontend_init": (p, [p, sz]),
        "es_frontend_reset": (None, [p]),
        "es_frontend_run": (None, [p, p, sz, p]),
        "es_crc32": (c.c_uint32, [c.c_uint32, p, sz]),
        "es_vad_default_params": (None, [c.POINTER(es_vad_params_t)]),
        "es_vad_init": (c.c_int, [c.POINTER(es_vad_t), c.POINTER(es_vad_params_t)]),
        "es_vad_update": (c.c_int, [c.POINTER(es_vad_t), p]),
        "es_posterior_init": (
            c.c_int,
            [c.POINTER(es_posterior_t), c.c_uint8, c.c_uint8, c.c_uint16],
        ),
        "es_posterior_push": (c.c_int, [c.POINTER(es_posterior_t), c.c_uint8]),
        "es_posterior_clear": (None, [c.POINTER(es_posterior_t)]),
        "es_detector_mem_size": (sz, [p]),
        "es_detector_init": (p, [p, sz, p, c.POINTER(es_detector_config_t)]),
        "es_detector_reset": (None, [p]),
        "es_detector_run": (sz, [p, p, sz, p, p]),
        "es_detector_get_stats": (None, [p, c.POINTER(es_detector_stats_t)]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(so, name, None)
        if fn is None:  # a part of the core not built yet: declared when present
            continue
        fn.restype = res
        fn.argtypes = args


def lib() -> ctypes.CDLL:
    """Return the loaded core library, building it first (``make -s -C ROOT lib``) if it is
    missing or older than any ``firmware/core`` source. Raises CoreBuildError if the build
    fails."""
    global _lib
    if _lib is None:
        if _stale(LIB_PATH):
            _build()
        so = ctypes.CDLL(str(LIB_PATH))
        _declare(so)
        _lib = so
    return _lib


def _int16_samples(samples) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise ValueError(f"samples must be int16 PCM, got dtype {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"samples must be 1-D (mono), got shape {samples.shape}")
    return np.ascontiguousarray(samples)


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def features(samples) -> np.ndarray:
    """Log-mel features of int16 mono 16 kHz ``samples``, shape (n_samples // 160, 40), int8.

    Row i is the 30 ms window ending with the last sample of hop i (zeros before the
    start), exactly as on the device (es_frontend_run). A partial trailing hop is dropped.
    Raises ValueError if ``samples`` is not a 1-D int16 array.
    """
    x = _int16_samples(samples)
    so = lib()
    n_hops = x.shape[0] // HOP_SAMPLES
    out = np.empty((n_hops, MEL_BINS), dtype=np.int8)
    mem = ctypes.create_string_buffer(so.es_frontend_mem_size())
    fe = so.es_frontend_init(mem, ctypes.sizeof(mem))
    if not fe:
        raise RuntimeError("es_frontend_init failed")
    if n_hops:
        so.es_frontend_run(fe, _ptr(x), n_hops, _ptr(out))
    return out


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 of ``data`` continuing from ``crc`` (as ``zlib.crc32``), by es_crc32."""
    buf = bytes(data)
    return int(lib().es_crc32(crc & 0xFFFFFFFF, buf, len(buf)))
