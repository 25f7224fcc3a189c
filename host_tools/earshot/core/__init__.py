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
            check=False,
        )
        if proc.returncode != 0:
            raise CoreBuildError(f"make lib failed:\n{proc.stdout}{proc.stderr}")


class es_detector_config_t(ctypes.Structure):
    _fields_ = [
        ("cutoff", ctypes.c_uint8),
        ("window", ctypes.c_uint8),
        ("refractory", ctypes.c_uint16),
        ("vad_enabled", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 3),
    ]


class es_detector_stats_t(ctypes.Structure):
    _fields_ = [
        ("hops", ctypes.c_uint32),
        ("model_hops", ctypes.c_uint32),
        ("detections", ctypes.c_uint32),
        ("vad_open_hops", ctypes.c_uint32),
    ]


class es_vad_params_t(ctypes.Structure):
    _fields_ = [
        ("onset", ctypes.c_int8),
        ("min_floor", ctypes.c_int8),
        ("hangover", ctypes.c_uint16),
        ("down_shift", ctypes.c_uint8),
        ("up_shift", ctypes.c_uint8),
        ("cap", ctypes.c_uint8),
        ("confirm", ctypes.c_uint8),
    ]


class es_vad_t(ctypes.Structure):
    _fields_ = [
        ("p", es_vad_params_t),
        ("floor_q4", ctypes.c_int16 * MEL_BINS),
        ("excess_q4", ctypes.c_int32),
        ("hold", ctypes.c_uint16),
        ("primed", ctypes.c_uint8),
        ("run", ctypes.c_uint8),
        ("speech", ctypes.c_uint8),
        ("open", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 2),
    ]


class es_posterior_t(ctypes.Structure):
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
        "es_norm_mem_size": (sz, []),
        "es_norm_init": (p, [p, sz, c.c_uint]),
        "es_norm_reset": (None, [p]),
        "es_norm_run": (None, [p, p, sz, p]),
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


NORM_MINSTAT = 1  # ES_NORM_MINSTAT
NORM_MINSTAT_GATE = 2  # ES_NORM_MINSTAT_GATE


def normalize(features, mode: int = NORM_MINSTAT) -> np.ndarray:
    """The core's input normalisation (es_norm.c) over int8 log-mel ``features``, shape
    (n_hops, 40), from a fresh state: int8 level above each bin's minimum over the last
    0.8 to 1.6 s (minimum statistics), same shape (-128 = at the floor, steps of 0.376 dB).
    ``mode``: NORM_MINSTAT (1), or NORM_MINSTAT_GATE (2): the level less each bin's noise
    gate (es_norm.c), -128 below it. Raises ValueError for a bad shape, dtype or mode."""
    f = np.asarray(features)
    if f.dtype != np.int8 or f.ndim != 2 or f.shape[1] != MEL_BINS:
        raise ValueError(f"features must be int8 (n_hops, {MEL_BINS}), got {f.dtype} {f.shape}")
    if int(mode) not in (NORM_MINSTAT, NORM_MINSTAT_GATE):
        raise ValueError(f"input_norm mode must be {NORM_MINSTAT} or {NORM_MINSTAT_GATE}, "
                         f"got {mode}")
    f = np.ascontiguousarray(f)
    so = lib()
    mem = ctypes.create_string_buffer(so.es_norm_mem_size())
    n = so.es_norm_init(mem, ctypes.sizeof(mem), int(mode))
    out = np.empty_like(f)
    if len(f):
        so.es_norm_run(n, _ptr(f), len(f), _ptr(out))
    return out


def model_features(samples, input_norm: int = 0) -> np.ndarray:
    """What a model sees for int16 ``samples`` in a fresh detector: ``features(samples)``,
    then ``normalize(..., input_norm)`` when ``input_norm`` (a model's info["input_norm"])
    is not 0. Shape (n_samples // 160, 40), int8. Raises ValueError as those two do."""
    f = features(samples)
    return normalize(f, input_norm) if input_norm else f


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 of ``data`` continuing from ``crc`` (as ``zlib.crc32``), by es_crc32."""
    buf = bytes(data)
    return int(lib().es_crc32(crc & 0xFFFFFFFF, buf, len(buf)))


VAD_PARAMS = ("onset", "min_floor", "hangover", "down_shift", "up_shift", "cap", "confirm")


def vad(features, **params):
    """Run the core's VAD (es_vad.c, rule in es_internal.h) over int8 features, shape
    (n_hops, 40).

    Returns ``(gate, floor)``: gate uint8 (n_hops,), 1 where the gate is open; floor float64
    (n_hops, 40), each bin's noise floor after each hop (int8 feature steps). Keyword
    parameters (names in VAD_PARAMS, see es_vad_params_t) override the C defaults
    (es_vad_default_params). Raises ValueError for features of the wrong dtype/shape, an
    unknown parameter, or parameters the core rejects.
    """
    return _vad_run(features, params)[:2]


def vad_trace(features, **params) -> dict:
    """As :func:`vad`, with every per-hop quantity: ``gate`` and ``speech`` (uint8 (n,), the
    gate and the hop's own speech-like decision), ``excess`` (float64 (n,), mean clamped
    per-bin SNR in steps, the quantity compared with ``onset``) and ``floor`` (float64
    (n, 40))."""
    gate, floor, speech, excess = _vad_run(features, params)
    return {"gate": gate, "speech": speech, "excess": excess, "floor": floor}


def _vad_run(features, params):
    f = np.asarray(features)
    if f.dtype != np.int8 or f.ndim != 2 or f.shape[1] != MEL_BINS:
        raise ValueError(
            f"features must be int8 of shape (n, {MEL_BINS}), got {f.dtype} {f.shape}"
        )
    unknown = sorted(set(params) - set(VAD_PARAMS))
    if unknown:
        raise ValueError(f"unknown VAD parameter(s) {unknown}; known: {list(VAD_PARAMS)}")
    f = np.ascontiguousarray(f)
    so = lib()
    p = es_vad_params_t()
    so.es_vad_default_params(ctypes.byref(p))
    for name, value in params.items():
        if value is not None:
            setattr(p, name, int(value))
            if getattr(p, name) != int(value):
                raise ValueError(f"VAD parameter {name}={value} does not fit its C type")
    state = es_vad_t()
    if so.es_vad_init(ctypes.byref(state), ctypes.byref(p)) != 0:
        raise ValueError(f"VAD parameters rejected by es_vad_init: {params_dict(p)}")
    n = len(f)
    gate = np.zeros(n, dtype=np.uint8)
    speech = np.zeros(n, dtype=np.uint8)
    excess = np.zeros(n, dtype=np.float64)
    floor = np.zeros((n, MEL_BINS), dtype=np.float64)
    for i in range(n):
        gate[i] = so.es_vad_update(ctypes.byref(state), f[i].ctypes.data)
        speech[i] = state.speech
        excess[i] = state.excess_q4 / 16.0 / MEL_BINS
        floor[i] = np.frombuffer(state.floor_q4, dtype=np.int16) / 16.0
    return gate, floor, speech, excess


def vad_defaults() -> dict:
    """The C VAD defaults (es_vad_default_params) as a dict."""
    params = es_vad_params_t()
    lib().es_vad_default_params(ctypes.byref(params))
    return params_dict(params)


def params_dict(s: ctypes.Structure) -> dict:
    return {name: getattr(s, name) for name, _ in s._fields_ if name != "reserved"}


def posterior(probs, cutoff: int, window: int, refractory: int) -> np.ndarray:
    """Run the core's posterior smoothing (es_posterior.c) over uint8 model outputs.

    Returns a uint8 array, 1 at each output that fired a detection. Raises ValueError for
    parameters the core rejects (cutoff 0, window outside 1..32).
    """
    p = np.asarray(probs)
    if p.dtype != np.uint8 or p.ndim != 1:
        raise ValueError(f"probs must be 1-D uint8, got {p.dtype} {p.shape}")
    so = lib()
    state = es_posterior_t()
    if not (0 <= cutoff <= 255 and 0 <= window <= 255 and 0 <= refractory <= 65535):
        raise ValueError("cutoff and window must fit uint8, refractory uint16")
    if so.es_posterior_init(ctypes.byref(state), cutoff, window, refractory) != 0:
        raise ValueError(
            f"posterior parameters rejected: cutoff={cutoff} (1..255), window={window} "
            f"(1..{MAX_WINDOW})"
        )
    return np.array([so.es_posterior_push(ctypes.byref(state), int(v)) for v in p], np.uint8)


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
    Detector keeps a reference so the blob outlives it). ``cutoff`` (0..1 float or 1..255
    int), ``window`` (outputs, 1..32) and ``refractory`` (outputs) default to the blob's.
    ``vad=False`` runs the model on every hop. Raises ValueError for out-of-range settings.
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
        cfg.window = int(info["window"] if window is None else window)
        cfg.refractory = int(info["refractory"] if refractory is None else refractory)
        if not 1 <= cfg.window <= MAX_WINDOW:
            raise ValueError(f"window must be 1..{MAX_WINDOW} outputs, got {window}")
        if refractory is not None and not 0 <= int(refractory) <= 65535:
            raise ValueError(f"refractory must be 0..65535 outputs, got {refractory}")
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
        """Process int16 mono 16 kHz ``samples`` (a partial trailing hop is dropped).
        Raises ValueError for a wrong dtype or shape."""
        x = _int16_samples(samples)
        n = x.shape[0] // HOP_SAMPLES
        probs = np.zeros(n, dtype=np.uint8)
        flags = np.zeros(n, dtype=np.uint8)
        if n:
            self._so.es_detector_run(self._handle, _ptr(x), n, _ptr(probs), _ptr(flags))
        detections = [int(i) for i in np.flatnonzero(flags & FLAG_DETECT)]
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
    if isinstance(cutoff, float):
        if not 0.0 < cutoff <= 1.0:
            raise ValueError(f"cutoff must be in (0, 1] as a probability, got {cutoff}")
        return max(1, round(cutoff * 255))
    if not 1 <= int(cutoff) <= 255:
        raise ValueError(f"cutoff must be 1..255 as an integer, got {cutoff}")
    return int(cutoff)
