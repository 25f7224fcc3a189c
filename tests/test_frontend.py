"""The C frontend (es_frontend.c through earshot.core.features) against a float reference.

The reference below re-derives the same log-mel from the formulas (periodic Hann, 512-point
real FFT, HTK mel triangles 125..7600 Hz, round(8 * (log2 E - 8)) - 128) in float64 numpy,
independently of the generated tables, so a wrong table or a fixed-point slip shows up here.
Also: earshot.core's constants and ctypes struct mirrors against the library and earshot.h.
"""

import ctypes
import re
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

from earshot import core, model
from earshot.audio import load
from earshot.paths import FIRMWARE

CORE = FIRMWARE / "core"
MY_SOURCES = [
    "es_frontend.c", "es_vad.c", "es_norm.c", "es_posterior.c", "es_detector.c", "es_crc32.c",
    "es_info.c",
]  # fmt: skip


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def reference_filters(low=125.0, high=7600.0):
    edges = np.linspace(hz_to_mel(low), hz_to_mel(high), core.MEL_BINS + 2)
    f = np.arange(257) * core.SAMPLE_RATE_HZ / 512
    m = hz_to_mel(f)
    w = np.zeros((core.MEL_BINS, 257))
    for j in range(core.MEL_BINS):
        lo, c, hi = edges[j : j + 3]
        w[j] = np.clip(np.minimum((m - lo) / (c - lo), (hi - m) / (hi - c)), 0.0, None)
    w[:, f >= high] = 0.0
    return w, edges


def reference_features(samples: np.ndarray) -> np.ndarray:
    """Float64 log-mel with the frontend's definition, (n_hops, 40) float (rounded, clipped)."""
    hist = core.WINDOW_SAMPLES - core.HOP_SAMPLES
    s = np.concatenate([np.zeros(hist), samples.astype(np.float64)])
    n = (len(s) - hist) // core.HOP_SAMPLES
    idx = np.arange(n)[:, None] * core.HOP_SAMPLES + np.arange(core.WINDOW_SAMPLES)[None, :]
    frames = s[idx]
    frames = frames - np.trunc(frames.sum(axis=1, keepdims=True) / core.WINDOW_SAMPLES)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(core.WINDOW_SAMPLES) / core.WINDOW_SAMPLES)
    power = np.abs(np.fft.rfft(frames * hann, 512)) ** 2
    energy = power @ reference_filters()[0].T
    with np.errstate(divide="ignore"):
        q = np.round(8.0 * (np.log2(energy) - 8.0)) - 128.0
    return np.clip(np.nan_to_num(q, neginf=-128.0), -128, 127)


def test_constants_match_header():
    text = (CORE / "earshot.h").read_text()
    defines = dict(re.findall(r"#define (ES_\w+) \((-?\d+)\)", text))
    for name in ["SAMPLE_RATE_HZ", "WINDOW_SAMPLES", "HOP_SAMPLES", "MEL_BINS", "MAX_WINDOW"]:
        assert int(defines["ES_" + name]) == getattr(core, name), name
    flags = dict(re.findall(r"#define (ES_FLAG_\w+) \(1u << (\d+)\)", text))
    for name in ["VAD", "RAN", "OUTPUT", "DETECT"]:
        assert 1 << int(flags["ES_FLAG_" + name]) == getattr(core, "FLAG_" + name), name


def test_library_reports_the_same_constants_and_struct_sizes(monkeypatch):
    """earshot.core.constants and every ctypes mirror of a public struct agree with what the
    built library reports (es_core_get_info); a difference stops lib() with the names."""
    info = core.library_info()
    for name, field in core.constants.CHECKED.items():
        assert getattr(core, name) == info[field], name
    for cls, field in core.library.STRUCTS.items():
        assert ctypes.sizeof(cls) == info[field], cls.__name__
    assert ctypes.sizeof(model.es_model_info_t) == info["sizeof_model_info"]
    assert core.HOP_MS * core.SAMPLE_RATE_HZ == 1000 * core.HOP_SAMPLES
    so = core.lib()
    monkeypatch.setattr(core.constants, "MEL_BINS", 41)
    with pytest.raises(core.CoreMismatchError, match="MEL_BINS = 41 here, 40 in the library"):
        core.library._check(core.library._read_info(so))


def _mirrors():
    return [*core.library.STRUCTS, model.es_model_info_t]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_ctypes_structs_match_the_header(tmp_path):
    """Every field offset and size of every ctypes mirror equals the C compiler's for the
    public header alone (earshot.h; the host mirrors no internal struct)."""
    lines, want = [], []
    for cls in _mirrors():
        lines.append(f'    printf("%zu\\n", sizeof({cls.__name__}));')
        want.append(ctypes.sizeof(cls))
        for name, _ in cls._fields_:
            lines.append(f'    printf("%zu\\n", offsetof({cls.__name__}, {name}));')
            want.append(getattr(cls, name).offset)
    src = tmp_path / "sizes.c"
    src.write_text('#include <stddef.h>\n#include <stdio.h>\n#include "earshot.h"\n'
                   "int main(void) {\n" + "\n".join(lines) + "\n    return 0;\n}\n")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", "-std=c99", "-I", str(CORE), "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    assert [int(v) for v in out.split()] == want


def test_tables_are_generated():
    script = CORE / "tools" / "gen_tables.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize("cc_args", [[], ["-O2"], ["-Os", "-fno-strict-aliasing"]])
def test_core_compiles_strict(tmp_path, cc_args):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler"
    sources = [str(CORE / s) for s in MY_SOURCES if (CORE / s).is_file()]
    for src in sources:
        proc = subprocess.run(
            [
                cc,
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Wpedantic",
                "-Werror",
                *cc_args,
                "-c",
                src,
                "-o",
                str(tmp_path / "x.o"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


def test_core_compiles_for_xtensa(tmp_path):
    cc = shutil.which("xtensa-lx106-elf-gcc")
    if cc is None:
        pytest.skip("xtensa-lx106-elf-gcc not installed (apt-get install gcc-xtensa-lx106)")
    for src in MY_SOURCES:
        if not (CORE / src).is_file():
            continue
        proc = subprocess.run(
            [
                cc,
                "-std=c99",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-Os",
                "-isystem",
                "/usr/lib/xtensa-lx106-elf/include",
                "-c",
                str(CORE / src),
                "-o",
                str(tmp_path / "x.o"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


def test_crc32_equals_zlib():
    rng = np.random.default_rng(0)
    for n in [0, 1, 3, 4, 255, 4097]:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert core.crc32(data) == zlib.crc32(data), n
    data = rng.integers(0, 256, 1000, dtype=np.uint8).tobytes()
    assert core.crc32(data[600:], core.crc32(data[:600])) == zlib.crc32(data)
    assert core.crc32(b"123456789") == 0xCBF43926  # the CRC-32 check value


def test_bad_input_raises():
    with pytest.raises(ValueError, match="int16"):
        core.features(np.zeros(1600, dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        core.features(np.zeros((2, 1600), dtype=np.int16))


def test_shape_partial_hop_and_silence():
    f = core.features(np.zeros(1000, dtype=np.int16))
    assert f.dtype == np.int8 and f.shape == (1000 // 160, 40)
    assert (f == -128).all()
    assert core.features(np.zeros(159, dtype=np.int16)).shape == (0, 40)


def test_deterministic_and_causal():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(16000) * 3000).astype(np.int16)
    a = core.features(x)
    assert np.array_equal(a, core.features(x.copy()))
    # Row i depends only on samples up to the end of hop i.
    assert np.array_equal(a[:37], core.features(x[: 37 * 160 + 100]))
    assert not np.array_equal(a[40:], core.features(x[::-1])[40:])


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 6000.0])
def test_tone_lands_in_its_mel_bin(freq):
    t = np.arange(core.SAMPLE_RATE_HZ) / core.SAMPLE_RATE_HZ
    x = np.round(8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    f = core.features(x)[10:]
    centers = reference_filters()[1][1:-1]
    expect = int(np.argmin(np.abs(centers - hz_to_mel(freq))))
    assert (f.argmax(axis=1) == expect).all()
    ref = reference_features(x)[10:]
    # Bins more than 100 dB below the tone hold window/twiddle quantisation noise only.
    near = ref > -100
    assert np.abs(f.astype(int) - ref)[near].max() <= 1


def test_level_scales_by_eight_steps_per_octave():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(16000) * 1000
    quiet = core.features(np.round(x).astype(np.int16)).astype(int)
    loud = core.features(np.round(4 * x).astype(np.int16)).astype(int)
    # 4x amplitude = 16x power = 4 octaves = 32 steps, away from saturation.
    ok = (quiet > -100) & (loud < 120)
    assert ok.sum() > 500
    assert np.abs(loud[ok] - quiet[ok] - 32).max() <= 1


def test_matches_float_reference_on_real_clips(data):
    files = sorted((data / "wake-word-benchmark" / "alexa").glob("*.flac"))[:6]
    files += sorted((data / "precise-community" / "not-wake-words").rglob("*.flac"))[:4]
    assert len(files) >= 6
    for path in files:
        x = load(path)
        got = core.features(x).astype(int)
        ref = reference_features(x)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1, path
        assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.9999, path
        # Speech at normal levels uses most of the int8 range.
        assert got.max() - got.min() > 150, path


def test_extremes_under_sanitizers(tmp_path):
    """Full-scale, DC, impulse and 1-LSB inputs through the C core built with ASan+UBSan
    (tests/c/test_core_extremes.c): no overflow, bad shift or out-of-bounds access."""
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "no C compiler"
    sources = [
        str(CORE / s) for s in ["es_frontend.c", "es_vad.c", "es_posterior.c", "es_crc32.c"]
    ]
    exe = tmp_path / "extremes"
    here = CORE.parents[1] / "tests" / "c" / "test_core_extremes.c"
    flags = ["-std=c99", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    build = subprocess.run(
        [cc, *flags, f"-I{CORE}", str(here), *sources, "-o", str(exe)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == "OK"
    assert "case 0 min -128 max -128 vad 0" in lines  # digital silence
    assert "crc cbf43926" in lines
