"""On-device adaptation from CPython: the C core's ``es_adapt`` (ctypes) and a host driver.

The same C code the board runs (``firmware/core/es_adapt*.c``, design notes in
``es_adapt.h``) is used here through ctypes, the rules too: :class:`PseudoLabeler` takes
which outputs become samples, their labels and buffer slots from ``es_adapt_labeler_t``, and
:func:`accepted` is ``es_adapt_accepted``, as ``firmware/modules/es_adapt.py`` does through
the binding; so :func:`adapt` on the host produces the same adapted blob, byte for byte, as
the board fed the same audio (tests/test_adapt.py).

Pieces:

- :class:`Stats`, :func:`forward`: per-channel activation statistics and the embedding (the
  int8 input row of the trainable pointwise layer) of one window of ``input_frames`` feature
  rows (int8, shape ``(input_frames, 40)``).
- :class:`Trainer`: fixed-point SGD of the last pointwise layer and the classifier;
  ``write()`` returns the requantized blob (bytes).
- :meth:`Trainer.check`, :func:`accepted`: the acceptance check on held-back negatives.
- :func:`importance`, :func:`select`, :func:`prune`: channel pruning (blob bytes out).
- :func:`adapt`: pseudo-label streams of one user, optionally prune, fine-tune, return blobs.
- :func:`rollback`: restore the factory model on a board (mpremote).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import numpy as np

from earshot import core
from earshot.model import Model

MEL_BINS = core.MEL_BINS
DATA_AWARE = 1
WEIGHT_NORM = 0
#: Buffer labels (ES_ADAPT_LABEL_* in es_adapt.h).
NEGATIVE, POSITIVE, DISTILL, CHECK, EMPTY = 0, 1, 2, 3, 0xFF

#: Defaults shared with firmware/modules/es_adapt.py (keep equal; the tests compare).
DEFAULTS = {
    "pos_cutoff": 179,  # probability * 255 at or above which an output is a positive (0.7)
    "neg_cutoff": 64,  # at or below which a VAD-open output is a negative (0.25)
    "neg_every": 4,  # keep one negative candidate in this many
    "buffer_bytes": 16384,  # pseudo-label buffer: embeddings + one label byte each
    "pos_share": 4,  # positives get 1 / pos_share of the buffer's slots
    "check_every": 4,  # every 4th kept negative is held back for the acceptance check
    "lr": 0.0005,  # learning rate (Q24 in the C trainer)
    "distill_lr": 0.0003,  # learning rate of a pruned student (its L2 loss oscillates at lr)
    "pos_weight": 1,
    "neg_weight": 1,
    "distill_gain": 8,  # negatives: gradient per logit step above the teacher's logit
    # L2-SP pull of the adapted weights towards the factory ones, 2^-anchor_shift of the
    # distance per trained sample (0: off; es_adapt.h); not for a pruned student
    "anchor_shift": 0,
    "epochs": 6,  # passes over the buffer
    # passes of a pruned student over its buffer: it starts far from its teacher (the pruned
    # network scores near 0 before), and matching logits (L2) converges slower than the
    # adapted model's few steps from the factory weights (bench/adapt.py: recall of the
    # pruned model 93.1 % at 6 passes, 98.6 % at 60, unchanged at 100 and 150)
    "distill_epochs": 60,
    # windows a pruned student learns from per positive output of its teacher: the output's
    # own and those ending 1 .. distill_phases - 1 hops before it (0: the model's output
    # stride, i.e. every phase). The network emits one output per output_stride hops, so a
    # word reaches it at any of those phases. bench/adapt.py (models/alexa R3, PROFILE at
    # 0.5), every phase vs one (1): held-out adaptation utterances (--loo) 48 vs 46 of 48;
    # test recall 100 % vs 93.1 %, at 61.7 vs 26.2 false accepts per hour (docs/adaptation.md)
    "distill_phases": 0,
    "slice_macs": 20000,  # MACs per training slice (one call between two detector blocks)
    "min_pos": 4,  # the board starts training with at least this many positives ...
    "min_neg": 64,  # ... and negatives
}


class es_adapt_check_t(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_uint32),
        ("rise", ctypes.c_int32),
        ("above", ctypes.c_uint32),
        ("fires", ctypes.c_uint32),
    ]


class es_adapt_train_params_t(ctypes.Structure):
    _fields_ = [
        ("lr_q24", ctypes.c_int32),
        ("pos_weight", ctypes.c_uint8),
        ("neg_weight", ctypes.c_uint8),
        ("distill_gain", ctypes.c_uint8),
        ("anchor_shift", ctypes.c_uint8),
    ]


#: The settings of es_adapt_label_params_t taken from the configuration (then "distill").
LABEL_KEYS = ("pos_cutoff", "neg_cutoff", "neg_every", "check_every", "pos_share", "buffer_bytes")


class es_adapt_label_params_t(ctypes.Structure):
    _fields_ = [(k, ctypes.c_int32) for k in (*LABEL_KEYS, "distill")]


class es_adapt_labeler_t(ctypes.Structure):
    _fields_ = [("m", ctypes.c_void_p), ("p", es_adapt_label_params_t)] + [
        (k, ctypes.c_uint32)
        for k in ("frames", "slots", "pos_slots", "neg_seen", "kept_neg", "n_pos", "n_neg")
    ]


_declared = False


def _lib() -> ctypes.CDLL:
    global _declared
    so = core.lib()
    if _declared:
        return so
    c, p, sz = ctypes, ctypes.c_void_p, ctypes.c_size_t
    why = c.POINTER(c.c_char_p)
    sigs = {
        "es_adapt_embedding_size": (sz, [p, why]),
        "es_adapt_stats_mem_size": (sz, [p]),
        "es_adapt_stats_init": (p, [p, sz, p]),
        "es_adapt_stats_reset": (None, [p]),
        "es_adapt_stats_channels": (sz, [p]),
        "es_adapt_stats_groups": (sz, [p]),
        "es_adapt_stats_windows": (c.c_uint32, [p]),
        "es_adapt_group_channels": (sz, [p, sz]),
        "es_adapt_forward_scratch_size": (sz, [p]),
        "es_adapt_forward": (c.c_int, [p, p, p, sz, p, p, p]),
        "es_adapt_trainer_mem_size": (sz, [p]),
        "es_adapt_trainer_init": (p, [p, sz, p, c.POINTER(es_adapt_train_params_t), why]),
        "es_adapt_sample_macs": (c.c_uint32, [p]),
        "es_adapt_trainer_samples": (c.c_uint32, [p]),
        "es_adapt_train_slice": (sz, [p, p, p, p, sz, c.c_uint32]),
        "es_adapt_trainer_logit": (c.c_int8, [p, p]),
        "es_adapt_check_macs": (c.c_uint32, [p]),
        "es_adapt_check": (c.c_int, [p, p, p, p, sz, sz, sz, c.POINTER(es_adapt_check_t)]),
        "es_adapt_trainer_write": (c.c_int, [p, p, sz, c.POINTER(sz), why]),
        "es_adapt_importance": (c.c_int, [p, p, c.c_int, p]),
        "es_adapt_select": (c.c_int, [p, p, p, p]),
        "es_adapt_prune": (c.c_int, [p, p, p, c.c_int, p, sz, c.POINTER(sz), why]),
        "es_adapt_accepted": (c.c_int, [c.POINTER(es_adapt_check_t)]),
        "es_adapt_labeler_init": (c.c_int, [p, p, p, sz, why]),
        "es_adapt_label_candidates": (sz, [p, p, p, sz, c.c_uint32, p]),
        "es_adapt_label_agrees": (c.c_int, [p, c.c_uint8, c.c_int8]),
        "es_adapt_label_next": (c.c_uint8, [p, c.c_uint8]),
        "es_adapt_label_slot": (c.c_uint32, [p, c.c_uint8]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(so, name)
        fn.restype = res
        fn.argtypes = args
    _declared = True
    return so


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def embedding_size(model: Model) -> int:
    """Bytes of one embedding (in_ch of the trainable pointwise layer). ValueError when the
    model cannot be adapted (the C core's reason)."""
    why = ctypes.c_char_p()
    n = _lib().es_adapt_embedding_size(model.handle, ctypes.byref(why))
    if n == 0:
        raise ValueError(why.value.decode() if why.value else "model cannot be adapted")
    return int(n)


def learning_memory_bytes(model: Model) -> int:
    """es_adapt_trainer_mem_size: the trainer's whole memory for ``model`` (bytes)."""
    return int(_lib().es_adapt_trainer_mem_size(model.handle))


class Stats:
    """Per-channel activation statistics of ``model`` (es_adapt_stats_t)."""

    def __init__(self, model: Model):
        so = _lib()
        self.model = model
        self._mem = ctypes.create_string_buffer(so.es_adapt_stats_mem_size(model.handle))
        self.handle = ctypes.c_void_p(
            so.es_adapt_stats_init(self._mem, ctypes.sizeof(self._mem), model.handle)
        )
        self.channels = int(so.es_adapt_stats_channels(self.handle))
        self.groups = [
            int(so.es_adapt_group_channels(self.handle, g))
            for g in range(so.es_adapt_stats_groups(self.handle))
        ]

    @property
    def windows(self) -> int:
        return int(_lib().es_adapt_stats_windows(self.handle))


class Forward:
    """Non-streaming forward passes of ``model`` over windows (es_adapt_forward)."""

    def __init__(self, model: Model):
        so = _lib()
        self.model = model
        self.frames = model.info["input_frames"]
        self.emb_bytes = embedding_size(model)
        self._scratch = ctypes.create_string_buffer(so.es_adapt_forward_scratch_size(model.handle))
        self._logit = ctypes.c_int8()

    def __call__(self, window, stats: Stats | None = None) -> tuple[int, np.ndarray]:
        """Return (int8 logit, int8 embedding) of one window (int8, (input_frames, 40));
        ``stats`` accumulates activation statistics. ValueError for a wrong shape/dtype."""
        w = np.ascontiguousarray(window)
        if w.dtype != np.int8 or w.shape != (self.frames, MEL_BINS):
            raise ValueError(
                f"window must be int8 of shape ({self.frames}, {MEL_BINS}), got "
                f"{w.dtype} {w.shape}"
            )
        emb = np.zeros(self.emb_bytes, dtype=np.int8)
        rc = _lib().es_adapt_forward(
            self.model.handle,
            _ptr(w),
            self._scratch,
            ctypes.sizeof(self._scratch),
            None if stats is None else stats.handle,
            _ptr(emb),
            ctypes.byref(self._logit),
        )
        if rc != 0:
            raise ValueError("es_adapt_forward rejected its arguments")
        return int(self._logit.value), emb


def forward(model: Model, window, stats: Stats | None = None) -> tuple[int, np.ndarray]:
    """One-off :class:`Forward` call."""
    return Forward(model)(window, stats)


class Trainer:
    """Fixed-point SGD of the last pointwise layer and the classifier of ``model``.

    ``lr`` in (0, 1] (Q24 in C), ``pos_weight`` / ``neg_weight`` 1..16, ``anchor_shift``
    0..30: the L2-SP pull towards the model's own weights, 2^-anchor_shift of the distance
    per trained sample (0: off; es_adapt.h). ValueError names a model that cannot be
    adapted or out-of-range settings.
    """

    def __init__(
        self,
        model: Model,
        lr: float,
        pos_weight: int = 1,
        neg_weight: int = 1,
        distill_gain: int = 8,
        anchor_shift: int = 0,
    ):
        so = _lib()
        self.model = model
        self.emb_bytes = embedding_size(model)
        self.mem_bytes = learning_memory_bytes(model)
        self._mem = ctypes.create_string_buffer(self.mem_bytes)
        params = es_adapt_train_params_t()
        params.lr_q24 = round(lr * (1 << 24))
        params.pos_weight = int(pos_weight)
        params.neg_weight = int(neg_weight)
        params.distill_gain = int(distill_gain)
        params.anchor_shift = int(anchor_shift)
        if not 1 <= pos_weight <= 16 or not 1 <= neg_weight <= 16:
            raise ValueError("pos_weight and neg_weight must be 1..16")
        if not 1 <= distill_gain <= 255:
            raise ValueError("distill_gain must be 1..255")
        if not 0 <= anchor_shift <= 30:
            raise ValueError("anchor_shift must be 0..30")
        why = ctypes.c_char_p()
        h = so.es_adapt_trainer_init(
            self._mem, self.mem_bytes, model.handle, ctypes.byref(params), ctypes.byref(why)
        )
        if not h:
            raise ValueError(why.value.decode() if why.value else "trainer init failed")
        self.handle = ctypes.c_void_p(h)
        self.sample_macs = int(so.es_adapt_sample_macs(self.handle))

    @property
    def samples(self) -> int:
        return int(_lib().es_adapt_trainer_samples(self.handle))

    def _check(self, embs, labels, targets):
        e = np.ascontiguousarray(embs, dtype=np.int8).reshape(-1, self.emb_bytes)
        lab = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
        if e.shape[0] != lab.shape[0]:
            raise ValueError(f"{e.shape[0]} embeddings but {lab.shape[0]} labels")
        if targets is not None:
            targets = np.ascontiguousarray(targets, dtype=np.int8).reshape(-1)
            if targets.shape != lab.shape:
                raise ValueError(f"{lab.shape[0]} labels but {targets.shape[0]} targets")
        return e, lab, targets

    def train_slice(self, embs, labels, max_macs: int, targets=None) -> int:
        """Train on whole samples while the next fits ``max_macs``; returns samples stepped
        (empty slots included). ``targets``: the teacher's int8 logits (see es_adapt.h)."""
        e, lab, tg = self._check(embs, labels, targets)
        tp = None if tg is None else _ptr(tg)
        return int(
            _lib().es_adapt_train_slice(self.handle, _ptr(e), _ptr(lab), tp, e.shape[0], max_macs)
        )

    def train(
        self, embs, labels, samples: int, slice_macs: int | None = None, targets=None
    ) -> None:
        """Step over ``samples`` buffer slots (the C cursor order), in slices of
        ``slice_macs`` MACs (default 64 samples)."""
        e, lab, tg = self._check(embs, labels, targets)
        tp = None if tg is None else _ptr(tg)
        budget = slice_macs or self.sample_macs * 64
        while samples > 0:
            step = min(budget, samples * self.sample_macs)
            done = _lib().es_adapt_train_slice(
                self.handle, _ptr(e), _ptr(lab), tp, e.shape[0], step
            )
            if done == 0:
                raise ValueError(f"slice of {budget} MACs fits no sample of {self.sample_macs}")
            samples -= done

    def logit(self, emb) -> int:
        e = np.ascontiguousarray(emb, dtype=np.int8).reshape(self.emb_bytes)
        return int(_lib().es_adapt_trainer_logit(self.handle, _ptr(e)))

    def check(self, embs, labels, targets) -> dict:
        """Acceptance check on the CHECK slots (es_adapt_check): n, rise (sum of logit -
        target), above (logit > target), fires (probability >= the model's cutoff)."""
        e, lab, tg = self._check(embs, labels, targets)
        if tg is None:
            raise ValueError("check needs the targets (logits before training)")
        acc = es_adapt_check_t()
        n = e.shape[0]
        if _lib().es_adapt_check(self.handle, _ptr(e), _ptr(lab), _ptr(tg), n, 0, n, acc) != 0:
            raise ValueError("es_adapt_check rejected its arguments")
        return {k: int(getattr(acc, k)) for k in ("n", "rise", "above", "fires")}

    def write(self) -> bytes:
        """The adapted blob (the two trained layers requantized)."""
        so = _lib()
        need = ctypes.c_size_t()
        why = ctypes.c_char_p()
        so.es_adapt_trainer_write(self.handle, None, 0, ctypes.byref(need), ctypes.byref(why))
        out = ctypes.create_string_buffer(need.value)
        rc = so.es_adapt_trainer_write(
            self.handle, out, need.value, ctypes.byref(need), ctypes.byref(why)
        )
        if rc != 0:
            raise ValueError(why.value.decode() if why.value else "trainer write failed")
        return out.raw[: need.value]


def importance(model: Model, stats: Stats, mode: int = DATA_AWARE) -> np.ndarray:
    """uint32 channel scores, group after group (see es_adapt.h). ValueError when the mode
    is unknown or data-aware scores lack statistics."""
    scores = np.zeros(stats.channels, dtype=np.uint32)
    if _lib().es_adapt_importance(model.handle, stats.handle, int(mode), _ptr(scores)) != 0:
        raise ValueError(f"importance: mode {mode} needs statistics from >= 1 window")
    return scores


def select(stats: Stats, scores, prune) -> np.ndarray:
    """uint8 keep mask: in group g the top max(1, n - round(n * prune[g])) scores kept.
    ``prune``: one ratio in [0, 1] for every group, or a sequence with one per group."""
    ratios = np.broadcast_to(np.asarray(prune, dtype=np.float64), (len(stats.groups),))
    if ((ratios < 0) | (ratios > 1)).any():
        raise ValueError(f"prune ratios must be in [0, 1], got {prune}")
    sc = np.ascontiguousarray(scores, dtype=np.uint32)
    if sc.shape != (stats.channels,):
        raise ValueError(f"scores must have {stats.channels} entries, got {sc.shape}")
    keep = np.zeros(stats.channels, dtype=np.uint8)
    pm = np.ascontiguousarray(np.round(ratios * 1000), dtype=np.uint16)
    _lib().es_adapt_select(stats.handle, _ptr(sc), _ptr(pm), _ptr(keep))
    return keep


def prune(model: Model, stats: Stats, keep, bias_fix: bool = True) -> bytes:
    """The blob of ``model`` without the channels where ``keep`` is 0 (ValueError with the
    C core's reason otherwise)."""
    k = np.ascontiguousarray(keep, dtype=np.uint8)
    if k.shape != (stats.channels,):
        raise ValueError(f"keep must have {stats.channels} entries, got {k.shape}")
    so = _lib()
    need = ctypes.c_size_t()
    why = ctypes.c_char_p()
    args = (model.handle, stats.handle, _ptr(k), int(bool(bias_fix)))
    if so.es_adapt_prune(*args, None, 0, ctypes.byref(need), ctypes.byref(why)) != 0:
        raise ValueError(why.value.decode() if why.value else "prune failed")
    out = ctypes.create_string_buffer(need.value)
    if so.es_adapt_prune(*args, out, need.value, ctypes.byref(need), ctypes.byref(why)) != 0:
        raise ValueError(why.value.decode() if why.value else "prune failed")
    return out.raw[: need.value]


# ---------------------------------------------------------------------------------------
# Pseudo-labelling and the whole adaptation (what firmware/modules/es_adapt.py does).


class PseudoLabeler:
    """Turns a detector's outputs into a bounded buffer of pseudo-labelled embeddings, by the
    C core's rule (``es_adapt_labeler_t``, es_adapt.h: candidates, thinning, agreement, CHECK
    and DISTILL labels, buffer slots), which the board follows too. Each candidate's window is
    run by :class:`Forward` (statistics accumulate into ``stats``).
    """

    def __init__(
        self,
        model: Model,
        cfg: dict | None = None,
        with_stats: bool = True,
        student: Model | None = None,
    ):
        # With a student, every kept window is stored as the student's embedding, labelled
        # DISTILL with the teacher's (``model``'s) logit as the target.
        self.cfg = {**DEFAULTS, **(cfg or {})}
        self.model = model
        self.fwd = Forward(model)
        # All kept windows (mean activations for the bias correction) and the positives
        # alone (data-aware importance: channels the user's wake word uses).
        self.stats = Stats(model) if with_stats else None
        self.pos_stats = Stats(model) if with_stats else None
        self.student = None if student is None else Forward(student)
        self.emb_bytes = (self.student or self.fwd).emb_bytes
        params = es_adapt_label_params_t(*(self.cfg[k] for k in LABEL_KEYS), student is not None)
        self._lab, why = es_adapt_labeler_t(), ctypes.c_char_p()
        args = (model.handle, ctypes.byref(params), self.emb_bytes, ctypes.byref(why))
        if _lib().es_adapt_labeler_init(ctypes.byref(self._lab), *args):
            raise ValueError(why.value.decode() if why.value else "labeler init failed")
        self.slots = int(self._lab.slots)
        self.pos_slots = int(self._lab.pos_slots)
        self.embs = np.zeros((self.slots, self.emb_bytes), dtype=np.int8)
        self.labels = np.full(self.slots, EMPTY, dtype=np.uint8)
        self.targets = np.zeros(self.slots, dtype=np.int8)

    # The labeller's counters: positives and negatives stored, negative candidates seen,
    # negatives kept.
    n_pos = property(lambda self: int(self._lab.n_pos))
    n_neg = property(lambda self: int(self._lab.n_neg))
    neg_seen = property(lambda self: int(self._lab.neg_seen))
    n_kept_neg = property(lambda self: int(self._lab.kept_neg))

    @property
    def buffer_bytes(self) -> int:
        return self.embs.nbytes + self.labels.nbytes + self.targets.nbytes

    def add(self, cand: int, emb: np.ndarray, target: int, label: int) -> None:
        """Store one window as ``cand`` (1: positive, 0: negative) in its buffer slot."""
        slot = _lib().es_adapt_label_slot(ctypes.byref(self._lab), 1 if cand else 0)
        self.embs[slot] = emb
        self.labels[slot] = label
        self.targets[slot] = target

    def phases(self) -> int:
        """Windows stored per kept positive output: 1, or with a student ``distill_phases``
        (0: the model's ``output_stride``)."""
        if self.student is None:
            return 1
        return self.cfg["distill_phases"] or self.model.info["output_stride"]

    def observe(self, feats: np.ndarray, probs: np.ndarray, flags: np.ndarray) -> None:
        """One stream from its start: int8 features (n, 40) and the detector's per-hop
        probs and flags (n,). With a student, a kept positive output also stores the windows
        ending 1 .. phases() - 1 hops before it (those inside the stream), each with the
        teacher's own logit there as the target."""
        so, lab = _lib(), ctypes.byref(self._lab)
        frames, phases = self.fwd.frames, self.phases()
        p = np.ascontiguousarray(probs, dtype=np.uint8)
        f = np.ascontiguousarray(flags, dtype=np.uint8)
        if p.shape != f.shape or p.ndim != 1:
            raise ValueError(f"probs {p.shape} and flags {f.shape} must be equal, 1-d")
        cands = np.full(p.shape, EMPTY, dtype=np.uint8)
        so.es_adapt_label_candidates(lab, _ptr(p), _ptr(f), p.size, 0, _ptr(cands))
        for hop in np.flatnonzero(cands != EMPTY):
            hop, cand = int(hop), int(cands[hop])
            window = feats[hop + 1 - frames : hop + 1]
            logit, emb = self.fwd(window)
            if not so.es_adapt_label_agrees(lab, cand, logit):
                continue
            self.keep(window, cand, logit, emb)
            for back in range(1, phases if cand else 1):
                if hop - back + 1 < frames:
                    break
                window = feats[hop - back + 1 - frames : hop - back + 1]
                logit, emb = self.fwd(window)
                self.keep(window, cand, logit, emb)

    def keep(self, window: np.ndarray, cand: int, logit: int, emb: np.ndarray) -> None:
        """Store one agreed candidate (``cand`` 1: positive) of int8 ``window`` whose model
        logit and embedding are ``logit`` / ``emb``: statistics, label, the buffer."""
        if self.stats is not None:
            self.fwd(window, self.stats)
            if cand:
                self.fwd(window, self.pos_stats)
        label = _lib().es_adapt_label_next(ctypes.byref(self._lab), 1 if cand else 0)
        if self.student is not None:
            emb = self.student(window)[1]
        self.add(cand, emb, logit, label)

    def run_stream(self, samples: np.ndarray) -> None:
        """Run a fresh detector over int16 ``samples`` and observe it, with the detector's
        own feature rows (core.Detector.run_rows), as the board does."""
        det = core.Detector(self.model)
        res, feats = det.run_rows(samples)
        self.observe(feats, res.probs, res.flags)


@dataclass
class AdaptResult:
    """What :func:`adapt` did: ``blob`` (adapted), ``pruned_blob`` (pruned model before the
    fine-tuning, or None), positives/negatives in the buffer, learning memory (bytes)."""

    blob: bytes
    pruned_blob: bytes | None
    positives: int
    negatives: int
    learning_memory_bytes: int
    buffer_bytes: int
    keep: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def accepted(check: dict) -> bool:
    """The acceptance rule (es_adapt_accepted, as the board's Adapter.accepted): no held-back
    negatives, or they do not score higher, summed, than before training and none fires."""
    c = es_adapt_check_t(*(int(check[k]) for k in ("n", "rise", "above", "fires")))
    return bool(_lib().es_adapt_accepted(ctypes.byref(c)))


def train_buffer(
    model: Model, pl: PseudoLabeler, cfg: dict | None = None
) -> tuple[bytes, int, dict | None]:
    """Fine-tune ``model`` on ``pl``'s buffer; returns (blob, learning memory bytes, the
    acceptance check or None). When the check fails, the blob is ``model``'s own."""
    c = {**DEFAULTS, **(cfg or {})}
    lr = c["lr"] if pl.student is None else c["distill_lr"]
    anchor = c["anchor_shift"] if pl.student is None else 0  # a pruned student moves far
    t = Trainer(model, lr, c["pos_weight"], c["neg_weight"], c["distill_gain"], anchor)
    check = None
    if pl.n_pos and pl.n_neg:
        t.train(
            pl.embs,
            pl.labels,
            (c["epochs"] if pl.student is None else c["distill_epochs"]) * pl.slots,
            slice_macs=c["slice_macs"],
            targets=pl.targets,
        )
        check = t.check(pl.embs, pl.labels, pl.targets)
        if not accepted(check):
            return bytes(model.blob), t.mem_bytes, check
    return t.write(), t.mem_bytes, check


def adapt(
    blob: bytes, streams, cfg: dict | None = None, prune_ratio=0.0, mode: int = DATA_AWARE
) -> AdaptResult:
    """Adapt ``blob`` to one user's ``streams`` (int16 arrays: their utterances and ambient
    audio; on the board, what the microphone hears).

    Phase 1: the model pseudo-labels the streams (buffer of embeddings, activation
    statistics) and its last pointwise layer and classifier are fine-tuned: the adapted
    model A. With ``prune_ratio`` > 0 (one ratio, or one per channel group), A is pruned
    (importance by ``mode`` from the positives' statistics; biases corrected with the mean
    activations of all kept windows) into a student S, and phase 2 runs the streams again
    (on the board: the next minutes of listening, A detecting): A labels the windows, the
    buffer holds S's embeddings with A's logits as DISTILL targets, and S's head is
    fine-tuned to match A. Without positives or negatives the weights stay as they are.
    """
    streams = list(streams)
    model = Model(blob)
    pl = PseudoLabeler(model, cfg)
    for s in streams:
        pl.run_stream(s)
    adapted, mem, check = train_buffer(model, pl, cfg)
    info = {"check": check, "accepted": check is None or accepted(check)}
    if not np.any(np.asarray(prune_ratio) > 0):
        return AdaptResult(adapted, None, pl.n_pos, pl.n_neg, mem, pl.buffer_bytes, info=info)
    teacher = Model(adapted)
    scores = importance(teacher, pl.pos_stats if pl.pos_stats.windows else pl.stats, mode)
    keep = select(pl.stats, scores, prune_ratio)
    pruned = prune(teacher, pl.stats, keep, bias_fix=True)
    student = Model(pruned)
    pl2 = PseudoLabeler(teacher, cfg, with_stats=False, student=student)
    for s in streams:
        pl2.run_stream(s)
    out, mem2, _ = train_buffer(student, pl2, cfg)
    return AdaptResult(
        out, pruned, pl2.n_pos, pl2.n_neg, max(mem, mem2), pl2.buffer_bytes, keep, info
    )


# ---------------------------------------------------------------------------------------
# Board side.


def rollback(port: str) -> str:
    """Restore the factory model on the board at ``port`` (es_adapt.restore() over mpremote);
    returns the board's answer. Raises earshot.board.deploy.DeployError when the board fails."""
    from earshot.board import deploy

    out = deploy.run_on_board(port, "import es_adapt\nprint(es_adapt.restore())\n")
    return out.decode(errors="replace").strip()
