"""Augmentation: how a microphone in a room hears a clean clip.

Noise (:func:`colored_noise`, :func:`hum`, :func:`babble`, :func:`add_broadband_noise`), rooms
(:func:`exp_rir`, :func:`room_rirs`), a talker's duller high band (:func:`high_shelf_sos`),
another speaker (:func:`change_speaker`: formants and pitch), and :func:`augment`, which
draws all of them for one clip. The training config's ``augment`` keys (``room_rirs``,
``clip_fraction``, ``peak_dbfs``, ``hf_shelf``, ``noise_alpha``, ``speaker``) and
``broadband_*`` keys act here; :func:`check_peak_dbfs`, :func:`check_hf_shelf`,
:func:`check_noise_alpha` and :func:`check_speaker` check them. Samples are at
``earshot.core.SAMPLE_RATE_HZ`` (16 kHz).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

from earshot.audio import to_int16
from earshot.core import SAMPLE_RATE_HZ


def colored_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^alpha (-2 violet, -1 blue, 0 white, 1 pink, 2 brown),
    float (n,), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (alpha / 2), n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz) with decaying odd harmonics, float (n,), unit RMS."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / SAMPLE_RATE_HZ
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 3, 5, 7))
    x = x + 0.05 * rng.standard_normal(n)
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def babble(n: int, speech: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Overlapped speech: 3..6 random excerpts of ``speech`` (int16 clips) summed, unit RMS."""
    x = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(3, 7))):
        clip = speech[rng.integers(len(speech))].astype(np.float32)
        if len(clip) < n:
            clip = np.resize(clip, n)
        start = int(rng.integers(0, len(clip) - n + 1))
        seg = clip[start : start + n]
        x += seg / (np.sqrt(np.mean(seg**2)) + 1e-6)
    return x / (np.sqrt(np.mean(x**2)) + 1e-6)


def exp_rir(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then exponentially decaying
    Gaussian noise reaching -60 dB at ``rt60_s`` (Sabine's RT60 definition), float (n,)."""
    n = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # ln(1000) = 6.9078
    delay = int(rng.integers(40, 400))  # 2.5..25 ms before the first reflections
    h = np.zeros(n + delay, np.float64)
    h[0] = 1.0
    h[delay:] += tail * rng.uniform(0.05, 0.3)
    return (h / np.sqrt(np.sum(h**2))).astype(np.float32)


#: Shoebox rooms of :func:`room_rirs`: size ranges (m), RT60 range (s), source-microphone
#: distance range (m), minimum distance to a wall (m).
ROOM_DIM_M = ((3.0, 8.0), (2.5, 6.0), (2.4, 3.5))
ROOM_RT60_S = (0.1, 0.5)
ROOM_DISTANCE_M = (0.5, 4.0)
ROOM_WALL_M = 0.4


@functools.lru_cache(maxsize=4)
def room_rirs(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """``n`` room impulse responses by pyroomacoustics' image-source model (Allen and Berkley
    1979) in shoebox rooms drawn from ROOM_DIM_M, with the wall absorption that gives an RT60
    drawn from ROOM_RT60_S by Sabine's formula (``pyroomacoustics.inverse_sabine``; reflection
    order as it says), a source and a microphone at least ROOM_WALL_M from the walls and
    ROOM_DISTANCE_M apart. The responses ring longer than Sabine's RT60: seed 1's 64 measure
    0.13-1.02 s, median 0.40 s (``pyroomacoustics.experimental.measure_rt60``). RIR ``i`` is
    drawn from ``default_rng([seed, 20, i])``; float32 (m,) at 16 kHz, unit energy, starting 8
    samples before its direct path (so a convolved clip keeps its timing, as with
    :func:`exp_rir`). 64 take about 6 s on one core."""
    # pyroomacoustics is optional (the ``train`` extra): imported here, so augmentation loads
    # without it for evaluation and benchmarks
    import pyroomacoustics as pra

    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 20, i])
        dim = np.array([rng.uniform(*r) for r in ROOM_DIM_M])
        rt60 = rng.uniform(*ROOM_RT60_S)
        # a large room cannot ring shorter than with fully absorbing walls (Sabine; the
        # formula of pyroomacoustics.inverse_sabine): such a draw gets that shortest RT60
        area = 2 * (dim[0] * dim[1] + dim[0] * dim[2] + dim[1] * dim[2])
        shortest = 24 * np.log(10) * np.prod(dim) / (pra.constants.get("c") * area)
        rt60 = max(rt60, shortest * (1 + 1e-9))
        absorption, order = pra.inverse_sabine(rt60, dim)
        room = pra.ShoeBox(dim, fs=SAMPLE_RATE_HZ, materials=pra.Material(absorption),
                           max_order=order)
        lo, hi = ROOM_WALL_M, dim - ROOM_WALL_M
        mic = rng.uniform(lo, hi)
        for _ in range(100):  # a source at a distance in range (rejection sampling)
            src = rng.uniform(lo, hi)
            if ROOM_DISTANCE_M[0] <= np.linalg.norm(src - mic) <= ROOM_DISTANCE_M[1]:
                break
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        h = np.asarray(room.rir[0][0], np.float64)
        h = h[max(0, int(np.argmax(np.abs(h))) - 8) :]  # direct path first: no added delay
        out.append((h / np.sqrt(np.sum(h**2) + 1e-20)).astype(np.float32))
    return tuple(out)


# The peak level range (dBFS) of augment's output unless told otherwise: the range of
# every model trained before augment.peak_dbfs existed.
PEAK_DBFS = (-35.0, -6.0)


def high_shelf_sos(corner_hz: float, gain_db: float, fs: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Second-order high-shelf filter as one scipy ``sos`` row (float64 (1, 6)): gain 0 dB
    well below ``corner_hz`` (Hz, the shelf midpoint), ``gain_db`` (dB) well above it,
    shelf slope S = 1. Coefficients of R. Bristow-Johnson, "Cookbook formulae for audio EQ
    biquad filter coefficients" (the Audio EQ Cookbook, high shelf). Raises ValueError
    unless 0 < ``corner_hz`` < ``fs`` / 2."""
    if not 0.0 < corner_hz < fs / 2:
        raise ValueError(f"shelf corner must be in (0, {fs / 2:g}) Hz, got {corner_hz!r}")
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * corner_hz / fs
    cw, alpha = np.cos(w0), np.sin(w0) / 2.0 * np.sqrt(2.0)  # S = 1
    ra = 2.0 * np.sqrt(a) * alpha
    b = [a * ((a + 1) + (a - 1) * cw + ra), -2 * a * ((a - 1) + (a + 1) * cw),
         a * ((a + 1) + (a - 1) * cw - ra)]
    den = [(a + 1) - (a - 1) * cw + ra, 2 * ((a - 1) - (a + 1) * cw),
           (a + 1) - (a - 1) * cw - ra]
    return np.array([[*(v / den[0] for v in b), 1.0, den[1] / den[0], den[2] / den[0]]])


#: augment's default range of the coloured noise's exponent alpha (power ~ 1/f^alpha): white
#: (0) to brown (2), the range of every model before augment.noise_alpha existed.
NOISE_ALPHA = (0.0, 2.0)


def check_noise_alpha(noise_alpha) -> tuple[float, float]:
    """``noise_alpha`` as (lo, hi) floats; ValueError unless two numbers with -3 <= lo <= hi
    <= 3 (-2 violet, -1 blue, 0 white, 1 pink, 2 brown)."""
    try:
        lo, hi = (float(v) for v in noise_alpha)
    except (TypeError, ValueError):
        raise ValueError(f"noise_alpha must be two numbers (lo, hi), got {noise_alpha!r}")
    if not (np.isfinite(lo) and np.isfinite(hi) and -3.0 <= lo <= hi <= 3.0):
        raise ValueError(f"noise_alpha must satisfy -3 <= lo <= hi <= 3, got {noise_alpha!r}")
    return lo, hi


#: augment's default high-shelf cut: off (p 0), so seeds give the audio of earlier versions.
HF_SHELF = {"p": 0.0, "hz": (2000.0, 5000.0), "db": (-20.0, -3.0)}


def check_hf_shelf(hf: dict) -> dict:
    """``hf`` (keys p, hz, db) checked and as floats: p in [0, 1], hz two corners (Hz) with
    0 < lo <= hi < 8000, db two gains (dB) with lo <= hi <= 0. Raises ValueError naming the
    bad key."""
    try:
        p = float(hf["p"])
        hz = tuple(float(v) for v in hf["hz"])
        db = tuple(float(v) for v in hf["db"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"hf_shelf needs p, hz (lo, hi) and db (lo, hi), got {hf!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"hf_shelf.p must be in [0, 1], got {p!r}")
    if len(hz) != 2 or not 0.0 < hz[0] <= hz[1] < SAMPLE_RATE_HZ / 2:
        raise ValueError(f"hf_shelf.hz must be (lo, hi) with 0 < lo <= hi < "
                         f"{SAMPLE_RATE_HZ // 2} Hz, got {hf['hz']!r}")
    if len(db) != 2 or not db[0] <= db[1] <= 0.0:
        raise ValueError(f"hf_shelf.db must be (lo, hi) with lo <= hi <= 0 dB, got {hf['db']!r}")
    return {"p": p, "hz": hz, "db": db}


#: augment's default speaker perturbation: off (p 0), so seeds give the audio of earlier
#: versions. ``formant``: range of the formant (vocal-tract length) ratio; ``pitch_st``: range
#: of the median pitch shift in semitones.
SPEAKER = {"p": 0.0, "formant": (0.88, 1.15), "pitch_st": (-4.0, 4.0)}


def check_speaker(sp: dict) -> dict:
    """``sp`` (keys p, formant, pitch_st) checked and as floats: p in [0, 1], formant (lo,
    hi) with 0.5 <= lo <= hi <= 2, pitch_st (lo, hi) with -12 <= lo <= hi <= 12. Raises
    ValueError naming the bad key."""
    try:
        p = float(sp["p"])
        formant = tuple(float(v) for v in sp["formant"])
        pitch = tuple(float(v) for v in sp["pitch_st"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"speaker needs p, formant (lo, hi) and pitch_st (lo, hi), got {sp!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"speaker.p must be in [0, 1], got {p!r}")
    if len(formant) != 2 or not 0.5 <= formant[0] <= formant[1] <= 2.0:
        raise ValueError(f"speaker.formant must be (lo, hi) with 0.5 <= lo <= hi <= 2, "
                         f"got {sp['formant']!r}")
    if len(pitch) != 2 or not -12.0 <= pitch[0] <= pitch[1] <= 12.0:
        raise ValueError(f"speaker.pitch_st must be (lo, hi) with -12 <= lo <= hi <= 12 "
                         f"semitones, got {sp['pitch_st']!r}")
    return {"p": p, "formant": formant, "pitch_st": pitch}


def change_speaker(x: np.ndarray, formant: float, pitch_st: float, seed: int = 0) -> np.ndarray:
    """``x`` (float32 (n,) at 16 kHz, about -1..1) as another speaker: every formant scaled by
    ``formant`` (a vocal-tract-length change: > 1 shorter, as a smaller talker) and the median
    pitch moved by ``pitch_st`` semitones, duration kept. Praat's "Change gender" through
    praat-parselmouth (Boersma and Weenink; pitch by autocorrelation in 75-600 Hz, the sound
    resampled by the formant ratio, then pitch and duration restored by PSOLA). Praat's PSOLA
    draws random periods in unvoiced stretches from its global generator, which is seeded
    with ``seed`` first, so the same input and arguments give the same output. Unvoiced
    input keeps its pitch. Returns float32 (n,)."""
    import parselmouth  # optional (the ``train`` extra), needed only for this perturbation
    from parselmouth.praat import call, run

    run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")
    snd = parselmouth.Sound(np.asarray(x, np.float64), SAMPLE_RATE_HZ)
    median = call(snd.to_pitch(0.01, 75.0, 600.0), "Get quantile", 0, 0, 0.5, "Hertz")
    new_median = 0.0 if not np.isfinite(median) else median * 2.0 ** (pitch_st / 12.0)
    out = call(snd, "Change gender", 75.0, 600.0, float(formant), float(new_median), 1.0, 1.0)
    y = np.asarray(out.values[0], np.float32)
    if len(y) != len(x):  # Praat keeps the duration; guard the sample count all the same
        y = np.resize(y, len(x)) if len(y) > len(x) else np.pad(y, (0, len(x) - len(y)))
    return np.nan_to_num(y)


def augment(
    samples: np.ndarray,
    end: int,
    rng: np.random.Generator,
    speech: list[np.ndarray] | None = None,
    snr_db: tuple[float, float] = (0.0, 30.0),
    p_noise: float = 0.8,
    rirs: tuple[np.ndarray, ...] | None = None,
    clip_p: float = 0.0,
    peak_dbfs: tuple[float, float] = PEAK_DBFS,
    hf_shelf: dict | None = None,
    noise_alpha: tuple[float, float] = NOISE_ALPHA,
    speaker: dict | None = None,
) -> tuple[np.ndarray, int]:
    """Randomly perturb a clip as a microphone in a room would hear it.

    In order: with probability ``speaker["p"]`` another speaker (:func:`change_speaker`,
    formant ratio uniform in ``speaker["formant"]``, pitch shift uniform in
    ``speaker["pitch_st"]``; the duration and ``end`` are kept), speed change 0.9..1.1
    (tempo and pitch, resampling; ``end`` follows), reverb
    (p 0.5: one of ``rirs``, e.g. :func:`room_rirs`, or without them :func:`exp_rir` with RT60
    0.1..0.8 s), band-limit (Butterworth high-pass 40..300 Hz and low-pass 3.4..7.8 kHz, p
    0.4), with probability ``hf_shelf["p"]`` a high-shelf cut (:func:`high_shelf_sos`; corner
    uniform in ``hf_shelf["hz"]``, gain uniform in ``hf_shelf["db"]``: the duller high band
    of a talker turned away from the microphone, W. T. Chu and A. C. C. Warnock, "Detailed
    directivity of sound fields around human talkers", NRC-IRC RR-104, 2002, or of weak
    fricatives), noise with probability ``p_noise``: coloured noise (power ~ 1/f^alpha, alpha
    uniform in ``noise_alpha``; below 0 the noise leans to the high band, as fans, air vents
    and running water do), hum or babble from ``speech`` (int16 clips) at ``snr_db``
    (uniform, dB), with probability ``clip_p`` clipping (gain of
    6..20 dB into full scale, as an overdriven microphone amplifier), then a peak level uniform
    in ``peak_dbfs`` (dBFS, lo <= hi <= 0). ``samples`` int16 (n,) at 16 kHz; returns (int16
    (m,), new end). With ``rirs`` None, ``clip_p`` 0, the default ``peak_dbfs`` and
    ``noise_alpha`` and no ``hf_shelf`` or ``speaker`` (or their p 0) the random draws are
    those of earlier versions, so a seed gives the same audio as before. Raises ValueError
    for a ``peak_dbfs`` outside that range, a bad ``hf_shelf`` (:func:`check_hf_shelf`),
    ``noise_alpha`` (:func:`check_noise_alpha`) or ``speaker`` (:func:`check_speaker`).
    """
    lo_db, hi_db = check_peak_dbfs(peak_dbfs)
    hf = check_hf_shelf(hf_shelf) if hf_shelf is not None else HF_SHELF
    alpha_lo, alpha_hi = check_noise_alpha(noise_alpha)
    sp = check_speaker(speaker) if speaker is not None else SPEAKER
    x = samples.astype(np.float32) / 32768.0
    if sp["p"] > 0 and rng.random() < sp["p"]:
        formant, pitch_st = rng.uniform(*sp["formant"]), rng.uniform(*sp["pitch_st"])
        x = change_speaker(x, formant, pitch_st, int(rng.integers(2**31)))
    if rng.random() < 0.6:
        speed = rng.uniform(0.9, 1.1)
        up, down = 100, int(round(100 * speed))
        x = resample_poly(x, up, down).astype(np.float32)
        end = int(round(end * up / down))
    if rng.random() < 0.5:
        h = rirs[rng.integers(len(rirs))] if rirs else exp_rir(rng.uniform(0.1, 0.8), rng)
        x = fftconvolve(x, h)[: len(x) + len(h) // 4].astype(np.float32)
    if rng.random() < 0.4:
        hp = butter(2, rng.uniform(40, 300), "highpass", fs=SAMPLE_RATE_HZ, output="sos")
        lp = butter(4, rng.uniform(3400, 7800), "lowpass", fs=SAMPLE_RATE_HZ, output="sos")
        x = sosfilt(lp, sosfilt(hp, x)).astype(np.float32)
    if hf["p"] > 0 and rng.random() < hf["p"]:
        sos = high_shelf_sos(rng.uniform(*hf["hz"]), rng.uniform(*hf["db"]))
        x = sosfilt(sos, x).astype(np.float32)
    if rng.random() < p_noise:
        kind = rng.random()
        if kind < 0.35 and speech:
            noise = babble(len(x), speech, rng)
        elif kind < 0.45:
            noise = hum(len(x), rng)
        else:
            noise = colored_noise(len(x), rng.uniform(alpha_lo, alpha_hi), rng)
        sig = np.sqrt(np.mean(x**2)) + 1e-9
        snr = rng.uniform(*snr_db)
        x = x + noise * (sig / 10 ** (snr / 20))
    if clip_p > 0 and rng.random() < clip_p:
        drive = 10 ** (rng.uniform(6, 20) / 20) / (float(np.max(np.abs(x))) + 1e-9)
        x = np.clip(x * drive, -1.0, 1.0).astype(np.float32)
    peak = float(np.max(np.abs(x))) + 1e-9
    x = x * (10 ** (rng.uniform(lo_db, hi_db) / 20) / peak)
    return to_int16(x), min(end, len(x))


def check_peak_dbfs(peak_dbfs) -> tuple[float, float]:
    """``peak_dbfs`` as (lo, hi) floats in dBFS; ValueError unless two numbers with
    lo <= hi <= 0 (a peak above full scale would clip every clip)."""
    try:
        lo, hi = (float(v) for v in peak_dbfs)
    except (TypeError, ValueError):
        raise ValueError(f"peak_dbfs must be two numbers (lo, hi) in dBFS, got {peak_dbfs!r}")
    if not (np.isfinite(lo) and lo <= hi <= 0.0):
        raise ValueError(f"peak_dbfs must satisfy lo <= hi <= 0 dBFS, got {peak_dbfs!r}")
    return lo, hi




#: Band-limited broadband noise (config ``broadband_bands``): off (p 0). Low-pass corners and
#: high-pass corners (Hz) are drawn uniformly from these ranges; fans, air vents and running
#: water put much of their power above a few kHz, machinery and traffic below.
BANDS = {"p": 0.0, "low_hz": (800.0, 3000.0), "high_hz": (2000.0, 5500.0)}


def band_limit(noise: np.ndarray, rng: np.random.Generator, bands: dict) -> np.ndarray:
    """``noise`` (float (n,)) through a 6th-order Butterworth low-pass (p 0.5, corner uniform
    in ``bands["low_hz"]``) or high-pass (corner uniform in ``bands["high_hz"]``), one pass
    (``scipy.signal.sosfilt``), back to unit RMS. Returns float (n,)."""
    from scipy.signal import butter, sosfilt

    if rng.random() < 0.5:
        sos = butter(6, rng.uniform(*bands["low_hz"]), "lowpass", fs=16000, output="sos")
    else:
        sos = butter(6, rng.uniform(*bands["high_hz"]), "highpass", fs=16000, output="sos")
    y = sosfilt(sos, noise)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def add_broadband_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator,
                        bands: dict | None = None) -> np.ndarray:
    """int16 ``x`` plus white (p 0.5) or coloured (1/f^alpha, alpha 0..1) Gaussian noise at
    ``snr_db`` below the RMS of ``x`` itself, as ``earshot.evaluate.add_noise`` measures SNR
    (silences included), where the noise's own RMS counts. With ``bands`` (config
    ``broadband_bands``, see BANDS) and ``bands["p"]`` > 0, that share of the noise is
    band-limited first (:func:`band_limit`); with p 0 no further draw is made, so the noise is
    the same as without ``bands``. Returns int16 (n,)."""
    xf = x.astype(np.float64)
    rms = np.sqrt(np.mean(xf**2)) + 1e-9
    alpha = 0.0 if rng.random() < 0.5 else rng.uniform(0.0, 1.0)
    noise = colored_noise(len(x), alpha, rng).astype(np.float64)
    if bands is not None and bands["p"] > 0 and rng.random() < bands["p"]:
        noise = band_limit(noise, rng, bands)
    noisy = xf + noise * rms / 10 ** (snr_db / 20)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)
