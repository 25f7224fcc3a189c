"""The Earshot C core from CPython (ctypes over the public ``firmware/core/earshot.h`` only).

By job:

- :mod:`earshot.core.constants`: the frontend constants and flag bits (``SAMPLE_RATE_HZ``,
  ``HOP_SAMPLES``, ``MEL_BINS``, ``FLAG_*`` ...), checked against the library when it loads.
- :mod:`earshot.core.library`: build and load ``build/libearshot.so`` (:func:`lib`), the
  ctypes declarations and struct mirrors.
- :mod:`earshot.core.features`: log-mel features, input normalisation, CRC-32.
- :mod:`earshot.core.vad`: the VAD gate and its per-hop trace.
- :mod:`earshot.core.detector`: posterior smoothing and the whole :class:`Detector`.

Every public name is re-exported here: ``from earshot import core; core.features(x)``.
"""

from earshot.core import constants
from earshot.core.constants import (
    FLAG_DETECT,
    FLAG_GATE,
    FLAG_OUTPUT,
    FLAG_RAN,
    FLAG_VAD,
    GATE_DECIMATE,
    GATE_PREROLL_HOPS,
    HOP_MS,
    HOP_S,
    HOP_SAMPLES,
    MAX_WINDOW,
    MEL_BINS,
    NORM_MINSTAT,
    NORM_MINSTAT_GATE,
    SAMPLE_RATE_HZ,
    VAD_PRIME_HOPS,
    WINDOW_SAMPLES,
)
from earshot.core.detector import Detector, DetectorResult, posterior
from earshot.core.features import crc32, features, model_features, normalize
from earshot.core.library import (
    CORE_DIR,
    LIB_PATH,
    CoreBuildError,
    CoreMismatchError,
    es_core_info_t,
    es_detector_config_t,
    es_detector_stats_t,
    es_vad_params_t,
    es_vad_state_t,
    lib,
    library_info,
    params_dict,
)
from earshot.core.vad import VAD_PARAMS, vad, vad_defaults, vad_trace

__all__ = [
    "CORE_DIR", "FLAG_DETECT", "FLAG_GATE", "FLAG_OUTPUT", "FLAG_RAN", "FLAG_VAD",
    "GATE_DECIMATE", "GATE_PREROLL_HOPS", "HOP_MS", "HOP_S",
    "HOP_SAMPLES", "LIB_PATH", "MAX_WINDOW", "MEL_BINS", "NORM_MINSTAT", "NORM_MINSTAT_GATE",
    "SAMPLE_RATE_HZ", "VAD_PARAMS", "VAD_PRIME_HOPS", "WINDOW_SAMPLES", "CoreBuildError",
    "CoreMismatchError", "Detector", "DetectorResult", "constants", "crc32",
    "es_core_info_t", "es_detector_config_t", "es_detector_stats_t", "es_vad_params_t",
    "es_vad_state_t", "features", "lib", "library_info", "model_features", "normalize",
    "params_dict", "posterior", "vad", "vad_defaults", "vad_trace",
]  # fmt: skip
