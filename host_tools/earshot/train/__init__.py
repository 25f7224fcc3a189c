"""Train a wake-word model and package it: synthetic positives, real negatives, int8 export.

The modules, in the order a training config is followed (:func:`train`,
:mod:`earshot.train.pipeline`):

- :mod:`~earshot.train.config`: ``DEFAULT_CONFIG`` (every key, with its meaning) and
  :func:`load_config`.
- :mod:`~earshot.train.data`: the run's data, stage by stage: synthetic speech
  (:mod:`~earshot.train.synth`: :mod:`~earshot.train.specs` says what is said in which voice,
  :mod:`~earshot.train.tts` renders it, :func:`~earshot.train.synth.check_positive` filters
  it), real negatives (:mod:`~earshot.train.dataset`), training and validation sets.
- :mod:`~earshot.train.windows`: windows of ``T = arch.receptive_field(cfg)`` feature rows
  from the C core (:func:`inputs`), augmented by :mod:`~earshot.train.augmentation`
  (rooms, noise, levels): positives ending 0..``max_shift_ms`` after the word (label 1) and
  one well before it (label 0), synthetic negatives, negative streams, noise.
- :mod:`~earshot.train.arch`: the network (a time-only DS-CNN) and its int8 conversion.
- :mod:`~earshot.train.fit`: Keras fitting (binary cross-entropy on the logit, class weights,
  SpecAugment, weight averaging, weight QAT); :mod:`~earshot.train.mining`: hard negatives
  from the negative streams.
- :mod:`~earshot.train.distill`: wider teachers, soft targets, mixup, the teacher cache.
- :mod:`~earshot.train.calibrate`: detector window and cutoff on the validation data (by
  default scored with the int8 model through the C core, :class:`Int8Scorer`), and the
  ranking of students and seeds (:func:`validation_rank`).
- :mod:`~earshot.train.packaging`: int8 .tflite, blob, manifest, summary and model card.

The development clips ``wake-word-benchmark/alexa`` are never read here.

Importing this package is light: the names below are looked up in their modules on first use
(PEP 562), and TensorFlow is imported only when a model is built or fitted, so evaluation and
benchmarks can ``from earshot.train import dataset, synth`` without it.
"""

from __future__ import annotations

import importlib

#: Public names of ``earshot.train`` -> the submodule that defines them.
_EXPORTS = {
    "config": ("DEFAULT_CONFIG", "load_config"),
    "windows": ("Context", "end_row", "windows_ending", "inputs", "positive_windows",
                "synth_negative_windows", "stream", "noisy_stream", "noise_windows"),
    "augmentation": ("add_broadband_noise",),
    "fit": ("spec_augment", "refresh_batchnorm", "quantize_per_channel", "weight_qat_callback",
            "fit_model", "seed_init", "rounded_accuracy"),
    "mining": ("mine", "predict", "stream_logits", "fit_and_mine"),
    "distill": ("teacher_arch", "distill_targets", "mix_batch", "teacher_cache_key",
                "save_teachers", "load_teachers"),
    "calibrate": ("validation_probs", "Int8Scorer", "detections", "choose_cutoff",
                  "detector_windows", "choose_detector", "validation_rank"),
    "packaging": ("package", "new_card", "write_card_numbers", "CARD_BEGIN", "CARD_END"),
    "pipeline": ("train", "train_seeds", "recall_problem"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = ("arch", "augmentation", "calibrate", "config", "confusables", "data", "dataset",
               "distill", "fetch", "fit", "mining", "packaging", "pipeline", "specs", "synth",
               "texts", "tts", "voices", "windows")


def __getattr__(name: str):
    """``earshot.train.<name>``: a public name of a submodule (_EXPORTS), or a submodule,
    imported on first use. AttributeError for anything else."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE) | set(_SUBMODULES))
