#!/usr/bin/env python3
"""Generate firmware/core/es_tables.h: the constant tables of the Earshot frontend.

Run from anywhere: ``python firmware/core/tools/gen_tables.py`` rewrites the header next to
this folder; ``--check`` exits 1 when the committed header differs from what this script
would write (the test suite runs it). Only the Python standard library is used, so the
tables do not depend on a numpy version.

Every value is a rounded evaluation of a closed formula, cited where it is emitted:
- the periodic Hann window (Harris 1978, "On the use of windows for harmonic analysis with
  the discrete Fourier transform", Proc. IEEE 66(1), eq. 27a, with N = window length),
- the twiddle factors W_512^k = exp(-2*pi*i*k/512) of the radix-2 FFT (Cooley & Tukey 1965)
  and of the real-FFT split step (Oppenheim & Schafer, "Discrete-Time Signal Processing",
  3rd ed., sec. 9.3, "efficient computation of the DFT of two real sequences"),
- HTK's mel scale mel(f) = 2595 * log10(1 + f / 700) and its triangular filters with edges
  equally spaced in mel, weights interpolated in mel (The HTK Book 3.4, sec. 5.4),
- log2(1 + i/32), the mantissa table of the integer logarithm.
"""

import argparse
import math
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "es_tables.h"

# Frontend parameters: these mirror firmware/core/earshot.h (the generator asserts it).
SAMPLE_RATE_HZ = 16000
WINDOW_SAMPLES = 480
HOP_SAMPLES = 160
MEL_BINS = 40
FFT_SIZE = 512  # next power of two >= WINDOW_SAMPLES; the frame is zero-padded
MEL_LOW_HZ = 125.0  # lower edge of the first mel filter: above mains hum (50/60 Hz) and clear of
# the Hann main lobe around DC (first zero at 2 * 16000 / 480 = 66.7 Hz), so a microphone's DC
# offset and hum do not leak into the first filter.
MEL_HIGH_HZ = 7600.0  # upper edge of the last mel filter (below Nyquist, 8000 Hz)
LOG2_LUT_BITS = 5  # log2 mantissa table: 2**5 + 1 entries, linear interpolation between
# int8 output map: q = round(STEPS_PER_OCTAVE * (log2(E) - LOG2_FLOOR)) - 128, saturated, where E
# is the mel energy in (int16 sample units)^2. 8 steps per octave of power = 0.376 dB per step,
# so the int8 range spans 255 / 8 = 31.9 octaves (96 dB). LOG2_FLOOR was chosen from a float
# reference of this frontend on 40 "alexa" clips (wake-word-benchmark) and 40 precise-community
# not-wake-words: of the bins that are not digital silence, 1 % lie below log2(E) = 7.7 and
# 0.1 % above 39.4, so log2(E) = 8 -> -128 and 39.875 -> +127 keeps nearly all speech in range.
STEPS_PER_OCTAVE_SHIFT = 3  # 2**3 = 8 steps per octave
LOG2_FLOOR = 8


def q15(x: float, lo: int = -32768, hi: int = 32767) -> int:
    """Round x * 2**15 to the nearest integer, saturated to [lo, hi]."""
    return max(lo, min(hi, math.floor(x * 32768.0 + 0.5)))


def mel(f_hz: float) -> float:
    """HTK mel scale (The HTK Book 3.4, eq. 5.13)."""
    return 2595.0 * math.log10(1.0 + f_hz / 700.0)


def hann() -> list[int]:
    """Periodic Hann window w[n] = 0.5 - 0.5 cos(2 pi n / N), n = 0..N-1, Q15."""
    n = WINDOW_SAMPLES
    return [q15(0.5 - 0.5 * math.cos(2.0 * math.pi * i / n)) for i in range(n)]


def twiddles() -> tuple[list[int], list[int]]:
    """cos and sin of 2 pi k / FFT_SIZE for k = 0..FFT_SIZE/2-1, Q15 (1.0 saturates)."""
    n = FFT_SIZE
    cos = [q15(math.cos(2.0 * math.pi * k / n)) for k in range(n // 2)]
    sin = [q15(math.sin(2.0 * math.pi * k / n)) for k in range(n // 2)]
    return cos, sin


def mel_filters() -> tuple[int, int, list[int], list[int]]:
    """HTK triangular filters as (first bin, end bin, channel per bin, Q15 weight per bin).

    Edges m_0..m_{MEL_BINS+1} are equally spaced in mel from MEL_LOW_HZ to MEL_HIGH_HZ; filter j
    rises from m_j to m_{j+1} and falls to m_{j+2}. A bin whose mel value lies in [m_c, m_{c+1})
    adds weight w = (mel - m_c) / (m_{c+1} - m_c) to filter c (if c < MEL_BINS) and 1 - w to
    filter c - 1 (if c >= 1); the table stores c and round(w * 2**15).
    """
    lo, hi = mel(MEL_LOW_HZ), mel(MEL_HIGH_HZ)
    edges = [lo + (hi - lo) * i / (MEL_BINS + 1) for i in range(MEL_BINS + 2)]
    bin_hz = SAMPLE_RATE_HZ / FFT_SIZE
    first = math.ceil(MEL_LOW_HZ / bin_hz)
    end = math.ceil(MEL_HIGH_HZ / bin_hz)  # exclusive: bins strictly below MEL_HIGH_HZ
    chans, weights = [], []
    for k in range(first, end):
        m = mel(k * bin_hz)
        c = max(i for i in range(MEL_BINS + 1) if edges[i] <= m)
        w = (m - edges[c]) / (edges[c + 1] - edges[c])
        chans.append(c)
        weights.append(q15(w, 0, 32768))
    return first, end, chans, weights


def log2_lut() -> list[int]:
    """log2(1 + i / 2**LOG2_LUT_BITS) for i = 0..2**LOG2_LUT_BITS, Q16."""
    n = 1 << LOG2_LUT_BITS
    return [math.floor(math.log2(1.0 + i / n) * 65536.0 + 0.5) for i in range(n + 1)]


def c_array(ctype: str, name: str, values: list[int], per_line: int = 12) -> str:
    lines = [f"static const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(str(v) for v in values[i : i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def check_header_constants() -> None:
    """Assert the parameters above equal the #defines of earshot.h."""
    text = (OUT.parent / "earshot.h").read_text()
    for name, value in [
        ("ES_SAMPLE_RATE_HZ", SAMPLE_RATE_HZ),
        ("ES_WINDOW_SAMPLES", WINDOW_SAMPLES),
        ("ES_HOP_SAMPLES", HOP_SAMPLES),
        ("ES_MEL_BINS", MEL_BINS),
    ]:
        if f"#define {name} ({value})" not in text:
            raise SystemExit(f"gen_tables.py: {name} in earshot.h is not ({value})")


def render() -> str:
    check_header_constants()
    cos, sin = twiddles()
    first, end, chans, weights = mel_filters()
    parts = [
        "// Generated by firmware/core/tools/gen_tables.py: do not edit; rerun the script.",
        "// Constant tables of the Earshot frontend (see es_frontend.c). Formulas and sources",
        "// are in the generator's docstrings.",
        "#ifndef ES_TABLES_H",
        "#define ES_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define ES_FFT_SIZE ({FFT_SIZE})",
        f"#define ES_FFT_LOG2 ({FFT_SIZE.bit_length() - 1})",
        f"#define ES_MEL_LOW_HZ ({int(MEL_LOW_HZ)})",
        f"#define ES_MEL_HIGH_HZ ({int(MEL_HIGH_HZ)})",
        "// FFT bins [ES_MEL_FIRST_BIN, ES_MEL_END_BIN) feed the mel filters.",
        f"#define ES_MEL_FIRST_BIN ({first})",
        f"#define ES_MEL_END_BIN ({end})",
        f"#define ES_LOG2_LUT_BITS ({LOG2_LUT_BITS})",
        "// int8 feature = round(2^ES_LOGMEL_SHIFT * (log2(E) - ES_LOGMEL_LOG2_FLOOR)) - 128,",
        "// E = mel energy in (int16 sample units)^2; saturated to [-128, 127].",
        f"#define ES_LOGMEL_SHIFT ({STEPS_PER_OCTAVE_SHIFT})",
        f"#define ES_LOGMEL_LOG2_FLOOR ({LOG2_FLOOR})",
        "",
        "// Periodic Hann window, Q15 (1.0 saturates to 32767).",
        c_array("int16_t", "es_hann_q15", hann()),
        "",
        "// cos(2 pi k / ES_FFT_SIZE), k = 0..ES_FFT_SIZE/2-1, Q15 (1.0 saturates to 32767).",
        c_array("int16_t", "es_cos_q15", cos),
        "",
        "// sin(2 pi k / ES_FFT_SIZE), k = 0..ES_FFT_SIZE/2-1, Q15.",
        c_array("int16_t", "es_sin_q15", sin),
        "",
        "// Per FFT bin from ES_MEL_FIRST_BIN: the mel filter c whose rising edge holds the",
        "// bin (ES_MEL_BINS: only the falling edge of the last filter). Filter c gets",
        "// es_mel_weight_q15 and filter c - 1 gets 32768 minus it.",
        c_array("uint8_t", "es_mel_channel", chans, 16),
        "",
        c_array("uint16_t", "es_mel_weight_q15", weights),
        "",
        "// log2(1 + i / 2^ES_LOG2_LUT_BITS), i = 0..2^ES_LOG2_LUT_BITS, Q16.",
        c_array("int32_t", "es_log2_lut_q16", log2_lut(), 8),
        "",
        "#endif // ES_TABLES_H",
        "",
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed header")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
