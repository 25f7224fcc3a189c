"""Texts of the long synthetic passages: plentiful English prose from Debian packages, split
into a training part and a held-out part, with no wake word and no confusable in any passage.

Sources (``synth_passages.texts``), each read from the files its pinned Debian packages
install (``dpkg -L``; ``scripts/setup.sh`` installs them), so two machines with the same
package versions read the same text:

- ``fortunes``: the fortune databases (:func:`earshot.train.specs.passage_texts`; packages
  ``fortunes``, ``fortunes-min``): quotations, jokes, proverbs.
- ``man``: the manual pages of MAN_PACKAGES (roff source stripped of its markup and of
  its code examples, :func:`roff_paragraphs`): about 2,500 pages of technical prose.
- ``doc``: the plain-text documents of DOC_PACKAGES (the Debian FAQ, the Debian Reference,
  the constitution, the social contract, the bug tracker's guides; :func:`text_paragraphs`).

Paragraphs are cut at sentence ends into passages of PASSAGE_CHARS characters (Kokoro takes
at most 510 tokens) and kept when speakable (:func:`speakable`) and free of the wake word
and of its confusables (:func:`forbidden`: for "alexa" every phrase of ``specs.CONFUSABLES``,
for another phrase those of :mod:`earshot.train.confusables`). A passage is
held out when the first byte of the sha256 of its text is below HELDOUT_BYTE (about 15 %):
training with ``synth.pool: "train"`` never reads those, ``bench/longform.py`` reads only
those.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import subprocess
from pathlib import Path

from earshot.train.specs import CONFUSABLES, PASSAGE_CHARS, SynthError, passage_texts

TEXT_SOURCES = ("fortunes", "man", "doc")
#: Debian packages read by each source beyond ``fortunes``.
MAN_PACKAGES = ("manpages", "manpages-dev")
DOC_PACKAGES = ("debian-faq", "debian-reference-en", "doc-debian")
#: A passage whose text's sha256 starts with a byte below this is held out (38/256, 15 %).
HELDOUT_BYTE = 38
PARTS = ("all", "train", "heldout")
#: Characters of a speakable passage (at least 95 % of them).
SPEAKABLE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"-")


def package_files(package: str) -> list[Path]:
    """Regular files installed by the Debian package ``package`` (``dpkg -L``), sorted;
    empty when it is not installed or there is no dpkg."""
    try:
        res = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if res.returncode:
        return []
    return sorted(p for p in map(Path, res.stdout.splitlines()) if p.is_file()
                  and not p.is_symlink())


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


# groff escapes: fonts, sizes, strings, registers, zero-width and spacing escapes
_ESCAPE = re.compile(r"\\f(\[[^\]]*\]|\(..|.)|\\s[+-]?\d+|\\[*n](\(..|\[[^\]]*\]|.)"
                     r"|\\[&|^%:/,)c]|\\\(..|\\\[[^\]]*\]")
_CHARS = {r"\-": "-", r"\(em": " - ", r"\(en": "-", r"\(aq": "'", r"\(dq": '"',
          r"\(lq": '"', r"\(rq": '"', r"\(oq": "'", r"\(cq": "'", r"\e": "\\", r"\ ": " ",
          r"\~": " "}
_BREAKS = {"PP", "P", "LP", "TP", "IP", "HP", "SH", "SS", "sp", "TQ"}
_FONT = {"B", "I", "SM", "SB"}
_ALTERNATING = {"BR", "RB", "IR", "RI", "BI", "IB"}


def _unescape(text: str) -> str:
    for esc, char in _CHARS.items():
        text = text.replace(esc, char)
    return _ESCAPE.sub("", text)


def roff_paragraphs(source: str) -> list[str]:
    """The prose paragraphs of a manual page's roff ``source``: text lines and the text of
    font macros (.B, .I, .BR, ...), a new paragraph at every paragraph or heading macro;
    headings (.SH, .SS, .TH), other requests, comments and the examples between .nf/.fi or
    .EX/.EE left out; escapes removed or replaced by their characters."""
    paras: list[str] = []
    cur: list[str] = []
    literal = False
    for line in source.splitlines():
        if line.startswith((".", "'")):
            m = re.match(r"[.']\s*([A-Za-z]+)\s*(.*)", line)
            macro, rest = m.groups() if m else ("", "")
            if macro in ("nf", "EX"):
                literal = True
            elif macro in ("fi", "EE"):
                literal = False
            if macro in _BREAKS and cur:
                paras.append(" ".join(cur))
                cur = []
            if macro in _FONT | _ALTERNATING and not literal:
                args = [a or b for a, b in re.findall(r'"([^"]*)"|(\S+)', rest)]
                cur.append(("" if macro in _ALTERNATING else " ").join(args))
            continue
        if not literal and line.strip():
            cur.append(line.strip())
    if cur:
        paras.append(" ".join(cur))
    return [" ".join(_unescape(p).split()) for p in paras]


def text_paragraphs(source: str) -> list[str]:
    """Paragraphs of a plain-text document: blocks between blank lines, lines joined."""
    return [" ".join(b.split()) for b in re.split(r"\n\s*\n", source) if b.strip()]


def passages(paragraph: str, chars: tuple[int, int] = PASSAGE_CHARS) -> list[str]:
    """``paragraph`` cut after sentence ends (``.``, ``!``, ``?`` then a space) into
    passages of ``chars`` (lo, hi) characters, greedily; a sentence longer than hi is
    dropped, a rest shorter than lo too."""
    lo, hi = chars
    out, cur = [], ""
    for sent in re.split(r"(?<=[.!?])\s+", paragraph):
        if len(sent) > hi:
            if len(cur) >= lo:
                out.append(cur)
            cur = ""
            continue
        if cur and len(cur) + 1 + len(sent) > hi:
            if len(cur) >= lo:
                out.append(cur)
            cur = ""
        cur = f"{cur} {sent}" if cur else sent
    if len(cur) >= lo:
        out.append(cur)
    return out


def speakable(text: str) -> bool:
    """At least 95 % of ``text`` in SPEAKABLE, and some letters."""
    return bool(text) and sum(c in SPEAKABLE for c in text) >= 0.95 * len(text) and \
        any(c.isalpha() for c in text)


def forbidden(wake_word: str) -> re.Pattern:
    """What no passage may contain, a pattern to search in *lowercased* text: ``wake_word``
    anywhere (as specs.passage_texts), and its confusables as whole words: for "alexa" every
    phrase of specs.CONFUSABLES (one alternation after a word boundary: 10x faster than one
    per phrase), for another phrase its words in a row (any punctuation between them) and its
    confusables one phoneme away (:func:`earshot.train.confusables.near_confusables`)."""
    pattern = re.escape(wake_word.lower())
    if wake_word.lower() == "alexa":
        alts = sorted({re.escape(c.lower()) for c in CONFUSABLES}, key=len, reverse=True)
        pattern += r"|\b(?:" + "|".join(alts) + r")\b"
        return re.compile(pattern)
    from earshot.train import confusables

    rule = confusables.text_rule(wake_word, confusables.near_confusables(wake_word))
    return re.compile(pattern + "|" + rule.pattern)


def heldout(text: str) -> bool:
    """Whether ``text`` belongs to the held-out part (sha256's first byte < HELDOUT_BYTE)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] < HELDOUT_BYTE


def _source_passages(source: str, wake_word: str) -> list[str]:
    """Every speakable passage of one source, in file order (before the wake-word filter)."""
    if source == "fortunes":
        return list(passage_texts(wake_word))
    pkgs, split = ((MAN_PACKAGES, roff_paragraphs) if source == "man"
                   else (DOC_PACKAGES, text_paragraphs))
    files = [f for p in pkgs for f in package_files(p)]
    if source == "man":
        files = [f for f in files if "/man/man" in str(f)]  # English pages only
    else:
        files = [f for f in files if f.name.endswith((".txt", ".txt.gz"))]
    if not files:
        raise SynthError(f"texts: no files of the Debian packages {', '.join(pkgs)} for source "
                         f"{source!r}: install them (scripts/setup.sh does)")
    out = []
    for f in files:
        for para in split(_read(f)):
            out += [p for p in passages(para) if speakable(p)]
    return out


@functools.lru_cache(maxsize=8)
def source_passages(source: str) -> tuple[str, ...]:
    """Every speakable passage of one source of TEXT_SOURCES, before any wake-word filter
    (the vocabulary of :func:`earshot.train.confusables.vocabulary`). Raises SynthError when
    its packages are not installed."""
    return tuple(_source_passages(source, "\x00"))


@functools.lru_cache(maxsize=8)
def _filtered(source: str, wake_word: str) -> tuple[str, ...]:
    """The passages of one source without any :func:`forbidden` match (cached per process:
    the parts of :func:`passage_pool` share it)."""
    rule = forbidden(wake_word)
    return tuple(p for p in _source_passages(source, wake_word) if not rule.search(p.lower()))


@functools.lru_cache(maxsize=8)
def passage_pool(sources: tuple = ("fortunes",), wake_word: str = "alexa",
                 part: str = "all") -> tuple[str, ...]:
    """The passages of ``sources`` (names of TEXT_SOURCES, read in that order) for
    ``wake_word``: speakable, none matching :func:`forbidden`, duplicates dropped (first
    kept), and of ``part``: "all", "train" (not :func:`heldout`) or "heldout". Raises
    ValueError for an unknown source or part, SynthError when a source's packages are not
    installed."""
    bad = [s for s in sources if s not in TEXT_SOURCES]
    if bad or not sources or part not in PARTS:
        raise ValueError(f"synth_passages.texts: sources must be some of {TEXT_SOURCES} "
                         f"(got {list(sources)}), part one of {PARTS} (got {part!r})")
    seen, out = set(), []
    for source in TEXT_SOURCES:
        if source not in sources:
            continue
        for p in _filtered(source, wake_word):
            if p in seen:
                continue
            seen.add(p)
            if part == "all" or heldout(p) == (part == "heldout"):
                out.append(p)
    return tuple(out)


def for_config(cfg: dict) -> tuple[str, ...] | None:
    """The passage texts of a training config: None (the fortunes of
    :func:`earshot.train.specs.passage_texts`, as before these keys) for "alexa" with the
    default ``synth_passages.texts`` (["fortunes"]) and ``synth.pool`` "all"; else
    :func:`passage_pool` of those sources and the pool's part (for another phrase, also
    without its near confusables: :func:`forbidden`)."""
    sources = tuple(cfg["synth_passages"].get("texts", ["fortunes"]))
    pool = cfg["synth"].get("pool", "all")
    if sources == ("fortunes",) and pool == "all" and cfg["wake_word"].lower() == "alexa":
        return None
    return passage_pool(sources, cfg["wake_word"], pool)
