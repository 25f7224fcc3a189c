"""The C core as a shared library: build, load, ctypes declarations of the public API.

The core is built as ``build/libearshot.so`` by the root Makefile (``make lib``); :func:`lib`
runs that build when the library is missing or older than any ``firmware/core`` source, so
training features are always computed by the same C code the device runs, bit for bit.

Only ``firmware/core/earshot.h`` is declared here: the functions in :data:`SIGNATURES` and
the public structs below, each a ctypes mirror named after its C type. Loading checks the
mirrors' sizes and :mod:`earshot.core.constants` against the library's own report
(``es_core_get_info``); tests/test_frontend.py also checks every field offset with a C
compiler.
"""

from __future__ import annotations

import ctypes
import fcntl
import subprocess
from pathlib import Path

import numpy as np

from earshot.core import constants
from earshot.paths import BUILD, FIRMWARE, ROOT

LIB_PATH = BUILD / "libearshot.so"
CORE_DIR = FIRMWARE / "core"

_lib: ctypes.CDLL | None = None


class CoreBuildError(RuntimeError):
    """``make lib`` failed; the message carries the compiler's output."""


class CoreMismatchError(RuntimeError):
    """The loaded library disagrees with :mod:`earshot.core.constants` or with a ctypes
    struct mirror (a stale build, or earshot.h changed without the host side)."""


# --- public structs of earshot.h ---------------------------------------------------------------


class es_core_info_t(ctypes.Structure):
    """earshot.h's constants and public struct sizes (es_core_get_info)."""

    _fields_ = [
        ("version_major", ctypes.c_uint16),
        ("version_minor", ctypes.c_uint16),
        ("sample_rate_hz", ctypes.c_uint32),
        ("window_samples", ctypes.c_uint16),
        ("hop_samples", ctypes.c_uint16),
        ("mel_bins", ctypes.c_uint16),
        ("max_window", ctypes.c_uint16),
        ("flag_vad", ctypes.c_uint8),
        ("flag_ran", ctypes.c_uint8),
        ("flag_output", ctypes.c_uint8),
        ("flag_detect", ctypes.c_uint8),
        ("norm_minstat", ctypes.c_uint8),
        ("norm_minstat_gate", ctypes.c_uint8),
        ("vad_prime_hops", ctypes.c_uint16),
        ("sizeof_core_info", ctypes.c_uint16),
        ("sizeof_model_info", ctypes.c_uint16),
        ("sizeof_detector_config", ctypes.c_uint16),
        ("sizeof_detector_stats", ctypes.c_uint16),
        ("sizeof_vad_params", ctypes.c_uint16),
        ("sizeof_vad_state", ctypes.c_uint16),
        ("flag_gate", ctypes.c_uint8),
        ("gate_preroll_hops", ctypes.c_uint8),
        ("gate_decimate", ctypes.c_uint16),
    ]


class es_detector_config_t(ctypes.Structure):
    """Detector settings: cutoff (probability * 255), window (outputs), refractory
    (outputs), vad_enabled (0/1), gate_enabled (0/1: the first stage)."""

    _fields_ = [
        ("cutoff", ctypes.c_uint8),
        ("window", ctypes.c_uint8),
        ("refractory", ctypes.c_uint16),
        ("vad_enabled", ctypes.c_uint8),
        ("gate_enabled", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 2),
    ]


class es_detector_stats_t(ctypes.Structure):
    """Detector counters since init/reset, in hops (detections: a count; rows: feature rows
    finalised, which trail hops by up to GATE_PREROLL_HOPS while the first stage is
    closed)."""

    _fields_ = [
        ("hops", ctypes.c_uint32),
        ("model_hops", ctypes.c_uint32),
        ("detections", ctypes.c_uint32),
        ("vad_open_hops", ctypes.c_uint32),
        ("gate_open_hops", ctypes.c_uint32),
        ("frontend_hops", ctypes.c_uint32),
        ("rows", ctypes.c_uint32),
    ]


class es_vad_params_t(ctypes.Structure):
    """VAD parameters (units in earshot.h: feature steps of 0.376 dB, hops, shifts)."""

    _fields_ = [
        ("onset", ctypes.c_int8),
        ("min_floor", ctypes.c_int8),
        ("hangover", ctypes.c_uint16),
        ("down_shift", ctypes.c_uint8),
        ("up_shift", ctypes.c_uint8),
        ("cap", ctypes.c_uint8),
        ("confirm", ctypes.c_uint8),
    ]


class es_vad_state_t(ctypes.Structure):
    """The VAD's state after its last hop (es_vad_get_state): floors and excess in 1/16
    feature steps (Q4)."""

    _fields_ = [
        ("floor_q4", ctypes.c_int16 * constants.MEL_BINS),
        ("excess_q4", ctypes.c_int32),
        ("hold", ctypes.c_uint16),
        ("primed", ctypes.c_uint8),
        ("run", ctypes.c_uint8),
        ("speech", ctypes.c_uint8),
        ("open", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 2),
    ]


#: Each mirror and the es_core_info_t field holding its C size.
STRUCTS = {
    es_core_info_t: "sizeof_core_info",
    es_detector_config_t: "sizeof_detector_config",
    es_detector_stats_t: "sizeof_detector_stats",
    es_vad_params_t: "sizeof_vad_params",
    es_vad_state_t: "sizeof_vad_state",
}

# --- functions of earshot.h ----------------------------------------------------------------

_p, _sz, _c = ctypes.c_void_p, ctypes.c_size_t, ctypes
#: name -> (restype, argtypes). Handles and buffers are void pointers (addresses or buffers).
SIGNATURES = {
    "es_core_get_info": (None, [_c.POINTER(es_core_info_t)]),
    "es_frontend_mem_size": (_sz, []),
    "es_frontend_init": (_p, [_p, _sz]),
    "es_frontend_reset": (None, [_p]),
    "es_frontend_run": (None, [_p, _p, _sz, _p]),
    "es_crc32": (_c.c_uint32, [_c.c_uint32, _p, _sz]),
    "es_norm_mem_size": (_sz, []),
    "es_norm_init": (_p, [_p, _sz, _c.c_uint]),
    "es_norm_reset": (None, [_p]),
    "es_norm_run": (None, [_p, _p, _sz, _p]),
    "es_vad_default_params": (None, [_c.POINTER(es_vad_params_t)]),
    "es_vad_mem_size": (_sz, []),
    "es_vad_init": (_p, [_p, _sz, _c.POINTER(es_vad_params_t)]),
    "es_vad_reset": (None, [_p]),
    "es_vad_update": (_c.c_int, [_p, _p]),
    "es_vad_get_state": (None, [_p, _p]),
    "es_posterior_mem_size": (_sz, []),
    "es_posterior_init": (_p, [_p, _sz, _c.c_uint8, _c.c_uint8, _c.c_uint16]),
    "es_posterior_clear": (None, [_p]),
    "es_posterior_push": (_c.c_int, [_p, _c.c_uint8]),
    "es_detector_mem_size": (_sz, [_p]),
    "es_detector_init": (_p, [_p, _sz, _p, _c.POINTER(es_detector_config_t)]),
    "es_detector_reset": (None, [_p]),
    "es_detector_run": (_sz, [_p, _p, _sz, _p, _p]),
    "es_detector_get_stats": (None, [_p, _c.POINTER(es_detector_stats_t)]),
    "es_detector_rows": (_sz, [_p, _c.c_uint32, _sz, _p]),
}


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
            check=False,
        )
        if proc.returncode != 0:
            raise CoreBuildError(f"make lib failed:\n{proc.stdout}{proc.stderr}")


def _declare(so: ctypes.CDLL) -> None:
    for name, (res, args) in SIGNATURES.items():
        fn = getattr(so, name)
        fn.restype = res
        fn.argtypes = args


def _read_info(so: ctypes.CDLL) -> es_core_info_t:
    # A buffer larger than the mirror: a library with a bigger struct cannot write past it.
    buf = ctypes.create_string_buffer(max(256, ctypes.sizeof(es_core_info_t)))
    so.es_core_get_info(ctypes.cast(buf, ctypes.POINTER(es_core_info_t)))
    return es_core_info_t.from_buffer_copy(buf)


def _check(info: es_core_info_t) -> None:
    bad = [
        f"{name} = {getattr(constants, name)} here, {getattr(info, field)} in the library"
        for name, field in constants.CHECKED.items()
        if getattr(constants, name) != getattr(info, field)
    ]
    bad += [
        f"sizeof({cls.__name__}) = {ctypes.sizeof(cls)} here, {getattr(info, field)} in C"
        for cls, field in STRUCTS.items()
        if ctypes.sizeof(cls) != getattr(info, field)
    ]
    if constants.HOP_SAMPLES * 1000 % constants.SAMPLE_RATE_HZ:
        bad.append("a hop is not a whole number of milliseconds (constants.HOP_MS)")
    if bad:
        raise CoreMismatchError(f"{LIB_PATH} disagrees with earshot.core: " + "; ".join(bad))


def lib() -> ctypes.CDLL:
    """Return the loaded core library, building it first (``make -s -C ROOT lib``) if it is
    missing or older than any ``firmware/core`` source. Raises CoreBuildError if the build
    fails, CoreMismatchError if the library's constants or struct sizes differ from
    :mod:`earshot.core.constants` and the ctypes mirrors here."""
    global _lib
    if _lib is None:
        if _stale(LIB_PATH):
            _build()
        so = ctypes.CDLL(str(LIB_PATH))
        _declare(so)
        _check(_read_info(so))
        _lib = so
    return _lib


def library_info() -> dict:
    """What the loaded library reports (es_core_get_info): the version (``version_major``,
    ``version_minor``), the frontend constants and the ``sizeof_*`` of the public structs, in
    bytes."""
    return params_dict(_read_info(lib()))


def params_dict(s: ctypes.Structure) -> dict:
    """A ctypes struct's fields as a dict, without ``reserved``."""
    return {name: getattr(s, name) for name, _ in s._fields_ if name != "reserved"}


def int16_samples(samples) -> np.ndarray:
    """``samples`` as a C-contiguous 1-D int16 array; ValueError for another dtype or shape."""
    samples = np.asarray(samples)
    if samples.dtype != np.int16:
        raise ValueError(f"samples must be int16 PCM, got dtype {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"samples must be 1-D (mono), got shape {samples.shape}")
    return np.ascontiguousarray(samples)


def int8_features(features) -> np.ndarray:
    """``features`` as a C-contiguous int8 array of shape (n_hops, MEL_BINS); ValueError for
    another dtype or shape."""
    f = np.asarray(features)
    if f.dtype != np.int8 or f.ndim != 2 or f.shape[1] != constants.MEL_BINS:
        raise ValueError(
            f"features must be int8 of shape (n_hops, {constants.MEL_BINS}), "
            f"got {f.dtype} {f.shape}"
        )
    return np.ascontiguousarray(f)


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    """The address of a numpy array's data, for a ``void *`` argument."""
    return ctypes.c_void_p(a.ctypes.data)
