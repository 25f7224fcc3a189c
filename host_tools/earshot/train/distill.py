"""Knowledge distillation: wider teachers, their soft targets, mixup, the teacher cache.

With ``distill.width`` > 0, :func:`teach` trains ``distill.teachers`` teachers of the student's
layout with every layer's filters multiplied by ``width`` (:func:`teacher_arch`; each fitted and
mined like a plain model, :func:`earshot.train.mining.fit_and_mine`), or loads them from the
teacher cache (:func:`teacher_cache_key`, :func:`save_teachers`, :func:`load_teachers`). The
students then learn ``alpha * label + (1 - alpha) * p`` with ``p`` the teachers' mean
probability (:func:`distill_targets`; Hinton, Vinyals and Dean, "Distilling the knowledge in a
neural network", 2015), optionally on mixed inputs (:func:`mix_batch`; Beyer et al.,
"Knowledge distillation: a good teacher is patient and consistent", CVPR 2022), and mine their
own hard negatives (:func:`fit_student`). The config keys are described in
:data:`earshot.train.config.DEFAULT_CONFIG` under ``distill``.

TensorFlow and Keras are imported only by :func:`teacher_cache_key` (for their versions),
lazily like :mod:`earshot.train.fit`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from earshot.train import arch, tts
from earshot.train.fit import fit_model, seed_init
from earshot.train.mining import fit_and_mine, mine, predict

#: The modules (in this folder) whose code decides how a teacher is built and fitted; their
#: source is part of :func:`teacher_cache_key`.
TEACHER_CODE = ("arch.py", "fit.py", "mining.py", "distill.py")

# Keys that act only after the teachers (on the students, the detector, the package): a run
# that differs from another only in them can reuse the other's teachers.
STUDENT_ONLY = {"detector": None, "qat": None, "weight_average": None,
                "distill": ("alpha", "temperature", "clean_targets", "student_mining",
                            "students", "first_student", "student_epochs", "mixup",
                            "cache_teachers")}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_config(cfg: dict) -> None:
    """Check ``cfg["distill"]``'s student keys: clean_targets, students (> 1), first_student
    (> 0), student_epochs and mixup (> 0) need a teacher (``width`` > 0); students >= 1,
    first_student >= 0, student_epochs >= 1 or None, mixup in [0, 1]. Raises ValueError
    naming the key."""
    dc = cfg["distill"]
    teacher = bool(dc["width"])
    if dc["clean_targets"] and not teacher:
        raise ValueError("config: distill.clean_targets needs a teacher (distill.width > 0)")
    if not _is_int(dc["students"]) or dc["students"] < 1 or (dc["students"] > 1 and not teacher):
        raise ValueError("config: distill.students must be an int >= 1, and > 1 only with a "
                         f"teacher (distill.width > 0), got {dc['students']!r}")
    first, epochs = dc["first_student"], dc["student_epochs"]
    if not _is_int(first) or first < 0 or (first and not teacher):
        raise ValueError("config: distill.first_student must be an int >= 0 and needs a "
                         f"teacher (distill.width > 0), got {first!r}")
    if epochs is not None and (not _is_int(epochs) or epochs < 1 or not teacher):
        raise ValueError("config: distill.student_epochs must be an int >= 1 (or null) and "
                         f"needs a teacher (distill.width > 0), got {epochs!r}")
    mixup = dc["mixup"]
    if isinstance(mixup, bool) or not isinstance(mixup, (int, float)) \
            or not 0.0 <= mixup <= 1.0 or (mixup and not teacher):
        raise ValueError("config: distill.mixup must be a number in [0, 1] and needs a "
                         f"teacher (distill.width > 0), got {mixup!r}")
    if teacher and int(dc["teachers"]) < 1:
        raise ValueError(f"config: distill.teachers must be >= 1, got {int(dc['teachers'])}")


def teacher_arch(arch_cfg: dict, width: float, channel_dropout: float | None = None) -> dict:
    """``arch_cfg`` with every layer's filters multiplied by ``width`` (same kernels and
    strides, so the same receptive field and windows): the distillation teacher.
    ``channel_dropout`` replaces the student's ``channel_dropout`` when not None; the
    teacher has no ``slimming`` (it is never pruned)."""
    t = copy.deepcopy(arch_cfg)
    t["slimming"] = 0.0  # the teacher is never pruned
    if channel_dropout is not None:
        t["channel_dropout"] = float(channel_dropout)
    t["first"]["filters"] = int(round(t["first"]["filters"] * width))
    for b in t["blocks"]:
        b["filters"] = int(round(b["filters"] * width))
    return t


def distill_targets(y: np.ndarray, teacher_logits, alpha: float, temperature: float):
    """Soft targets of distillation: ``alpha * y + (1 - alpha) * p`` with ``p`` the mean over
    teachers of ``sigmoid(logit / temperature)`` (Hinton, Vinyals and Dean 2015; the mean of
    the teachers' probabilities is their section 2 ensemble). ``y``: (n,) 0/1 labels;
    ``teacher_logits``: one (n,) float array per teacher. Returns (targets float32 (n,), p).
    ValueError without a teacher or with a length that is not n."""
    if not teacher_logits:
        raise ValueError("distill_targets needs at least one teacher's logits")
    if any(len(t) != len(y) for t in teacher_logits):
        raise ValueError(f"every teacher needs {len(y)} logits, got "
                         f"{[len(t) for t in teacher_logits]}")
    temp = float(temperature)
    probs = [1.0 / (1.0 + np.exp(-t / temp)) for t in teacher_logits]
    p = probs[0] if len(probs) == 1 else np.mean(probs, axis=0)
    return (alpha * y + (1.0 - alpha) * p).astype(np.float32), p


def mix_batch(xin: np.ndarray, y: np.ndarray, w: np.ndarray, fraction: float, teachers,
              temperature: float, rng: np.random.Generator):
    """Function matching with mixup on one batch (``distill.mixup``; Beyer et al., CVPR
    2022, section 3): about ``fraction`` of the rows of ``xin`` (float32 model input
    (n, T, 1, 40), :func:`earshot.train.arch.features_to_input`) become ``lam * a + (1 - lam) * b``
    with ``b`` a random row of the same batch and ``lam ~ U(0, 1)`` per row; their targets
    become the mean over ``teachers`` (Keras models) of sigmoid(logit / ``temperature``) on
    that mixed input, their weights ``lam * w_a + (1 - lam) * w_b``. ``y`` (n,) float32
    targets and ``w`` (n,) float32 weights. Returns (xin, y, w): copies with the other rows
    unchanged (the inputs themselves when no row is drawn); the caller's arrays are never
    written to. ValueError for a fraction outside [0, 1] or without a teacher."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"mixup fraction must be in [0, 1], got {fraction!r}")
    if not teachers:
        raise ValueError("mixup needs at least one teacher")
    n = len(xin)
    rows = np.flatnonzero(rng.random(n) < fraction)
    if n < 2 or not len(rows):
        return xin, y, w
    other = (rows + rng.integers(1, n, size=len(rows))) % n  # never the row itself
    lam = rng.random(len(rows)).astype(np.float32)
    xin, y, w = xin.copy(), y.copy(), w.copy()
    mixed = lam[:, None, None, None] * xin[rows] + (1.0 - lam[:, None, None, None]) * xin[other]
    logits = [np.asarray(t(mixed, training=False)).reshape(-1) for t in teachers]
    y[rows], _ = distill_targets(np.zeros(len(rows), np.float32), logits, 0.0, temperature)
    w[rows] = lam * w[rows] + (1.0 - lam) * w[other]
    xin[rows] = mixed
    return xin, y, w


def mixer(teachers, fraction: float, temperature: float):
    """:func:`mix_batch` with these ``teachers``, ``fraction`` and ``temperature`` as
    :func:`earshot.train.fit.fit_model`'s ``mix(xin, y, w, rng)``."""
    def mix(xin, y, w, rng):
        return mix_batch(xin, y, w, fraction, teachers, temperature, rng)

    return mix


def teacher_cache_key(cfg: dict, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> str:
    """The sha256 (hex) that names a run's cached teachers: the config without
    STUDENT_ONLY's keys, the training windows ``x`` (int8 (n, frames, 40)), labels ``y``
    and weights ``w`` they are fitted on, the TensorFlow, Keras and NumPy versions, the CPU
    (:func:`earshot.train.tts.cpu_info`: kernels differ by instruction set) and the source of
    the TEACHER_CODE modules (the teachers' layout, fitting and mining). Anything else that
    changes the teachers changes one of these."""
    import keras  # lazy, for its version: see earshot.train.fit
    import tensorflow as tf

    c = copy.deepcopy(cfg)
    for key, sub in STUDENT_ONLY.items():
        if sub is None:
            c.pop(key, None)
        else:
            for k in sub:
                c.get(key, {}).pop(k, None)
    c.pop("comment", None)
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    h.update(json.dumps({"config": c, "tensorflow": tf.__version__, "keras": keras.__version__,
                         "numpy": np.__version__, "cpu": tts.cpu_info()},
                        sort_keys=True, default=str).encode())
    for name in TEACHER_CODE:
        h.update((here / name).read_bytes())
    for a in (x, y, w):
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def save_teachers(path: Path, teachers, x_add: np.ndarray, y_add: np.ndarray,
                  w_add: np.ndarray) -> None:
    """Write ``teachers`` (Keras models: every weight, BatchNorm statistics included) and the
    windows their mining added (int8 (m, frames, 40), uint8 (m,), float32 (m,)) to ``path``
    (.npz), through a temporary file and a rename, so a reader never sees half a file."""
    arrays = {"teachers": np.int64(len(teachers)), "x_add": x_add, "y_add": y_add,
              "w_add": w_add}
    for k, t in enumerate(teachers):
        for i, v in enumerate(t.get_weights()):
            arrays[f"t{k}_{i}"] = v
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_teachers(path: Path, build, log):
    """Read :func:`save_teachers`' file: (teachers, x_add, y_add, w_add), each teacher
    ``build(k)`` (a fresh model of the teacher layout) given the saved weights. None, after a
    log line naming the file and the problem, when it is missing, damaged or does not fit
    the layout (the caller trains the teachers again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            teachers = []
            for k in range(int(f["teachers"])):
                t = build(k)
                n = len(t.get_weights())
                t.set_weights([f[f"t{k}_{i}"] for i in range(n)])
                teachers.append(t)
            return teachers, f["x_add"], f["y_add"], f["w_add"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log(f"teacher cache {path} unreadable ({type(exc).__name__}: {exc}): training again")
        return None


@dataclass
class Teaching:
    """What the students learn from: the teacher ``models`` (Keras), the soft ``targets``
    (float32 (n,), one per training window after the teachers' mining) and the summary
    entries ``info`` (teacher_cache, teacher_macs_per_30ms, teacher_train_accuracy, ...)."""

    models: list
    targets: np.ndarray
    info: dict = field(default_factory=dict)


def _train_teachers(t_arch: dict, ts, cfg: dict, frames: int, stride: int, tseed: int,
                    log) -> list:
    """Train ``distill.teachers`` teachers of layout ``t_arch`` one after another, each with
    :func:`earshot.train.mining.fit_and_mine` (teacher k seeded ``tseed + 100 + 1000 k``), on
    the training set ``ts`` (its x, y, w grow by each teacher's mined windows). Returns the
    models."""
    teachers = []
    n_teachers = int(cfg["distill"]["teachers"])
    for k in range(n_teachers):
        # teacher 0 keeps the seed of a single-teacher run
        t_seed = tseed + 100 + 1000 * k
        seed_init(cfg, t_seed)
        teacher = arch.build_model(t_arch, name=f"teacher{k}" if k else "teacher")
        log(f"teacher {k + 1}/{n_teachers}: filters x{cfg['distill']['width']}, "
            f"{arch.macs_per_output(t_arch) * 3 // stride} MACs per 30 ms")
        ts.x, ts.y, ts.w = fit_and_mine(teacher, ts.x, ts.y, ts.w, ts.stream_feats, frames,
                                        stride, cfg, log, t_seed)
        teachers.append(teacher)
    return teachers


def _cached_teachers(t_arch: dict, ts, cfg: dict, frames: int, stride: int, tseed: int,
                     cache_dir: Path, log) -> tuple[list, str]:
    """The teachers from the cache when ``distill.cache_teachers`` and ``train_seed`` are set
    and a cache file for this run exists (their mined windows appended to ``ts``), else
    :func:`_train_teachers` (saved to the cache when it is on). Returns (teachers, cache
    state: "off", "loaded" or "saved"). Raises ValueError when the cache holds another number
    of teachers than the config."""
    dc = cfg["distill"]
    if not (dc["cache_teachers"] and cfg["train_seed"] is not None):
        return _train_teachers(t_arch, ts, cfg, frames, stride, tseed, log), "off"
    word = cfg["wake_word"].replace(" ", "_")
    t_path = cache_dir / "teachers" / f"{word}-{teacher_cache_key(cfg, ts.x, ts.y, ts.w)[:24]}.npz"
    loaded = load_teachers(
        t_path, lambda k: arch.build_model(t_arch, name=f"teacher{k}" if k else "teacher"), log)
    if loaded is None:
        n_before = len(ts.x)
        teachers = _train_teachers(t_arch, ts, cfg, frames, stride, tseed, log)
        save_teachers(t_path, teachers, ts.x[n_before:], ts.y[n_before:], ts.w[n_before:])
        log(f"teachers saved to {t_path}")
        return teachers, "saved"
    teachers, x_add, y_add, w_add = loaded
    if len(teachers) != int(dc["teachers"]):
        raise ValueError(f"teacher cache {t_path}: {len(teachers)} teachers, the config "
                         f"has {int(dc['teachers'])}")
    ts.x, ts.y, ts.w = (np.concatenate([ts.x, x_add]), np.concatenate([ts.y, y_add]),
                        np.concatenate([ts.w, w_add]))
    log(f"teachers: {len(teachers)} loaded from {t_path} ({len(x_add)} mined windows)")
    return teachers, "loaded"


def teach(cfg: dict, arch_cfg: dict, ts, frames: int, stride: int, tseed: int,
          cache_dir: Path, log) -> Teaching:
    """The teachers of the students of layout ``arch_cfg`` (cached or trained, see
    :func:`_cached_teachers`) and their soft targets on every window of the training set
    ``ts`` (:class:`earshot.train.data.TrainingSet`, grown by the teachers' mining): with
    ``distill.clean_targets``, a positive window's targets come from its twin without
    broadband noise (``ts.x_twin``)."""
    dc = cfg["distill"]
    t_arch = teacher_arch(arch_cfg, float(dc["width"]), dc["teacher_channel_dropout"])
    teachers, cache_state = _cached_teachers(t_arch, ts, cfg, frames, stride, tseed,
                                             cache_dir, log)
    # after all mining, on every window
    t_logits = [predict(t, ts.x) for t in teachers]
    info = {}
    if ts.x_twin is not None:
        n_noisy = int(np.sum(np.any(ts.x_twin != ts.x[: len(ts.x_twin)], axis=(1, 2))))
        for t, lg in zip(teachers, t_logits):
            lg[: len(ts.x_twin)] = predict(t, ts.x_twin)
        log(f"clean targets: {n_noisy} of {len(ts.x_twin)} positive-clip windows scored "
            f"without their broadband noise")
        info["clean_target_windows"] = n_noisy
    targets, soft = distill_targets(ts.y, t_logits, dc["alpha"], dc["temperature"])
    info |= {"teacher_cache": cache_state,
             "teacher_macs_per_30ms": int(arch.macs_per_output(t_arch) * 3 // stride),
             "teacher_train_accuracy": round(float(np.mean((soft > 0.5) == ts.y)), 4)}
    if len(teachers) > 1:
        info["teachers"] = len(teachers)
    log(f"teacher accuracy on the training windows {info['teacher_train_accuracy']}")
    if dc["student_mining"]:
        info["student_mining"] = int(dc["student_mining"])
    return Teaching(teachers, targets, info)


def fit_student(model, ts, teaching: Teaching, cfg: dict, frames: int, stride: int, log,
                seed: int, ema: float):
    """Fit the student ``model`` on the training set ``ts`` with the teachers' soft targets
    for ``distill.student_epochs`` (or ``epochs``), mixing batches when ``distill.mixup`` >
    0, then ``distill.student_mining`` rounds of its own hard negatives (weight 2, targets
    from the teachers, fit seeded ``seed + 200 + round``). Returns (x, targets, w) it was
    last fitted on: int8 (m, frames, 40), float32 (m,), float32 (m,)."""
    dc, mc = cfg["distill"], cfg["mining"]
    epochs = int(dc["student_epochs"] or cfg["epochs"])
    mix = mixer(teaching.models, float(dc["mixup"]), dc["temperature"]) if dc["mixup"] else None
    log(f"student: training {epochs} epochs on {len(ts.x)} distilled targets")
    fit_model(model, ts.x, teaching.targets, ts.w, cfg, epochs, cfg["learning_rate"], log, seed,
              ema=ema, mix=mix)
    xk, labels, wk = ts.x, teaching.targets, ts.w
    for r in range(int(dc["student_mining"])):
        hard = mine(model, ts.stream_feats, frames, stride, mc["top_k"], log,
                    f"student mining round {r + 1}")
        t_hard, _ = distill_targets(np.zeros(len(hard), np.uint8),
                                    [predict(t, hard) for t in teaching.models], dc["alpha"],
                                    dc["temperature"])
        xk = np.concatenate([xk, hard])
        labels = np.concatenate([labels, t_hard])
        wk = np.concatenate([wk, np.full(len(hard), 2.0, np.float32)])
        fit_model(model, xk, labels, wk, cfg, mc["epochs"], mc["learning_rate"], log,
                  seed + 200 + r, ema=ema, mix=mix)
    return xk, labels, wk
