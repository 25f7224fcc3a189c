"""Measure the per-bin noise gate of ES_NORM_MINSTAT_GATE (es_norm.c: es_norm_gate_steps).

For each log-mel bin, the gate is the 90th percentile of that bin's ES_NORM_MINSTAT output
(level above the minimum-statistics floor, int8 steps of 0.376 dB) over GATE_SECONDS of
seeded white Gaussian noise at GATE_RMS, skipping the first 1.6 s (the floor's window).
The spread depends on how many FFT bins feed a mel band (the low bands are narrower than
the FFT resolution, so they fluctuate most), not on the noise level or colour: pink and
brown noise, and a tenth of the level, give the same percentiles within a few steps.

Run with the host tools installed (``.venv/bin/python research/tools/measure_norm_gate.py``):
prints the C initializer of the gate row. ``--check`` exits 1 when es_norm.c's table differs
(tests/test_norm.py runs :func:`measure` the same way). It lives in research/, not next to the
firmware, because it needs the host tools (``earshot.core``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

GATE_SECONDS = 60
GATE_RMS = 1000.0
GATE_PERCENTILE = 90
GATE_SEED = 0
SKIP_HOPS = 160  # ES_NORM_SUBWINDOW_HOPS * 2: the floor has seen a full window
ES_NORM_C = Path(__file__).resolve().parents[2] / "firmware" / "core" / "es_norm.c"


def measure() -> list[int]:
    """The gate per bin (ES_MEL_BINS ints, steps), measured through the C core's frontend and
    ES_NORM_MINSTAT."""
    from earshot import core

    rng = np.random.default_rng(GATE_SEED)
    x = np.round(rng.standard_normal(16000 * GATE_SECONDS) * GATE_RMS).astype(np.int16)
    above = core.model_features(x, core.NORM_MINSTAT)[SKIP_HOPS:].astype(np.int32) + 128
    return [int(v) for v in np.round(np.percentile(above, GATE_PERCENTILE, axis=0))]


def table_in_source(path: Path = ES_NORM_C) -> list[int]:
    """es_norm_gate_steps as written in es_norm.c."""
    text = path.read_text()
    m = re.search(r"es_norm_gate_steps\[ES_MEL_BINS\] = \{([^}]*)\}", text)
    if m is None:
        raise ValueError(f"{path}: es_norm_gate_steps not found")
    return [int(v) for v in m.group(1).replace("\n", " ").split(",") if v.strip()]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    gate = measure()
    if "--check" in argv:
        same = table_in_source() == gate
        print("es_norm_gate_steps is up to date" if same else "es_norm_gate_steps differs")
        return 0 if same else 1
    rows = [", ".join(str(v) for v in gate[i : i + 10]) for i in range(0, len(gate), 10)]
    print("{" + ",\n ".join(rows) + "}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
