"""What the synthetic speech says and in which voice: specs drawn from a seed.

A spec is a JSON-able dict (``engine``, ``voice``, ``text`` and engine parameters) that
:func:`earshot.train.tts.render` turns into audio. :func:`positive_specs`,
:func:`negative_specs` and :func:`passage_specs` draw spec ``i`` from
``numpy.random.default_rng([seed, kind, i])``, so a data set is reproducible from its seed and
independent of the number of worker processes. The training config's ``synth`` and
``synth_passages`` counts say how many of each; a :class:`earshot.train.voices.VoiceSet`
(``voices=``; its defaults draw as every earlier version did) says from which voices, and
``texts=`` (:func:`earshot.train.texts.passage_pool`) which passage texts.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from earshot.train.tts import ESPEAK_VOICES, FLITE_VOICES, KOKORO_VOICES, SynthError
from earshot.train.voices import DEFAULT_VOICES, VoiceSet, english_blend

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

# --- specs ------------------------------------------------------------------------------------


def _draw_voice(rng: np.random.Generator, weights: dict | None = None,
                vs: VoiceSet = DEFAULT_VOICES) -> dict:
    """An engine drawn with ``weights`` (default ENGINE_WEIGHTS) and its voice parameters
    from the voice set ``vs``: the voice half of a spec (no ``text``). With the default
    ``vs`` the random calls are those of every earlier version (the same specs)."""
    weights = weights or ENGINE_WEIGHTS
    engines = list(weights)
    engine = engines[rng.choice(len(engines), p=list(weights.values()))]
    if engine == "espeak":
        variants = vs.espeak_variants
        variant = variants[rng.integers(len(variants))]
        voice = ESPEAK_VOICES[rng.integers(len(ESPEAK_VOICES))]
        return {
            "engine": engine,
            "voice": voice + (f"+{variant}" if variant else ""),
            "rate": int(rng.integers(110, 221)),  # words per minute, espeak-ng -s
            "pitch": int(rng.integers(15, 86)),  # 0..99, espeak-ng -p
            "gap": int(rng.integers(0, 3)),  # word gap in 10 ms units, espeak-ng -g
        }
    if engine in ("festival", "flite"):
        voices = vs.festival if engine == "festival" else FLITE_VOICES
        return {
            "engine": engine,
            "voice": voices[rng.integers(len(voices))],
            "stretch": round(float(rng.uniform(0.8, 1.35)), 3),
            "f0": int(rng.integers(90, 221)),  # Hz
        }
    if vs.kokoro != "ja" and (vs.kokoro == "en" or rng.random() < 0.5):
        # 2-3 English tables of the pool (earshot.train.voices.english_blend)
        blend = english_blend(rng, vs.english_tables)
        return {"engine": "kokoro", "voice": "+".join(blend["tables"]), **blend,
                "speed": round(float(rng.uniform(0.8, 1.2)), 3)}
    # Kokoro: a random speaker between the five tables (Dirichlet, alpha < 1 keeps some
    # speakers close to one voice), speed 0.8..1.2 as the model card suggests.
    blend = rng.dirichlet(np.full(len(KOKORO_VOICES), 0.6))
    return {
        "engine": "kokoro",
        "voice": "blend",
        "blend": [round(float(b), 4) for b in blend],
        "speed": round(float(rng.uniform(0.8, 1.2)), 3),
    }


def positive_specs(n: int, seed: int, wake_word: str = "alexa",
                   voices: VoiceSet = DEFAULT_VOICES) -> list[dict]:
    """``n`` specs of the wake word, spec ``i`` drawn from ``default_rng([seed, 1, i])``, in
    voices of ``voices`` (its ``engine_weights``).

    About 30 % get a prefix word and 25 % a following request (same voice). ``wake_word`` other
    than "alexa" is spoken as given (no spelling variants).
    """
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, 1, i])
        spec = _draw_voice(rng, voices.engine_weights, voices)
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


def negative_texts(wake_word: str = "alexa") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(confusables, sentences) that the negatives of ``wake_word`` say: for "alexa"
    CONFUSABLES and SENTENCES as they are (the specs of earlier versions); for another phrase
    its generated confusables (:func:`earshot.train.confusables.confusables`) and the
    SENTENCES that neither say it nor one of its near confusables
    (:func:`earshot.train.confusables.near_confusables`: "computer, open the pod bay doors"
    is no negative of "computer")."""
    if wake_word.strip().lower() == "alexa":
        return CONFUSABLES, SENTENCES
    from earshot.train import confusables  # imports this module: late import

    rule = confusables.text_rule(wake_word, confusables.near_confusables(wake_word))
    return (confusables.confusables(wake_word),
            tuple(s for s in SENTENCES if not rule.search(s.lower())))


def negative_specs(n: int, seed: int, voices: VoiceSet = DEFAULT_VOICES,
                   wake_word: str = "alexa") -> list[dict]:
    """``n`` specs of confusable phrases and general sentences of ``wake_word``
    (:func:`negative_texts`; never the wake word), spec ``i`` drawn from
    ``default_rng([seed, 2, i])``, in voices of ``voices``. A phrase without confusables
    gets sentences only."""
    conf, sentences = negative_texts(wake_word)
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, 2, i])
        spec = _draw_voice(rng, voices.engine_weights, voices)
        if rng.random() < CONFUSABLE_FRACTION and conf:
            spec["text"] = conf[rng.integers(len(conf))]
        else:
            spec["text"] = sentences[rng.integers(len(sentences))]
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


def passage_specs(n: int, seed: int, wake_word: str = "alexa",
                  voices: VoiceSet = DEFAULT_VOICES, texts: tuple | None = None,
                  stream: int = 3) -> list[dict]:
    """``n`` specs of long general speech (negatives: a text of ``texts``, default the
    fortunes of :func:`passage_texts`, in a voice of ``voices`` drawn with its
    ``passage_engine_weights``, default PASSAGE_ENGINE_WEIGHTS), spec ``i`` drawn from
    ``default_rng([seed, stream, i])`` (``bench/longform.py`` uses another ``stream``).
    Rendered, they last about 3-20 s each. Raises SynthError for an empty ``texts``."""
    texts = passage_texts(wake_word) if texts is None else texts
    if n and not texts:
        raise SynthError("passage_specs: no passage texts")
    specs = []
    for i in range(n):
        rng = np.random.default_rng([seed, stream, i])
        spec = _draw_voice(rng, voices.passage_engine_weights or PASSAGE_ENGINE_WEIGHTS, voices)
        spec["text"] = texts[rng.integers(len(texts))]
        specs.append(spec)
    return specs

