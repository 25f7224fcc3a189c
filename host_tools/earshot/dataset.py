"""The real recordings, split for training and evaluation, and feature extraction.

Sources under :func:`earshot.paths.data_dir` (see its README.md):

- ``wake-word-benchmark/alexa``: development positives, never trained on (:func:`dev_positives`).
- ``wake-word-benchmark/{computer,jarvis,snowboy}``: negatives. A seeded 30 % of them is held out
  of training (:func:`heldout_negatives`) so false accepts can be reported on unseen clips; the
  end-to-end tests draw their negative clips from that part.
- ``precise-community``: every wake-word and not-wake-word folder (none says "alexa"): negatives.
- ``wuw-corpus-ii``: telephone speech at 8 kHz (resampled to 16 kHz on load): negatives.

Of the trainable negatives, a seeded 15 % per source is kept for validation
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


def is_validation(path, root=None, fraction: float = VALIDATION_FRACTION) -> bool:
    """True when a trainable negative belongs to the validation part (seeded hash of its
    relative path, independent of the held-out split's hash)."""
    rel = Path(path).resolve().relative_to(_root(root).resolve()).as_posix()
    return zlib.crc32(f"validation:{rel}".encode()) % 10000 < round(fraction * 10000)


def training_negatives(root=None, part: str = "train") -> dict[str, list[Path]]:
    """Negative clips by source (``wwb`` not held out, ``precise``, ``wuw``): ``part="train"``
    the ones training may fit, ``"validation"`` the ones it may only use to choose detector
    settings (about VALIDATION_FRACTION of each source). Raises FileNotFoundError when a
    source folder is missing, ValueError for another ``part``."""
    if part not in ("train", "validation"):
        raise ValueError(f"part must be 'train' or 'validation', got {part!r}")
    root = _root(root)
    want = part == "validation"
    return {
        name: [p for p in paths if is_validation(p, root) == want]
        for name, paths in _trainable_negatives(root).items()
    }


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
