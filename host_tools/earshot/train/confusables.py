"""Confusable phrases of a wake word: phoneme neighbours from espeak-ng's IPA, and the rule that
keeps the wake word (and them) out of the general negatives.

A phrase's sound is espeak-ng's phoneme string (``espeak-ng -q --ipa --sep=_ -v en-us``, stress
marks dropped: :func:`phonemes`). Its confusables (:func:`confusables`) are the phrases made by
replacing one of its words with a real word whose phonemes are LEXICON_DISTANCE edits away
(substitute, insert or delete a phoneme: :func:`edit_distance`), and its partial phrases
(``"nova"`` and ``"hey"`` for ``"hey nova"``), as openWakeWord's adversarial texts do. A word
that sounds the same (distance 0, ``"hay"`` for ``"hey"``) is a homophone, not a confusable,
and never becomes a negative.

The real words (:func:`lexicon`) are the vocabulary of the prose passage texts
(:mod:`earshot.train.texts`: the Debian fortunes and documents that ``scripts/setup.sh``
installs), every word found at least MIN_COUNT times, and the words of
``/usr/share/dict/words`` (Debian ``wamerican``) when it is installed. Their phonemes are
computed once per vocabulary and espeak-ng version and kept under ``<build>/confusables/``.

"alexa" keeps its hand-made list (:data:`earshot.train.specs.CONFUSABLES`), so its specs and
models stay those of earlier versions.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import json
import re
import subprocess
from pathlib import Path

from earshot.train.specs import CONFUSABLES as ALEXA_CONFUSABLES
from earshot.train.specs import SynthError

#: At most this many confusables per phrase (nearest first, then the commoner word).
MAX_CONFUSABLES = 60
#: A lexicon word this many phoneme edits from a phrase word makes a confusable: 1 for a word
#: of up to SHORT_WORD phonemes (at 2 edits "hey" would reach "he", "a" and "I"), else 1-2.
LEXICON_DISTANCE = (1, 2)
SHORT_WORD = 3
#: A passage word counts as real from this many occurrences on (one-off typos stay out).
MIN_COUNT = 3
#: Passage sources (:data:`earshot.train.texts.TEXT_SOURCES`) whose words make the lexicon:
#: prose; the manual pages would add jargon ("iovec", "nowait") that nobody says to a device.
VOCABULARY_SOURCES = ("fortunes", "doc")
#: Debian ``wamerican``'s word list, read when installed.
DICT_WORDS = Path("/usr/share/dict/words")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """The lowercase words of ``text`` (letters, with an inner apostrophe)."""
    return _WORD.findall(text.lower())


def _espeak_version() -> str:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthError(f"confusables need espeak-ng ({exc}): apt-get install espeak-ng") \
            from None
    return out.strip()


def ipa_batch(items: list[str]) -> list[tuple[str, ...]]:
    """espeak-ng's phonemes of each of ``items`` (one espeak-ng run; each item ended by a full
    stop so it stays its own clause): tuples of phoneme symbols without stress marks. Raises
    SynthError when espeak-ng is missing or its output does not line up with the items."""
    if not items:
        return []
    text = "\n".join(f"{s}." for s in items) + "\n"
    try:
        res = subprocess.run(["espeak-ng", "-q", "--ipa", "--sep=_", "-v", "en-us"],
                             input=text, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SynthError(f"confusables need espeak-ng ({exc}): apt-get install espeak-ng") \
            from None
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    if res.returncode or len(lines) != len(items):
        raise SynthError(f"espeak-ng --ipa gave {len(lines)} lines for {len(items)} items "
                         f"(exit {res.returncode})")
    return [tuple(p.strip("ˈˌ") for p in re.split(r"[_\s]+", ln.strip()) if p.strip("ˈˌ"))
            for ln in lines]


def phonemes(text: str) -> tuple[str, ...]:
    """espeak-ng's phonemes of ``text`` (all its words, boundaries dropped)."""
    return ipa_batch([" ".join(words(text))])[0]


def edit_distance(a, b, limit: int | None = None) -> int:
    """Levenshtein distance between two phoneme sequences (substitution, insertion, deletion
    each 1); with ``limit``, any distance above it may be returned as ``limit + 1``."""
    if limit is not None and abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        if limit is not None and min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[tuple[str, int], ...]:
    """Real words and their counts: the passage texts' words seen MIN_COUNT times or more
    (each source of VOCABULARY_SOURCES whose packages are installed),
    plus DICT_WORDS' lowercase words (count 1) when installed; sorted by word."""
    from earshot.train import texts  # texts imports this module: late import

    counts: collections.Counter = collections.Counter()
    for source in VOCABULARY_SOURCES:
        try:
            for p in texts.source_passages(source):
                counts.update(words(p))
        except SynthError:
            continue  # that source's Debian packages are not installed
    out = {w: c for w, c in counts.items() if c >= MIN_COUNT and 2 <= len(w) <= 16}
    if DICT_WORDS.is_file():
        for line in DICT_WORDS.read_text(errors="replace").split():
            if line.isalpha() and line.islower() and 2 <= len(line) <= 16:
                out.setdefault(line, 1)
    if not out:
        raise SynthError("confusables: no word list (install the Debian packages fortunes, "
                         "fortunes-min or wamerican; scripts/setup.sh does)")
    return tuple(sorted(out.items()))


def _cache_dir() -> Path:
    from earshot.paths import BUILD

    return BUILD / "confusables"


@functools.lru_cache(maxsize=1)
def lexicon() -> dict[str, tuple[tuple[str, ...], int]]:
    """word -> (phonemes, count) for every word of :func:`vocabulary`, computed by one
    espeak-ng run and kept in ``<build>/confusables/lexicon-<key>.json`` (the key hashes the
    vocabulary and espeak-ng's version)."""
    vocab = vocabulary()
    key = hashlib.sha256(json.dumps([vocab, _espeak_version()]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"lexicon-{key}.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            return {w: (tuple(p), c) for w, (p, c) in data.items()}
        except (OSError, ValueError):
            pass  # a damaged cache: computed again below
    ipa = ipa_batch([w for w, _ in vocab])
    lex = {w: (p, c) for (w, c), p in zip(vocab, ipa)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({w: [list(p), c] for w, (p, c) in lex.items()}))
        tmp.replace(path)
    except OSError:
        pass  # a read-only build folder: the lexicon is computed again next time
    return lex


def _max_distance(n_phonemes: int) -> int:
    return LEXICON_DISTANCE[0] if n_phonemes <= SHORT_WORD else LEXICON_DISTANCE[1]


def neighbours(word: str, lex: dict | None = None) -> list[tuple[int, int, str]]:
    """Lexicon words whose phonemes are 1..max edits from ``word``'s (max 1 for a word of up to
    SHORT_WORD phonemes, else 2; homophones and ``word`` itself excluded): (distance, -count,
    word) sorted, nearest and commonest first."""
    lex = lexicon() if lex is None else lex
    target = phonemes(word)
    limit = _max_distance(len(target))
    out = []
    for w, (p, c) in lex.items():
        if w == word:
            continue
        d = edit_distance(p, target, limit)
        if 1 <= d <= limit:
            out.append((d, -c, w))
    return sorted(out)


def _partials(ws: list[str]) -> list[str]:
    """The contiguous shorter parts of a phrase's words, longest first: "hey nova" ->
    ["hey", "nova"]."""
    n = len(ws)
    return [" ".join(ws[i:i + k]) for k in range(n - 1, 0, -1) for i in range(n - k + 1)]


@functools.lru_cache(maxsize=16)
def _ranked(wake_word: str, limit: int) -> tuple[tuple[str, int], ...]:
    """(phrase, phoneme edits from the wake word's word it replaces, 0 for a partial phrase)
    of :func:`confusables`, in its order."""
    ws = words(wake_word)
    if not ws:
        return ()
    target = phonemes(wake_word)
    out = {p: 0 for p in _partials(ws)}
    lex = lexicon()
    # one word replaced, the phrase's words in turn (so a long first word does not crowd out
    # the others), each word's neighbours nearest and commonest first
    swaps = [[(" ".join(ws[:i] + [other] + ws[i + 1:]), d) for d, _, other in neighbours(w, lex)]
             for i, w in enumerate(ws)]
    for k in range(max(map(len, swaps), default=0)):
        for row in swaps:
            if k < len(row) and len(out) < limit and row[k][0] not in out:
                out[row[k][0]] = row[k][1]
    sounds = ipa_batch(list(out)) if out else []
    return tuple((p, d) for (p, d), ph in zip(out.items(), sounds) if ph != target)


def confusables(wake_word: str, limit: int = MAX_CONFUSABLES) -> tuple[str, ...]:
    """Phrases that sound like ``wake_word`` in part and must not wake the model: its partial
    phrases, then the phrases with one word replaced by a phoneme neighbour
    (:func:`neighbours`; the words in turn, each's nearest first), at most ``limit`` in all,
    none that sounds exactly like the wake word. "alexa" (any case) returns the hand-made
    :data:`earshot.train.specs.CONFUSABLES`. Raises SynthError without espeak-ng or a word
    list."""
    if wake_word.strip().lower() == "alexa":
        return tuple(ALEXA_CONFUSABLES)
    return tuple(p for p, _ in _ranked(" ".join(words(wake_word)), limit))


def near_confusables(wake_word: str) -> tuple[str, ...]:
    """The confusables one phoneme from the wake word (a word replaced by a neighbour one edit
    away): what the general negatives (sentences, passages) must not contain, beside the wake
    word itself. The rest (partial phrases, two edits: "no" and "over" for "nova") are common
    words that general speech is full of, and stay in it. "alexa": every phrase of
    :data:`earshot.train.specs.CONFUSABLES`, as before."""
    if wake_word.strip().lower() == "alexa":
        return tuple(ALEXA_CONFUSABLES)
    return tuple(p for p, d in _ranked(" ".join(words(wake_word)), MAX_CONFUSABLES) if d == 1)


def homophone(a: str, b: str) -> bool:
    """Whether phrases ``a`` and ``b`` sound the same to espeak-ng (equal phonemes)."""
    pa, pb = ipa_batch([" ".join(words(a)), " ".join(words(b))])
    return pa == pb


def mentions(phrase: str, other: str) -> bool:
    """Whether the words of ``other`` hold the words of ``phrase`` in a row (a folder of
    "hey computer" recordings mentions "computer"), or the reverse."""
    a, b = words(phrase), words(other)
    if not a or not b:
        return False

    def within(x, y):
        return any(y[i:i + len(x)] == x for i in range(len(y) - len(x) + 1))

    return within(a, b) or within(b, a)


def clashes(wake_word: str, other: str) -> bool:
    """Whether recordings or texts of ``other`` (a keyword of a real-negative folder) must not
    serve as negatives of ``wake_word``: one phrase holds the other (:func:`mentions`), or they
    are at most one phoneme apart (a homophone or a near one)."""
    if mentions(wake_word, other):
        return True
    pa, pb = ipa_batch([" ".join(words(wake_word)), " ".join(words(other))])
    return edit_distance(pa, pb, 1) <= 1


def text_rule(wake_word: str, extra=()) -> re.Pattern:
    """A pattern to search in *lowercased* text for ``wake_word`` (its words in a row, any
    punctuation or spaces between them, as whole words) or any phrase of ``extra``."""
    alts = {r"\W+".join(map(re.escape, words(p))) for p in [wake_word, *extra] if words(p)}
    alts = sorted(alts, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b") if alts else re.compile(r"(?!)")
