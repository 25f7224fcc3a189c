"""The data of one training run: synthetic speech, real negatives, training and validation sets.

Stages, in the order :func:`earshot.train.pipeline.train` runs them:

1. :func:`synthesize`: synthetic positives of the wake word (filtered by
   :func:`earshot.train.synth.check_positive`), confusable words and sentences, and long TTS
   passages (config ``synth``, ``synth_passages``), cached under ``<cache_dir>``.
2. :func:`real_negatives`: the training and validation parts of the real negative speech
   (:func:`earshot.train.dataset.training_negatives`; config ``real_negatives``) and, with
   config ``real_positives``, the real wake-word clips of the chosen speaker folds
   (:func:`real_positives`).
3. :func:`split_positives`: synthetic positives into training and validation, by index.
4. :func:`training_set`: the training windows (:mod:`earshot.train.windows`): positives
   (synthetic, then the real clips of ``real_positives.train_folds``), synthetic negatives,
   the negative streams (:func:`negative_streams`) and noise, with their labels and class
   weights.
5. :func:`validation_set`: the validation positives (synthetic, and the real clips of
   ``real_positives.validation_folds``) and negative streams, never fitted.

Every random draw comes from ``numpy.random.default_rng([seed, stream, ...])``, so the data
follow ``seed`` alone. The development clips ``wake-word-benchmark/alexa`` are read only when
``real_positives`` names folds, and then only the clips of those folds; without it the
training windows are those of earlier versions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot import audio
from earshot.core import SAMPLE_RATE_HZ
from earshot.train import augmentation, dataset, synth, texts, voices
from earshot.train.windows import (
    Context,
    inputs,
    noise_windows,
    noisy_stream,
    positive_windows,
    stream,
    synth_negative_windows,
    windows_ending,
)


def _hours(samples: int) -> float:
    return samples / SAMPLE_RATE_HZ / 3600


@dataclass
class Speech:
    """Synthetic speech (:func:`earshot.train.synth.generate` dicts): ``pos`` the kept
    positives, ``neg`` the negatives, ``passages`` the long negative passages (a list of int16
    clips, empty when ``synth_passages.count`` is 0)."""

    pos: dict
    neg: dict
    passages: list
    voices: int = 0  # distinct voices of the kept clips (earshot.train.voices.count_voices)
    hours: float = 0.0  # hours of synthetic audio, positives, negatives and passages


def synthesize(cfg: dict, cache_dir: Path, log) -> Speech:
    """Render (or read from ``cache_dir``) the synthetic speech of ``cfg``. Raises ValueError
    when fewer than 2 positives pass the filter, or before any rendering for a bad
    ``real_positives`` (:func:`check_real_positives`)."""
    check_real_positives(cfg)
    sc, seed, word = cfg["synth"], int(cfg["seed"]), cfg["wake_word"]
    vs, tag = voices.from_config(cfg), voices.cache_tag(cfg)  # tag "" for default voices
    vs.check_available()  # a config that needs the English tables fails here, naming the fix
    log(f"synthesising {sc['positives']} positives and {sc['negatives']} negatives")
    pos = synth.generate(synth.positive_specs(sc["positives"], seed, word, vs),
                         cache_dir / f"{word.replace(' ', '_')}-pos-s{seed}{tag}",
                         check=sc["check"], workers=sc["workers"], progress="positives",
                         log=log)
    # "alexa" says specs.CONFUSABLES and SENTENCES, the cache of earlier versions; another
    # phrase its own confusables and sentences, in a cache of its own
    neg_name = "neg" if word.lower() == "alexa" else f"{word.replace(' ', '_')}-neg"
    neg = synth.generate(synth.negative_specs(sc["negatives"], seed, vs, word),
                         cache_dir / f"{neg_name}-s{seed}{tag}", check=False,
                         workers=sc["workers"], progress="negatives", log=log)
    n_pass = int(cfg["synth_passages"]["count"])
    pas = synth.generate(
        synth.passage_specs(n_pass, seed, word, vs, texts.for_config(cfg)) if n_pass else [],
        cache_dir / f"passages-{word.replace(' ', '_')}-s{seed}{tag}",
        check=False, workers=sc["workers"], progress="passages", log=log,
    )
    log(f"positives kept {len(pos['audio'])}, dropped {len(pos['dropped'])}")
    if len(pos["audio"]) < 2:
        raise ValueError("fewer than 2 usable synthetic positives: check the TTS engines")
    clips = pos["audio"] + neg["audio"] + pas["audio"]
    return Speech(pos, neg, pas["audio"], voices.count_voices(pos["specs"] + neg["specs"]
                                                              + pas["specs"]),
                  _hours(sum(len(c) for c in clips)))


def from_folder(folder, cfg: dict, log) -> Speech:
    """The synthetic speech of a folder written by ``earshot data synth``
    (``earshot.cli.data``: ``index.json`` and its wav files) in place of :func:`synthesize`:
    its positives (with their word ends), negatives and passages, whatever the counts of
    ``cfg["synth"]``. Raises ValueError when the folder has no index, says another wake
    word, or holds fewer than 2 positives; FileNotFoundError for a missing clip."""
    import json

    folder = Path(folder)
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{folder}: no readable index.json of earshot data synth ({exc})") \
            from None
    said = " ".join(str(index.get("wake_word", "")).split()).lower()
    if said != " ".join(cfg["wake_word"].split()).lower():
        raise ValueError(f"{folder}: clips of {index.get('wake_word')!r}, but the wake word is "
                         f"{cfg['wake_word']!r}")

    def clips(kind):
        out = []
        for entry in index.get(kind, []):
            path = folder / entry["file"]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: listed in index.json but missing")
            out.append(audio.load(path))
        return out

    pos = {"audio": clips("positives"),
           "end": np.asarray([e["end"] for e in index.get("positives", [])], np.int64),
           "specs": [e["spec"] for e in index.get("positives", [])],
           "dropped": [(d["spec"], d["reason"]) for d in index.get("dropped", [])]}
    neg = {"audio": clips("negatives"), "end": np.zeros(0, np.int64),
           "specs": [e["spec"] for e in index.get("negatives", [])], "dropped": []}
    pas = clips("passages")
    if len(pos["audio"]) < 2:
        raise ValueError(f"{folder}: fewer than 2 positives")
    log(f"synthetic speech from {folder}: {len(pos['audio'])} positives, {len(neg['audio'])} "
        f"negatives, {len(pas)} passages")
    specs = pos["specs"] + neg["specs"] + [e["spec"] for e in index.get("passages", [])]
    return Speech(pos, neg, pas, voices.count_voices(specs),
                  _hours(sum(len(c) for c in pos["audio"] + neg["audio"] + pas)))


def check_real_positives(cfg: dict) -> bool:
    """Whether ``cfg`` trains or validates on real positives (``real_positives`` names a
    fold), after checking its keys: fold indices (:func:`earshot.train.dataset.check_folds`)
    and ``copies`` (None or an int >= 1), and that a wake word without a speaker rule
    (:data:`earshot.train.dataset.SPEAKER_RULES`) names a ``source`` folder. Raises ValueError
    naming the key."""
    rc = cfg["real_positives"]
    if not rc["train_folds"] and not rc["validation_folds"]:
        return False
    dataset.check_folds(rc["folds"], rc["train_folds"], rc["validation_folds"])
    if rc["source"] is None and cfg["wake_word"] not in dataset.SPEAKER_RULES:
        raise ValueError(f"config: real_positives.source: the development clips of "
                         f"{cfg['wake_word']!r} have no speaker rule; give a folder with one "
                         f"subfolder per speaker")
    c = rc["copies"]
    if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
        raise ValueError(f"config: real_positives.copies must be null or an int >= 1, got {c!r}")
    return True


@dataclass
class RealPositives:
    """Real wake-word clips of the chosen speaker folds, int16 at 16 kHz, as caches like
    :func:`earshot.train.synth.generate`'s: ``train`` {"audio": clips, "end": int64 (n,) the
    word's estimated end, :func:`earshot.train.dataset.word_end`}; ``validation`` {"audio",
    "end": int64 (n,) each clip's length, as it is scored whole}; ``record`` what the
    manifest keeps (:func:`earshot.train.dataset.fold_record`, plus clip counts)."""

    train: dict
    validation: dict
    record: dict


def real_positives(cfg: dict, log) -> RealPositives | None:
    """The clips of ``real_positives.train_folds`` and ``validation_folds`` (None when both
    are empty: nothing is read). Undecodable files are skipped and counted. Raises
    ValueError for a bad fold choice, FileNotFoundError (or DataMissing) when the
    recordings are missing."""
    if not check_real_positives(cfg):
        return None
    rc = cfg["real_positives"]
    record = dataset.fold_record(rc, cfg["wake_word"])
    folder, _ = dataset.source_name(rc["source"], None, cfg["wake_word"])
    parts = {}
    for part in ("train", "validation"):
        names = [n for f in record[f"{part}_folds"] for n in record["fold_files"][f]]
        clips, failed = dataset.load_clips([folder / n for n in names])
        ends = [dataset.word_end(c) if part == "train" else len(c) for c in clips]
        parts[part] = {"audio": clips, "end": np.asarray(ends, np.int64)}
        record[f"{part}_clips"] = len(clips)
        record[f"{part}_unreadable"] = len(failed)
    log(f"real positives: {record['train_clips']} clips of folds {record['train_folds']} for "
        f"training, {record['validation_clips']} of folds {record['validation_folds']} for "
        f"validation; folds {record['unused_folds']} never read")
    return RealPositives(parts["train"], parts["validation"], record)


@dataclass
class Negatives:
    """Real negative speech (int16 clips at 16 kHz): ``train`` for training windows, context
    and babble, ``failed`` the unreadable training files, ``validation`` never fitted; and
    ``positives``, the real wake-word clips of the chosen folds (:func:`real_positives`), or
    None. ``sources``: the sources read (:func:`negative_sources`); ``without``: the folders
    left out because they say the wake word (:func:`earshot.train.dataset.clashing_folders`)."""

    train: list
    failed: list
    validation: list
    positives: RealPositives | None = None
    sources: tuple = ()
    without: tuple = ()


def negative_sources(cfg: dict, log) -> tuple[list[str], bool]:
    """The real negative sources a run can read: ``real_negatives.sources``, or, when the shared
    recordings are absent (:func:`earshot.paths.data_dir`), the other sources plus the Debian
    speech that is installed (``debian``, :data:`earshot.train.dataset.DEBIAN_SPEECH`) and the
    corpora of ``earshot data fetch`` (``corpora``), logged.
    Returns (sources, whether ``debian`` may lack packages). Raises DataMissing when
    ``real_positives`` needs the shared recordings, or when no negative speech is left at all
    (no real source and no ``synth_passages``): both before any rendering."""
    from earshot.paths import DataMissing, data_dir

    sources = list(cfg["real_negatives"]["sources"])
    shared = [s for s in sources if s in dataset.SHARED_SOURCES]
    if not shared or data_dir(required=False) is not None:
        return sources, False
    if check_real_positives(cfg) and cfg["real_positives"]["source"] is None:
        data_dir()  # raises DataMissing naming the path looked for
    rest = [s for s in sources if s not in shared]
    if dataset.debian_negatives(installed_only=True) and "debian" not in rest:
        rest.append("debian")
    if dataset.corpora_negatives() and "corpora" not in rest:
        rest.append("corpora")
    if not rest and not int(cfg["synth_passages"]["count"]):
        raise DataMissing("shared recordings not found (set EARSHOT_DATA), no Debian speech "
                          "installed (apt-get install klettres-data asterisk-core-sounds-en-wav) "
                          "and synth_passages.count is 0: no negative speech to train on")
    log(f"shared recordings not found (EARSHOT_DATA): training without {', '.join(shared)}, "
        f"on {' and '.join(rest + ['synthetic speech']) if rest else 'synthetic speech'}")
    return rest, True


def real_negatives(cfg: dict, log) -> Negatives:
    """The real recordings of a run: the negative clips of the sources of
    :func:`negative_sources` (the shared recordings when present), without the folders that
    say the wake word (:func:`earshot.train.dataset.clashing_folders`); with ``max_clips`` a
    seeded choice of that many training clips and a quarter as many (at least 10) validation
    clips; and the real positives of ``real_positives`` (:func:`real_positives`). Raises
    FileNotFoundError (or DataMissing) when the recordings are missing."""
    rc = cfg["real_negatives"]
    names, fallback = negative_sources(cfg, log)
    without = dataset.clashing_folders(cfg["wake_word"]) if names else []
    if without:
        log(f"real negatives: leaving out {', '.join(without)} (they say "
            f"{cfg['wake_word']!r} or a word one phoneme from it)")
    sources = dataset.training_negatives(sources=names, without=without,
                                         debian_installed_only=fallback)
    paths = [p for s in names for p in sources[s]]
    rng = np.random.default_rng([int(cfg["seed"]), 6])
    if rc["max_clips"] is not None:
        paths = [paths[k] for k in sorted(rng.permutation(len(paths))[: rc["max_clips"]])]
    real, failed = dataset.load_clips(paths)
    val_sources = dataset.training_negatives(part="validation", sources=names, without=without,
                                             debian_installed_only=fallback)
    val_paths = [p for s in names for p in val_sources[s]]
    if rc["max_clips"] is not None:  # a quick run: a quarter as many validation clips
        keep = max(10, rc["max_clips"] // 4)
        val_paths = [val_paths[k] for k in sorted(rng.permutation(len(val_paths))[:keep])]
    val_real, _ = dataset.load_clips(val_paths)
    log(f"real negatives: {len(real)} clips for training ({len(failed)} unreadable), "
        f"{len(val_real)} for validation")
    return Negatives(real, failed, val_real, real_positives(cfg, log), tuple(names),
                     tuple(without))


def split_passages(cfg: dict, speech: Speech, negs: Negatives, log) -> None:
    """With no real validation negatives (no shared recordings, no Debian speech), a seeded
    VALIDATION_PASSAGES share of the passages (at least one) moves from ``speech.passages``
    to ``negs.validation``: the cutoff is then chosen on synthetic speech never fitted.
    Nothing changes when real validation clips exist. Raises ValueError when there are
    neither."""
    if negs.validation:
        return
    n = len(speech.passages)
    if n < 2:
        raise ValueError("no validation negatives: no real recordings and fewer than 2 "
                         "synthetic passages (raise synth_passages.count)")
    order = np.random.default_rng([int(cfg["seed"]), 18]).permutation(n)
    val = set(order[: max(1, int(round(VALIDATION_PASSAGES * n)))].tolist())
    negs.validation = [speech.passages[k] for k in sorted(val)]
    speech.passages = [c for k, c in enumerate(speech.passages) if k not in val]
    log(f"validation negatives: {len(negs.validation)} synthetic passages held out "
        "(no real recordings)")


#: Share of the passages held out for validation when there are no real negatives.
VALIDATION_PASSAGES = 0.2


def split_positives(n_pos: int, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the synthetic positives kept for validation (``validation_fraction``, at
    least one) and for training, each sorted, drawn from ``[seed, 7]``."""
    order = np.random.default_rng([int(cfg["seed"]), 7]).permutation(n_pos)
    n_val = max(1, int(round(cfg["validation_fraction"] * n_pos)))
    return np.sort(order[:n_val]), np.sort(order[n_val:])


def negative_streams(cfg: dict, real: list, passages: list, ctx: Context):
    """The negative streams windows are cut from and mining scores: the real clips joined,
    an augmented copy (``real_negatives.augmented_copy``), ``noisy_copies`` in broadband noise
    (with ``noisy_copy_snr_db``), then the TTS passages augmented and in noise. Returns
    (streams: int16 arrays, hours of the clean real stream, hours of the passages)."""
    rc, seed = cfg["real_negatives"], int(cfg["seed"])
    n_aug = int(round(rc["augmented_fraction"] * len(real)))
    streams = [stream(real, np.random.default_rng([seed, 8]))] if real else []
    if rc["augmented_copy"] and real:
        arng = np.random.default_rng([seed, 9])
        aug = [augmentation.augment(c, len(c), arng, speech=real, snr_db=(5, 30), **ctx.aug)[0]
               for c in real[:n_aug]]
        streams.append(stream(aug, arng))
    if rc["noisy_copy_snr_db"] is not None and real:  # speech in broadband noise, every clip
        for k in range(int(rc["noisy_copies"])):
            nrng = np.random.default_rng([seed, 14] if k == 0 else [seed, 14, k])
            streams.append(noisy_stream(real, rc["noisy_copy_snr_db"], nrng,
                                        bands=cfg["broadband_bands"]))
    hours, pass_hours = (_hours(len(streams[0])) if real else 0.0), 0.0
    if passages:
        prng = np.random.default_rng([seed, 16])
        aug = [augmentation.augment(c, len(c), prng, speech=real, snr_db=(5, 30), **ctx.aug)[0]
               for c in passages]
        streams.append(stream(aug, prng))
        pass_hours = _hours(len(streams[-1]))
        snr = rc["noisy_copy_snr_db"] or cfg["broadband_snr_db"]
        for k in range(int(cfg["synth_passages"]["noisy_copies"])):
            streams.append(noisy_stream(passages, snr, np.random.default_rng([seed, 17, k]),
                                        bands=cfg["broadband_bands"]))
    return streams, hours, pass_hours


def real_positive_windows(cfg: dict, cache: dict, frames: int, ctx: Context, twins=None):
    """Windows of the real training positives ``cache`` (:class:`RealPositives`' ``train``),
    as :func:`earshot.train.windows.positive_windows` cuts synthetic ones, with
    ``real_positives.copies`` copies (None: ``positives.copies``), no early negative (the
    word's end is an estimate) and draws of their own (stream 30). Returns (xs, ys)."""
    rc = cfg["real_positives"]
    copies = cfg["positives"]["copies"] if rc["copies"] is None else int(rc["copies"])
    rcfg = {**cfg, "positives": {**cfg["positives"], "copies": copies, "early_negative": False}}
    return positive_windows(cache, range(len(cache["audio"])), rcfg, frames, ctx,
                            int(cfg["seed"]), twins, stream=30)


@dataclass
class TrainingSet:
    """The training windows: ``x`` int8 (n, frames, 40), labels ``y`` uint8 (n,), weights
    ``w`` float32 (n,) (mining appends to all three); ``x_twin`` the first positive windows
    again without their broadband noise (distill.clean_targets) or None; ``stream_feats`` the
    model input of each negative stream, int8 (m, 40), for mining; ``n_streams``, ``hours``
    and ``pass_hours`` for the summary."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    x_twin: np.ndarray | None
    stream_feats: list
    n_streams: int
    hours: float
    pass_hours: float


def training_set(cfg: dict, speech: Speech, negs: Negatives, ctx: Context, train_idx,
                 frames: int, log) -> TrainingSet:
    """Every training window of ``frames`` rows: positives of the clips ``train_idx``
    (:func:`earshot.train.windows.positive_windows`), synthetic negatives, windows every
    ``real_negatives.stride_hops`` of each negative stream (a seeded offset per stream) and
    ``noise_windows`` noise windows; positives weighted ``positive_weight`` x the negative to
    positive ratio, weights normalised to mean 1."""
    seed, dc = int(cfg["seed"]), cfg["distill"]
    t0 = time.monotonic()
    twins = [] if dc["width"] and dc["clean_targets"] else None
    xs, ys = positive_windows(speech.pos, train_idx, cfg, frames, ctx, seed, twins)
    if negs.positives is not None and negs.positives.train["audio"]:
        xs_real, ys_real = real_positive_windows(cfg, negs.positives.train, frames, ctx, twins)
        xs += xs_real
        ys += ys_real
    # x's first len(x_twin) rows are these windows; their clean twins give the teachers' targets
    x_twin = np.concatenate(twins) if twins else None
    xs_neg = synth_negative_windows(speech.neg, cfg, frames, ctx, seed)
    ys += [np.zeros(len(a), np.uint8) for a in xs_neg]
    xs += xs_neg
    streams, hours, pass_hours = negative_streams(cfg, negs.train, speech.passages, ctx)
    stream_feats = [inputs(s, cfg) for s in streams]
    stride_hops = cfg["real_negatives"]["stride_hops"]
    for k, f in enumerate(stream_feats):
        off = int(np.random.default_rng([seed, 10, k]).integers(stride_hops))
        w = windows_ending(f, range(frames - 1 + off, len(f), stride_hops), frames)
        xs.append(w)
        ys.append(np.zeros(len(w), np.uint8))
    xn = noise_windows(cfg["noise_windows"], frames, seed, cfg)
    xs.append(xn)
    ys.append(np.zeros(len(xn), np.uint8))
    x, y = np.concatenate(xs), np.concatenate(ys)
    n1 = int(y.sum())
    log(f"windows: {n1} positive, {len(y) - n1} negative, T={frames} "
        f"({time.monotonic() - t0:.0f} s)")
    weight_pos = cfg["positive_weight"] * (len(y) - n1) / max(1, n1)
    w = np.where(y == 1, weight_pos, 1.0).astype(np.float32)
    w /= w.mean()
    return TrainingSet(x, y, w, x_twin, stream_feats, len(streams), hours, pass_hours)


@dataclass
class ValidationSet:
    """What detector settings are chosen on: the synthetic positives ``pos`` (a
    :func:`earshot.train.synth.generate` dict) at indices ``idx``, the context ``ctx`` their
    copies are augmented with, the model input ``feats`` (int8 (n, 40)) of each validation
    negative stream, their length ``hours`` and the number of validation ``clips``; ``real``
    the real validation positives (:class:`RealPositives`' ``validation``, each scored whole)
    or None."""

    pos: dict
    idx: np.ndarray
    ctx: Context
    feats: list
    hours: float
    clips: int
    real: dict | None = None


def validation_set(cfg: dict, speech: Speech, negs: Negatives, ctx: Context,
                   val_idx) -> ValidationSet:
    """The validation positives ``val_idx`` and the validation negative streams: the clips
    joined clean, augmented (noise, reverb), and once at each ``detector.validation_snr_db``
    in broadband noise."""
    seed, val_real = int(cfg["seed"]), negs.validation
    vrng = np.random.default_rng([seed, 13])
    val_streams = [stream(val_real, vrng)]
    val_streams.append(stream([augmentation.augment(c, len(c), vrng, speech=negs.train,
                                                    snr_db=(5, 30))[0] for c in val_real],
                              vrng))
    for k, snr in enumerate(cfg["detector"]["validation_snr_db"]):
        val_streams.append(noisy_stream(val_real, (snr, snr),
                                        np.random.default_rng([seed, 15, k])))
    hours = _hours(sum(len(s) for s in val_streams))
    real = negs.positives.validation if negs.positives is not None else None
    return ValidationSet(speech.pos, val_idx, ctx, [inputs(s, cfg) for s in val_streams], hours,
                         len(val_real), real if real and real["audio"] else None)


def stats(cfg: dict, speech: Speech, negs: Negatives, ts: TrainingSet,
          val: ValidationSet) -> dict:
    """The run summary's data entries, in the summary's order (windows excluded: mining
    adds to them); with real positives, ``real_positives``: their record
    (:class:`RealPositives`), so the manifest says which folds trained, validated and were
    never used."""
    out = {
        "synthetic_positives": len(speech.pos["audio"]),
        "synthetic_positives_dropped": len(speech.pos["dropped"]),
        "synthetic_negatives": len(speech.neg["audio"]),
        "synthetic_voices": speech.voices,
        "synthetic_hours": round(speech.hours, 3),
        "real_negative_clips": len(negs.train),
        "real_negative_sources": sorted(negs.sources or cfg["real_negatives"]["sources"]),
        "negative_streams": ts.n_streams,
        "real_negative_hours": round(ts.hours, 3),
        "validation_negative_clips": val.clips,
        "validation_negative_hours": round(val.hours, 3),
    }
    if negs.without:
        out["real_negatives_left_out"] = list(negs.without)
    if negs.positives is not None:
        out["real_positives"] = negs.positives.record
    return out
