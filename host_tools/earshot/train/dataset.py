"""The real recordings, split for training and evaluation, and feature extraction.

Sources under :func:`earshot.paths.data_dir` (see its README.md):

- ``wake-word-benchmark/alexa``: development positives, never trained on (:func:`dev_positives`).
- ``wake-word-benchmark/{computer,jarvis,snowboy}``: negatives. A seeded 30 % of them is held out
  of training (:func:`heldout_negatives`) so false accepts can be reported on unseen clips; the
  end-to-end tests draw their negative clips from that part.
- ``precise-community``: every wake-word and not-wake-word folder (none says "alexa"): negatives.
- ``wuw-corpus-ii``: telephone speech at 8 kHz (resampled to 16 kHz on load): negatives.

Optional, outside the data folder: real recordings from the Debian packages the data README
lists and a few more (:data:`DEBIAN_SPEECH`, source name ``debian``: telephone prompts read by
six speakers in five languages, spoken letters and syllables in 20 languages, codec test speech,
music on hold), used as training negatives when a config asks for it.

Of the trainable negatives (``debian`` included), a seeded 15 % per source is kept for validation
(``training_negatives(part="validation")``): training chooses its cutoff there, on speech it
has not fitted.

The split is a pure function of each file's path relative to the data folder and the seed
(CRC-32 of ``"<seed>:<relpath>"``), so it does not change when files are added elsewhere.

Features always come from the Earshot C core (:func:`features`, ctypes), so training sees
exactly what the device computes.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from earshot import audio
from earshot.paths import data_dir

AUDIO_SUFFIXES = (".flac", ".wav")
WWB = "wake-word-benchmark"
WWB_NEGATIVE_FOLDERS = ("computer", "jarvis", "snowboy")
HELDOUT_FRACTION = 0.3
HELDOUT_SEED = 0
#: Fraction of the trainable negatives kept for validation (choosing the cutoff), per source.
VALIDATION_FRACTION = 0.15
#: Trainable sources in the data folder (``training_negatives`` default).
SHARED_SOURCES = ("wwb", "precise", "wuw")
#: Real recordings shipped by Debian packages (the data README's list, with the other languages
#: it names and two more prompt voices and the music-on-hold set of the same project): package
#: -> (folder, audio suffixes). Telephone prompts (8 kHz) read by six speakers: en-US (25 min),
#: es-MX (31 min, the same speaker as en-US), fr-CA (26 min), it-IT by two (24 + 25 min), ru-RU
#: (25 min); letters and syllables read in 20 languages (51 min); codec test speech (4.5 min,
#: 8 kHz); 18 min of music (8 kHz). None says "alexa".
DEBIAN_SPEECH = {
    "asterisk-core-sounds-en-wav": ("/usr/share/asterisk/sounds/en_US_f_Allison", (".wav",)),
    "asterisk-core-sounds-es-wav": ("/usr/share/asterisk/sounds/es_MX_f_Allison", (".wav",)),
    "asterisk-core-sounds-fr-wav": ("/usr/share/asterisk/sounds/fr_CA_f_June", (".wav",)),
    "asterisk-core-sounds-it-wav": ("/usr/share/asterisk/sounds/it_IT_m_Carlo", (".wav",)),
    "asterisk-core-sounds-ru-wav": ("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU", (".wav",)),
    "asterisk-prompt-it-menardi-wav": ("/usr/share/asterisk/sounds/it_IT_f_Menardi", (".wav",)),
    "asterisk-moh-opsound-wav": ("/usr/share/asterisk/moh", (".wav",)),
    "klettres-data": ("/usr/share/klettres", (".ogg",)),
    "codec2-examples": ("/usr/share/codec2/wav", (".wav",)),
}


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def _root(root) -> Path:
    return Path(root) if root is not None else data_dir()


def dev_positives(root=None, wake_word: str = "alexa") -> list[Path]:
    """Development positives ``wake-word-benchmark/<wake_word>/<n>.flac`` sorted by ``n``
    (all files, including ones that fail to decode: callers report and skip those)."""
    folder = _root(root) / WWB / wake_word
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no development clips for {wake_word!r}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES]
    return sorted(files, key=lambda p: (int(p.stem) if p.stem.isdigit() else 1 << 30, p.name))


def is_heldout(path, root=None, fraction: float = HELDOUT_FRACTION, seed: int = HELDOUT_SEED):
    """True when a wake-word-benchmark negative ``path`` belongs to the held-out part."""
    rel = Path(path).resolve().relative_to(_root(root).resolve()).as_posix()
    if not rel.startswith(f"{WWB}/") or rel.split("/")[1] not in WWB_NEGATIVE_FOLDERS:
        return False
    return zlib.crc32(f"{seed}:{rel}".encode()) % 10000 < round(fraction * 10000)


def wwb_negatives(root=None) -> list[Path]:
    """All wake-word-benchmark negative clips (computer, jarvis, snowboy), sorted."""
    root = _root(root)
    return [p for f in WWB_NEGATIVE_FOLDERS for p in _audio_files(root / WWB / f)]


def heldout_negatives(root=None) -> list[Path]:
    """The held-out wake-word-benchmark negatives (never trained on), sorted by path.

    About HELDOUT_FRACTION of each folder, chosen by a seeded hash of the relative path.
    """
    root = _root(root)
    return [p for p in wwb_negatives(root) if is_heldout(p, root)]


def _trainable_negatives(root: Path) -> dict[str, list[Path]]:
    for sub in (WWB, "precise-community", "wuw-corpus-ii"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root / sub}: missing negative source")
    return {
        "wwb": [p for p in wwb_negatives(root) if not is_heldout(p, root)],
        "precise": [
            p for p in _audio_files(root / "precise-community") if "licenses" not in p.parts
        ],
        "wuw": _audio_files(root / "wuw-corpus-ii"),
    }


def debian_negatives() -> list[Path]:
    """Every audio file of :data:`DEBIAN_SPEECH`, sorted. Raises FileNotFoundError naming the
    packages that are not installed (``apt-get install`` them; scripts/setup.sh does)."""
    missing = [pkg for pkg, (folder, _) in DEBIAN_SPEECH.items() if not Path(folder).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"real speech source 'debian' needs the Debian packages {', '.join(missing)} "
            f"(apt-get install {' '.join(missing)})"
        )
    return sorted(
        p
        for folder, suffixes in DEBIAN_SPEECH.values()
        for p in Path(folder).rglob("*")
        if p.suffix.lower() in suffixes
    )


def is_validation(path, root=None, fraction: float = VALIDATION_FRACTION) -> bool:
    """True when a trainable negative belongs to the validation part: a seeded hash of its
    path relative to the data folder (a ``debian`` file: ``<package>/<path in its folder>``),
    independent of the held-out split's hash and of where the files are installed."""
    full = Path(path).resolve()
    rel = None
    for pkg, (folder, _) in DEBIAN_SPEECH.items():
        if full.is_relative_to(Path(folder).resolve()):
            rel = f"{pkg}/{full.relative_to(Path(folder).resolve()).as_posix()}"
            break
    if rel is None:
        rel = full.relative_to(_root(root).resolve()).as_posix()
    return zlib.crc32(f"validation:{rel}".encode()) % 10000 < round(fraction * 10000)


def training_negatives(root=None, part: str = "train", sources=SHARED_SOURCES
                       ) -> dict[str, list[Path]]:
    """Negative clips by source: ``wwb`` (not held out), ``precise``, ``wuw`` and, when
    ``sources`` names it, ``debian`` (:func:`debian_negatives`). ``part="train"``: the ones
    training may fit; ``"validation"``: the ones it may only use to choose detector settings
    (about VALIDATION_FRACTION of each source). Returns the ``sources`` asked for. Raises
    FileNotFoundError when a source folder (or Debian package) is missing, ValueError for
    another ``part`` or an unknown source."""
    if part not in ("train", "validation"):
        raise ValueError(f"part must be 'train' or 'validation', got {part!r}")
    unknown = set(sources) - {*SHARED_SOURCES, "debian"}
    if unknown:
        raise ValueError(f"unknown negative sources {sorted(unknown)}: "
                         f"choose from {[*SHARED_SOURCES, 'debian']}")
    root = _root(root)
    want = part == "validation"
    found = _trainable_negatives(root) if set(sources) & set(SHARED_SOURCES) else {}
    if "debian" in sources:
        found["debian"] = debian_negatives()
    return {name: [p for p in found[name] if is_validation(p, root) == want] for name in sources}


def all_negatives(root=None) -> list[Path]:
    """Every negative clip of the shared folder (training and held-out parts), sorted."""
    root = _root(root)
    sources = _trainable_negatives(root)
    return sorted(sources["wwb"] + heldout_negatives(root) + sources["precise"] + sources["wuw"])


def load_clips(paths, notify=None) -> tuple[list[np.ndarray], list[tuple[Path, str]]]:
    """Load ``paths`` as int16 16 kHz mono; returns (clips, failures as (path, reason)).

    Undecodable files are reported through ``notify(message)`` and skipped, never raised.
    """
    clips, failed = [], []
    for p in paths:
        try:
            clips.append(audio.load(p))
        except audio.AudioError as exc:
            failed.append((Path(p), str(exc)))
            if notify is not None:
                notify(f"skipped {exc}")
    return clips, failed


def features(samples: np.ndarray) -> np.ndarray:
    """Earshot log-mel features of int16 samples at 16 kHz: int8 (n_samples // 160, 40).

    Computed by the C core's frontend (``earshot.core.features``), bit-identical with the device.
    """
    from earshot import core

    return core.features(np.ascontiguousarray(samples, dtype=np.int16))
