"""The real recordings, split for training and evaluation, and feature extraction.

Sources under :func:`earshot.paths.data_dir` (see its README.md):

- ``wake-word-benchmark/alexa``: development positives (:func:`dev_positives`), grouped by
  speaker (:func:`dev_speakers`) into folds of whole speakers (:func:`speaker_folds`). Training
  reads them only when a config names folds (``real_positives``, :func:`fold_record`), and
  numbers on them come only from folds a model neither trained nor validated on.
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
#: Sources outside it: the Debian speech (:func:`debian_negatives`) and the corpora of
#: ``earshot data fetch`` (:func:`corpora_negatives`).
OTHER_SOURCES = ("debian", "corpora")
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


#: What the recordings of each real-negative folder say, by source and folder (None: no one
#: word), and for ``wuw`` (sessions, not words) what the whole source says: a folder whose
#: words clash with the wake word's (:func:`clashing_folders`) is left out of its negatives.
FOLDER_WORDS = {
    "wwb": {"computer": "computer", "jarvis": "jarvis", "snowboy": "snowboy"},
    "precise": {"amelia": "amelia", "athena": "athena", "computer": "computer",
                "heychatterbox": "hey chatterbox", "heycomputer": "hey computer",
                "not-wake-words": None},
}
WUW_WORDS = ("operator", "onword", "wildfire", "voyager")


def clashing_folders(wake_word: str) -> list[str]:
    """The real-negative folders that say ``wake_word`` or something one phoneme from it
    (:func:`earshot.train.confusables.clashes`), as ``<source>/<folder>`` (``wuw`` whole):
    "computer" leaves out ``wwb/computer``, ``precise/computer`` and ``precise/heycomputer``;
    "alexa" none. Needs espeak-ng (SynthError without it)."""
    from earshot.train import confusables

    out = [f"{source}/{folder}" for source, folders in FOLDER_WORDS.items()
           for folder, said in folders.items()
           if said is not None and confusables.clashes(wake_word, said)]
    if any(confusables.clashes(wake_word, w) for w in WUW_WORDS):
        out.append("wuw")
    return out


def _folder_of(source: str, path: Path) -> str:
    """``<source>/<folder>`` of a real-negative file (``wuw`` for the whole source)."""
    if source == "wuw":
        return "wuw"
    top = WWB if source == "wwb" else "precise-community"
    parts = Path(path).parts
    return f"{source}/{parts[parts.index(top) + 1]}" if top in parts else source


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


# --- real positives by speaker ----------------------------------------------------------------

#: How the development clips of a wake word group into speakers: ``block`` neighbouring file
#: numbers per speaker (file n is in block n // block), and inclusive file-number ranges whose
#: blocks are merged into one group (:func:`dev_speakers` gives the evidence).
SPEAKER_RULES = {"alexa": {"block": 4, "merge": ((0, 7), (16, 23), (108, 119))}}
#: Speaker-grouped folds of the real positives unless a config says otherwise.
DEFAULT_FOLDS = 5


def dev_speakers(root=None, wake_word: str = "alexa") -> list[list[Path]]:
    """The development clips ``wake-word-benchmark/<wake_word>/<n>.flac`` grouped by speaker:
    a list of groups in file order, each a list of paths in file order (every file, decodable
    or not; the groups of "alexa" hold 120 files, 117 of which decode).

    The data README says only that neighbouring files share a speaker. The rule of "alexa"
    (:data:`SPEAKER_RULES`) comes from the audio itself, measured on the 117 clips that decode
    (:func:`speaker_cues`: DC offset, and the mean and spread of the cepstrum of Earshot's
    log-mel over each clip's loudest 30 % of hops, distances between clips as the RMS of the
    z-scored differences):

    - **Blocks of four.** Among all block sizes 2-8 and offsets, blocks of 4 starting at file 0
      separate best on files 8-107: clips less than a block apart are 0.57 closer when in one
      block than across a boundary, every other size and offset 0.29 or less. At each of the
      24 block boundaries there the mean distance across it exceeds the mean distance within
      both blocks, by 0.15-0.89 (median 0.47). The DC offset (mean sample), a property of the
      recording device, mostly stays within 1 LSB in a block and often jumps at a boundary
      (-7.7 LSB on 8-11, -0.2 on 12-15, +19.8 on 35, -10.4 on 36-39).
    - **Merged, because the evidence does not separate them** (a bigger group never leaks):
      0-7 (one DC offset throughout, and clips of 0-3 are no closer to each other than to
      those of 4-7, margin -0.25: two speakers in turns, or one); 16-23 (loud clips, DC -6.9
      and -8.5 LSB, within the blocks' own spread of up to 2.7 LSB; the margin at 20 is 0.41
      here but 0.21 by librosa's MFCC, the smallest that no DC jump confirms); 108-119
      (108-114, 116 and 117 are one voice and device, 0.4-0.8 apart, margins -0.12 and -0.19
      at 112 and 116; 118-119 sound like another speaker, who may continue past file 119,
      outside the shared data).
    - Kept although close: 12|16 and 72|76 (margins 0.17 and 0.15) sit at DC jumps, -0.2 to
      -6.9 and -3.1 to -0.3 LSB: another device.

    So "alexa" has 26 groups: 23 of four files, 0-7 and 16-23 of eight, 108-119 of twelve;
    32-35 holds the three files that fail to decode and one that does. Files past the rule's
    ranges fall in blocks of four. Raises FileNotFoundError when the folder is missing,
    ValueError for a wake word without a rule (use :func:`folder_speakers`).
    """
    if wake_word not in SPEAKER_RULES:
        raise ValueError(f"no speaker rule for the development clips of {wake_word!r}: put "
                         f"recordings in one folder per speaker (folder_speakers)")
    rule = SPEAKER_RULES[wake_word]
    groups: dict[int, list[Path]] = {}
    for p in dev_positives(root, wake_word):
        if not p.stem.isdigit():
            raise ValueError(f"{p}: development clips are named by number")
        n = int(p.stem)
        key = next((lo for lo, hi in rule["merge"] if lo <= n <= hi), n - n % rule["block"])
        groups.setdefault(key, []).append(p)
    return [groups[k] for k in sorted(groups)]


def folder_speakers(folder) -> list[list[Path]]:
    """Recordings of a wake word under ``folder``, one subfolder per speaker: a list of groups
    (subfolders sorted by name, their audio files sorted by path). Raises FileNotFoundError
    for a missing folder, ValueError when it holds audio outside a subfolder or no subfolder
    with audio."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    loose = [p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES]
    if loose:
        raise ValueError(f"{folder}: audio outside a speaker folder ({loose[0].name}); put each "
                         f"speaker's recordings in a subfolder of their own")
    groups = [_audio_files(d) for d in sorted(folder.iterdir()) if d.is_dir()]
    groups = [g for g in groups if g]
    if not groups:
        raise ValueError(f"{folder}: no speaker subfolder with audio")
    return groups


def speakers(source=None, root=None, wake_word: str = "alexa") -> list[list[Path]]:
    """The real positives grouped by speaker: :func:`dev_speakers` when ``source`` is None,
    else :func:`folder_speakers` of ``source``. Raises as those do."""
    return dev_speakers(root, wake_word) if source is None else folder_speakers(source)


def speaker_folds(groups: list[list[Path]], k: int = DEFAULT_FOLDS) -> list[list[Path]]:
    """``k`` folds of speaker ``groups`` (lists of paths, in order): each fold a run of whole,
    neighbouring groups, cut at the group boundary nearest to each 1/k of the files (the
    earlier on a tie), so no group is split and neighbours stay together except at the k - 1
    cuts. Deterministic: depends on the group sizes alone, not on which files decode. For
    "alexa" and k = 5: files 0-23, 24-47, 48-71, 72-95 and 96-119 (24, 21, 24, 24 and 24 clips
    decode). Returns k lists of paths. Raises ValueError unless 2 <= k <= len(groups)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= len(groups):
        raise ValueError(f"folds must be an int from 2 to the {len(groups)} speaker groups, "
                         f"got {k!r}")
    ends = np.cumsum([len(g) for g in groups])  # files up to the end of each group
    cuts, last = [], 0
    for j in range(1, k):
        # group boundaries still free: after `last`, leaving one group per remaining fold
        free = range(last + 1, len(groups) - (k - j) + 1)
        best = min(free, key=lambda b: (abs(ends[b - 1] - j * ends[-1] / k), b))
        cuts.append(best)
        last = best
    bounds = [0, *cuts, len(groups)]
    return [[p for g in groups[a:b] for p in g] for a, b in zip(bounds, bounds[1:])]


def check_folds(k: int, train_folds, validation_folds) -> tuple[list[int], list[int], list[int]]:
    """The fold choice of a run (config ``real_positives``), checked: returns (train,
    validation, unused) as sorted lists of fold indices 0..k-1. Raises ValueError for k below
    2, an index out of range, a repeated index, a fold in both lists, or no fold left unused
    (numbers on real speakers come from unused folds only)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"config: real_positives.folds must be an int >= 2, got {k!r}")
    parts = {}
    for name, folds in (("train_folds", train_folds), ("validation_folds", validation_folds)):
        folds = list(folds)
        if any(isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < k for f in folds):
            raise ValueError(f"config: real_positives.{name} must hold fold indices 0..{k - 1}, "
                             f"got {folds}")
        if len(set(folds)) != len(folds):
            raise ValueError(f"config: real_positives.{name} repeats a fold: {folds}")
        parts[name] = sorted(folds)
    both = set(parts["train_folds"]) & set(parts["validation_folds"])
    if both:
        raise ValueError(f"config: real_positives folds {sorted(both)} are in train_folds and "
                         f"validation_folds")
    unused = sorted(set(range(k)) - set(parts["train_folds"]) - set(parts["validation_folds"]))
    if not unused:
        raise ValueError("config: real_positives uses every fold; leave at least one unused, "
                         "the only clips the model may be reported on")
    return parts["train_folds"], parts["validation_folds"], unused


def source_name(source=None, root=None, wake_word: str = "alexa") -> tuple[Path, str]:
    """The folder of the real positives and the name a manifest records for it: the
    development folder (``source`` None) as ``wake-word-benchmark/<wake_word>``; another
    folder relative to the data folder when inside it, else as its absolute path."""
    if source is None:
        return _root(root) / WWB / wake_word, f"{WWB}/{wake_word}"
    folder = Path(source).resolve()
    base = data_dir(required=False) if root is None else Path(root)
    if base is not None and folder.is_relative_to(Path(base).resolve()):
        return folder, folder.relative_to(Path(base).resolve()).as_posix()
    return folder, folder.as_posix()


def fold_record(rc: dict, wake_word: str = "alexa", root=None) -> dict:
    """What a manifest records of a run's real positives (config ``real_positives`` ``rc``):
    ``source`` (:func:`source_name`), ``folds`` (k), ``train_folds``, ``validation_folds``,
    ``unused_folds`` (:func:`check_folds`) and ``fold_files``: per fold, its files relative
    to the source folder (posix), every file of the fold whether it decodes or not. Raises
    as :func:`check_folds`, :func:`speakers` and :func:`speaker_folds` do."""
    k = rc["folds"]
    train, val, unused = check_folds(k, rc["train_folds"], rc["validation_folds"])
    folder, name = source_name(rc["source"], root, wake_word)
    folds = speaker_folds(speakers(rc["source"], root, wake_word), k)
    return {"source": name, "folds": k, "train_folds": train, "validation_folds": val,
            "unused_folds": unused,
            "fold_files": [[p.resolve().relative_to(folder.resolve()).as_posix() for p in f]
                           for f in folds]}


def speaker_cues(clips) -> tuple[np.ndarray, np.ndarray]:
    """The evidence :func:`dev_speakers` rests on, for int16 clips at 16 kHz: (distances, DC).
    Each clip's Earshot log-mel (:func:`features`) over its loudest 30 % of hops (by mean
    level), cepstrum (DCT-II of the 40 bins, coefficients 1-19), mean and standard deviation
    per coefficient, z-scored across the clips; distances float64 (n, n): RMS of the
    differences. DC float64 (n,): each clip's mean sample (LSB)."""
    from scipy.fft import dct

    rows = []
    for x in clips:
        f = features(x).astype(np.float64)
        level = f.mean(axis=1)
        c = dct(f[level >= np.percentile(level, 70)], type=2, norm="ortho", axis=1)[:, 1:20]
        rows.append(np.concatenate([c.mean(axis=0), c.std(axis=0)]))
    z = np.asarray(rows)
    z = (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-12)
    dist = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).mean(axis=-1))
    return dist, np.array([float(np.mean(x)) for x in clips])


def word_end(samples: np.ndarray) -> int:
    """Estimated end (sample index, exclusive) of the one word in a real recording, int16
    (n,) at 16 kHz. 10 ms frames; L the loudest frame's level, N the noise floor (20th
    percentile of the frames that are not digital silence), in dB. From the loudest frame the
    word runs on through frames above max(L - 30, N + 8) dB, bridging gaps up to 200 ms (the
    stop in "alexa", a weak second syllable over a high floor), then through frames above
    max(L - 45, N + 4) dB. Biased late on purpose: a window that ends after the word still
    holds all of it, one that ends early would teach the model to fire on its first part.
    On the 117 "alexa" clips the shipped model's output peaks 0.55 s before to 0.15 s after
    this end (median 0.04 s before; within 0.25 s for 91 %): some recordings carry breath or
    handling noise after the word, which the estimate includes. Raises ValueError for a clip
    shorter than one frame."""
    n = len(samples) // 160
    if n == 0:
        raise ValueError("word_end: the clip is shorter than 10 ms")
    frames = samples[: n * 160].astype(np.float64).reshape(n, 160)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-3)
    sound = np.any(frames != 0, axis=1)
    floor = np.percentile(level[sound], 20) if sound.any() else level.min()
    top, k = level.max(), int(np.argmax(level))
    on = level > max(top - 30, floor + 8)
    j = last = k
    while j < n and j - last <= 20:
        if on[j]:
            last = j
        j += 1
    while last + 1 < n and level[last + 1] > max(top - 45, floor + 4):
        last += 1
    return (last + 1) * 160


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


def debian_negatives(installed_only: bool = False) -> list[Path]:
    """Every audio file of :data:`DEBIAN_SPEECH`, sorted. Raises FileNotFoundError naming the
    packages that are not installed (``apt-get install`` them; scripts/setup.sh does), unless
    ``installed_only``: then the files of the packages that are (maybe none)."""
    missing = [pkg for pkg, (folder, _) in DEBIAN_SPEECH.items() if not Path(folder).is_dir()]
    if missing and not installed_only:
        raise FileNotFoundError(
            f"real speech source 'debian' needs the Debian packages {', '.join(missing)} "
            f"(apt-get install {' '.join(missing)})"
        )
    return sorted(
        p
        for folder, suffixes in DEBIAN_SPEECH.values()
        if Path(folder).is_dir()
        for p in Path(folder).rglob("*")
        if p.suffix.lower() in suffixes
    )


def corpora_negatives() -> list[Path]:
    """Every audio file (AUDIO_SUFFIXES, ``.ogg``) under the folder of fetched corpora
    (:func:`earshot.train.fetch.corpora_dir`, ``earshot data fetch``), sorted; empty when
    there is none."""
    from earshot.train.fetch import corpora_dir

    folder = corpora_dir()
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in (*AUDIO_SUFFIXES, ".ogg") and p.is_file())


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
        from earshot.train.fetch import corpora_dir

        corpora = corpora_dir().resolve()
        rel = (f"corpora/{full.relative_to(corpora).as_posix()}"
               if full.is_relative_to(corpora)
               else full.relative_to(_root(root).resolve()).as_posix())
    return zlib.crc32(f"validation:{rel}".encode()) % 10000 < round(fraction * 10000)


def training_negatives(root=None, part: str = "train", sources=SHARED_SOURCES,
                       without=(), debian_installed_only: bool = False
                       ) -> dict[str, list[Path]]:
    """Negative clips by source: ``wwb`` (not held out), ``precise``, ``wuw`` and, when
    ``sources`` names them, ``debian`` (:func:`debian_negatives`) and ``corpora``
    (:func:`corpora_negatives`). ``part="train"``: the ones
    training may fit; ``"validation"``: the ones it may only use to choose detector settings
    (about VALIDATION_FRACTION of each source). Returns the ``sources`` asked for. Raises
    FileNotFoundError when a source folder (or Debian package) is missing, ValueError for
    another ``part`` or an unknown source. ``without``: folders left out, as
    :func:`clashing_folders` names them (``wwb/computer``, ``wuw``, ...);
    ``debian_installed_only``: ``debian`` is the files of the packages installed
    (:func:`debian_negatives`)."""
    if part not in ("train", "validation"):
        raise ValueError(f"part must be 'train' or 'validation', got {part!r}")
    unknown = set(sources) - {*SHARED_SOURCES, *OTHER_SOURCES}
    if unknown:
        raise ValueError(f"unknown negative sources {sorted(unknown)}: "
                         f"choose from {[*SHARED_SOURCES, *OTHER_SOURCES]}")
    shared = set(sources) & set(SHARED_SOURCES)
    root = _root(root) if shared else root  # debian alone needs no data folder
    want = part == "validation"
    found = _trainable_negatives(root) if shared else {}
    if "debian" in sources:
        found["debian"] = debian_negatives(debian_installed_only)
    if "corpora" in sources:
        found["corpora"] = corpora_negatives()
    drop = set(without)
    return {name: [p for p in found[name] if is_validation(p, root) == want
                   and _folder_of(name, p) not in drop] for name in sources}


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
