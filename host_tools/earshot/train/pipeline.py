"""The training pipeline: a config in, a model package out.

:func:`train` runs the stages in order: data (:mod:`earshot.train.data`), teachers
(:mod:`earshot.train.distill`, with ``distill.width``), students (fit and mining,
:mod:`earshot.train.fit` and :mod:`earshot.train.mining`), int8 conversion and detector
settings on validation data (:mod:`earshot.train.calibrate`), stage and package
(:mod:`earshot.train.packaging`). :func:`train_seeds` trains once per ``train_seed`` and
packages the run validation ranks first.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from earshot.paths import BUILD
from earshot.train import arch, calibrate, data, distill, fit, mining, packaging
from earshot.train.windows import Context


def _start_tensorflow(threads: int, log) -> None:
    """Import TensorFlow with ``threads`` intra-op threads and one inter-op thread. The
    environment is set before the first import (TensorFlow reads it when its pools start);
    a process that already started TensorFlow keeps its pools (logged)."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    import tensorflow as tf  # lazy by design: the thread settings above must come first

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # TensorFlow already started in this process (e.g. a test converted a model before):
        # its thread pools are fixed now; training still runs, with those pools.
        log(f"TensorFlow already initialised: keeping its thread settings ({threads} asked)")


@dataclass
class Setup:
    """A run's fixed numbers: the network ``arch_cfg`` and its input ``frames`` and output
    ``stride`` (hops), the weight-init seed ``tseed`` (``train_seed``, else ``seed``), the
    weight-average momentum ``ema`` and the synthetic audio ``cache_dir``."""

    arch_cfg: dict
    frames: int
    stride: int
    tseed: int
    ema: float
    cache_dir: Path


def _setup(cfg: dict, cache_dir) -> Setup:
    """Check every key that could fail late (SpecAugment masks, distillation, detector
    windows and validation model, weight averaging, passage count) and derive the
    :class:`Setup`. Raises ValueError naming the bad key before any work."""
    arch_cfg = cfg["arch"] or arch.DEFAULT_ARCH
    frames = arch.receptive_field(arch_cfg)
    fit.spec_augment(np.zeros((1, frames, arch_cfg.get("input_bins", arch.MEL_BINS)), np.int8),
                     np.random.default_rng(0), cfg["spec_augment"])  # a bad mask config fails
    distill.check_config(cfg)
    calibrate.detector_windows(cfg["detector"])
    calibrate.validation_model(cfg["detector"])
    ema, _ = fit.weight_average(cfg)
    if int(cfg["synth_passages"]["count"]) < 0:
        raise ValueError("config: synth_passages.count must be >= 0, got "
                         f"{int(cfg['synth_passages']['count'])}")
    tseed = int(cfg["seed"]) if cfg["train_seed"] is None else int(cfg["train_seed"])
    return Setup(arch_cfg, frames, arch.output_stride(arch_cfg), tseed, ema,
                 Path(cache_dir or BUILD / "synth"))


def _student(k: int, cfg: dict, run: Setup, ts: data.TrainingSet,
             teaching: distill.Teaching | None, val: data.ValidationSet, log) -> dict:
    """Train student ``k`` (seeded ``tseed`` for student 0, else ``tseed + 500 + 1000 k``):
    distilled from ``teaching`` (:func:`earshot.train.distill.fit_student`), or without
    teachers fitted and mined on ``ts`` itself (which then grows by its mined windows); then
    ``qat.epochs`` of weight QAT, int8 conversion and :func:`earshot.train.calibrate.validate`.
    Returns the validation dict plus "student", "model" (Keras), "tflite" and
    "fit_seconds"."""
    s_seed = run.tseed if k == 0 else run.tseed + 500 + 1000 * k
    t1 = time.monotonic()
    fit.seed_init(cfg, s_seed)
    model = arch.build_model(run.arch_cfg)
    if teaching is not None:
        dc = cfg["distill"]
        if int(dc["students"]) > 1 or int(dc["first_student"]):
            log(f"student {k + 1} ({k - int(dc['first_student']) + 1} of {int(dc['students'])}):")
        xk, labels, wk = distill.fit_student(model, ts, teaching, cfg, run.frames, run.stride,
                                             log, s_seed, run.ema)
    else:
        ts.x, ts.y, ts.w = mining.fit_and_mine(model, ts.x, ts.y, ts.w, ts.stream_feats,
                                               run.frames, run.stride, cfg, log, s_seed,
                                               ema=run.ema)
        xk, labels, wk = ts.x, ts.y, ts.w
    qc = cfg["qat"]
    if qc["epochs"]:
        log(f"quantization-aware fine-tuning: {qc['epochs']} epochs")
        fit.fit_model(model, xk, labels, wk, cfg, qc["epochs"], qc["learning_rate"], log,
                      s_seed + 50, callbacks=[fit.weight_qat_callback(model)])
    fit_seconds = time.monotonic() - t1
    tflite = packaging.to_int8(model, xk, int(cfg["seed"]))
    result = calibrate.validate(model, tflite, val, cfg, run.frames, run.stride, log)
    return {"student": k, "model": model, "tflite": tflite, "fit_seconds": fit_seconds,
            **result}


def _students(cfg: dict, run: Setup, ts: data.TrainingSet, teaching, val, log):
    """Train ``distill.students`` students from ``distill.first_student`` on (one without a
    teacher) and keep the one :func:`earshot.train.calibrate.validation_rank` puts first (a
    tie keeps the earlier; one Keras model in memory at a time). Returns (best run,
    selection rows, seconds spent fitting)."""
    dc = cfg["distill"]
    first, n = (int(dc["first_student"]), int(dc["students"])) if teaching else (0, 1)
    best, selection, seconds = None, [], 0.0
    for k in range(first, first + n):
        result = _student(k, cfg, run, ts, teaching, val, log)
        seconds += result["fit_seconds"]
        selection.append({key: result[key] for key in (
            "student", "validation_recall", "validation_false_accepts",
            "validation_within_budget", "cutoff", "window")})
        if n > 1 or first:
            log(f"student {k + 1}: validation recall {result['validation_recall']:.3f} at "
                f"window {result['window']}, cutoff {result['cutoff']:.2f}")
        if best is None or calibrate.validation_rank(result) > calibrate.validation_rank(best):
            best = result
    return best, selection, seconds


def train(cfg: dict, out_dir, log=print, cache_dir=None, stage_dir=None,
          synth_dir=None) -> dict:
    """Run the whole pipeline for ``cfg`` (see :func:`earshot.train.config.load_config`) and
    write the model package to ``out_dir``. Returns a summary dict (numbers measured during
    the run).

    ``cache_dir``: synthetic audio cache (default ``build/synth``). ``stage_dir``: where the
    Keras model, the .tflite and the summary are kept before packaging (default
    ``build/train/<wake word>``), so :func:`earshot.train.packaging.package` can be rerun
    without training.

    ``synth_dir``: a folder written by ``earshot data synth`` (:func:`earshot.train.data.
    from_folder`) whose clips replace the synthesis.

    The real recordings are read before any audio is rendered, so a missing source fails
    first; without the shared recordings the run trains on what it can reach
    (:func:`earshot.train.data.negative_sources`).

    Raises ValueError for a bad config, FileNotFoundError when the recordings are missing.
    """
    t_start = time.monotonic()
    _start_tensorflow(int(cfg["threads"]), log)
    run = _setup(cfg, cache_dir)
    negs = data.real_negatives(cfg, log)
    if synth_dir is not None:
        speech = data.from_folder(synth_dir, cfg, log)
    else:
        speech = data.synthesize(cfg, run.cache_dir, log)
    data.split_passages(cfg, speech, negs, log)
    # without real speech, the passages give the context before a clip and the babble
    ctx = Context(negs.train or speech.passages, cfg)
    val_idx, train_idx = data.split_positives(len(speech.pos["audio"]), cfg)
    ts = data.training_set(cfg, speech, negs, ctx, train_idx, run.frames, log)
    val = data.validation_set(cfg, speech, negs, ctx, val_idx)
    stats = data.stats(cfg, speech, negs, ts, val)

    t0 = time.monotonic()
    teaching = None
    if cfg["distill"]["width"]:
        teaching = distill.teach(cfg, run.arch_cfg, ts, run.frames, run.stride, run.tseed,
                                 run.cache_dir, log)
    teach_seconds = time.monotonic() - t0
    best, selection, student_seconds = _students(cfg, run, ts, teaching, val, log)
    teacher_info = teaching.info if teaching is not None else None
    del teaching

    head = {"train_seconds": round(teach_seconds + student_seconds, 1),
            "total_seconds": round(time.monotonic() - t_start, 1),
            "threads": int(cfg["threads"])}
    summary = packaging.summarize(cfg, run.arch_cfg, head, {**stats, "windows": len(ts.y)},
                                  best, selection, ctx.aug, (len(speech.passages), ts.pass_hours),
                                  teacher_info)
    packaging.save_stage(packaging.stage_path(stage_dir, cfg["wake_word"]), best, summary,
                         val.hours)
    packaging.publish(best["tflite"], summary, out_dir, cfg, float_model=best["model"])
    log(f"wrote {out_dir} in {time.monotonic() - t_start:.0f} s")
    return summary


def recall_problem(summary: dict, cfg: dict) -> str | None:
    """Why a trained model is not usable, or None: its validation recall below the config's
    ``min_validation_recall`` (None: no floor)."""
    floor = cfg.get("min_validation_recall")
    got = summary.get("validation_recall")
    if floor is None or got is None or got >= floor:
        return None
    return (f"validation recall {got:.3f} is below {floor:g} (min_validation_recall): the model "
            f"would miss the wake word; more positives or epochs (a larger preset or config) "
            f"may help")


def train_seeds(cfg: dict, out_dir, seeds, log=print, cache_dir=None, stage_dir=None,
                synth_dir=None) -> dict:
    """:func:`train` once per ``train_seed`` in ``seeds`` (same data: ``cfg["seed"]``), then
    package the run that :func:`earshot.train.calibrate.validation_rank` puts first into
    ``out_dir``. Runs differ by more than most recipe changes (research/alexa/sessions.md), and
    the validation split ranks them as the development clips do, so the choice uses
    validation only.

    Each run keeps its own package and stage under ``stage_dir`` (default
    ``build/train/<wake word>``) ``/seed-<s>``. Returns the chosen summary plus
    ``seed_selection``: every run's train_seed, validation recall, false accepts and cutoff.
    Raises ValueError for an empty ``seeds`` and what :func:`train` raises."""
    seeds = [int(x) for x in seeds]
    if not seeds:
        raise ValueError("train_seeds: give at least one seed")
    stage = packaging.stage_path(stage_dir, cfg["wake_word"])
    runs = []
    for k in seeds:
        log(f"train_seed {k} ({len(runs) + 1} of {len(seeds)})")
        run_cfg = copy.deepcopy(cfg)
        run_cfg["train_seed"] = k
        run_stage = stage / f"seed-{k}"
        extra = {} if synth_dir is None else {"synth_dir": synth_dir}
        runs.append((train(run_cfg, run_stage / "package", log, cache_dir, run_stage, **extra),
                     run_stage))
    best, best_stage = max(runs, key=lambda r: calibrate.validation_rank(r[0]))
    summary = dict(best)
    summary["seed_selection"] = [
        {**{key: r[key] for key in ("train_seed", "validation_recall",
                                    "validation_false_accepts", "cutoff")},
         "validation_within_budget": bool(r.get("validation_within_budget", True))}
        for r, _ in runs
    ]
    log(f"chosen on validation: train_seed {best['train_seed']} of {seeds}")
    (best_stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    packaging.publish((best_stage / "model.tflite").read_bytes(), summary, out_dir,
                      {**cfg, "train_seed": best["train_seed"]},
                      float_model=best_stage / "model.keras")
    return summary
