"""The C core's constants (``firmware/core/earshot.h``), for every host module.

Each value is written here once, under the name of its ``ES_*`` macro less the prefix.
:func:`earshot.core.lib` checks every one against what the built library reports
(``es_core_get_info``) before anything runs, and raises ``CoreMismatchError`` on a
difference, so these can never disagree with the C code that computes the features. They are
plain values rather than read from the library at import time so that importing a host module
(``earshot --help``, the telemetry decoder) never compiles or loads C code.

Units are in the names: samples at ``SAMPLE_RATE_HZ``, hops of ``HOP_SAMPLES``.
"""

SAMPLE_RATE_HZ = 16000  # ES_SAMPLE_RATE_HZ: input PCM rate, Hz
WINDOW_SAMPLES = 480  # ES_WINDOW_SAMPLES: frontend analysis window, samples (30 ms)
HOP_SAMPLES = 160  # ES_HOP_SAMPLES: samples per hop, one feature row each (10 ms)
MEL_BINS = 40  # ES_MEL_BINS: int8 log-mel values per feature row
MAX_WINDOW = 32  # ES_MAX_WINDOW: longest posterior window, model outputs
VAD_PRIME_HOPS = 3  # ES_VAD_PRIME_HOPS: hops after reset in which VAD floors = features
FLAG_VAD = 1 << 0  # ES_FLAG_VAD: the VAD gate is open at this hop
FLAG_RAN = 1 << 1  # ES_FLAG_RAN: the model ran during this hop
FLAG_OUTPUT = 1 << 2  # ES_FLAG_OUTPUT: a new model output (probability) at this hop
FLAG_DETECT = 1 << 3  # ES_FLAG_DETECT: a detection fired at this hop
FLAG_GATE = 1 << 4  # ES_FLAG_GATE: the detector's first stage is open at this hop
GATE_PREROLL_HOPS = 6  # ES_GATE_PREROLL_HOPS: raw pre-roll of the first stage, hops
GATE_DECIMATE = 8  # ES_GATE_DECIMATE: while closed, the frontend runs on every 8th hop
NORM_MINSTAT = 1  # ES_NORM_MINSTAT: input normalisation by minimum statistics
NORM_MINSTAT_GATE = 2  # ES_NORM_MINSTAT_GATE: the same, then a per-bin noise gate

#: Derived (not checked separately): one hop in seconds and in milliseconds.
HOP_S = HOP_SAMPLES / SAMPLE_RATE_HZ
HOP_MS = 1000 * HOP_SAMPLES // SAMPLE_RATE_HZ

#: Name here -> es_core_info_t field the library reports it in (the check's table).
CHECKED = {
    "SAMPLE_RATE_HZ": "sample_rate_hz",
    "WINDOW_SAMPLES": "window_samples",
    "HOP_SAMPLES": "hop_samples",
    "MEL_BINS": "mel_bins",
    "MAX_WINDOW": "max_window",
    "VAD_PRIME_HOPS": "vad_prime_hops",
    "FLAG_VAD": "flag_vad",
    "FLAG_RAN": "flag_ran",
    "FLAG_OUTPUT": "flag_output",
    "FLAG_DETECT": "flag_detect",
    "FLAG_GATE": "flag_gate",
    "GATE_PREROLL_HOPS": "gate_preroll_hops",
    "GATE_DECIMATE": "gate_decimate",
    "NORM_MINSTAT": "norm_minstat",
    "NORM_MINSTAT_GATE": "norm_minstat_gate",
}
