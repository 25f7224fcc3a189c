# Earshot on-device adaptation (MicroPython): pseudo-labels, time-sliced fine-tuning,
# pruning and atomic persistence of the adapted model.
#
# The C work happens in _earshot.Adapter (firmware/core/es_adapt.h), the rules too: which
# detector outputs become pseudo-labelled samples, with which label and in which buffer slot
# (Adapter.labeler, candidates, label, slot) and whether the trained model is accepted
# (Adapter.accepted). host_tools/earshot/adapt.py (PseudoLabeler) calls the same C functions
# through ctypes: fed the same audio, the board and the host write the same adapted blob,
# byte for byte (tests/test_adapt.py). This module feeds the windows, schedules the training
# in slices and keeps the files safe.
#
# Needs a `_earshot` built with adaptation (MICROPY_PY_EARSHOT_ADAPT, the default); on a
# detection-only build importing it raises ImportError saying so.
#
# es_loop.py does this when the config enables it ("adapt"); by hand:
#   model, path = es_adapt.load_model()            # adapted.bin if valid, else model.bin
#   det = earshot.Detector(model); ad = es_adapt.Adapter(model)
#   each block: n = det.run(samples, probs, flags); ad.observe(samples, probs, flags, det)
#   between blocks: ad.step()   # one slice of training, then of the acceptance check
#                               # (<= slice_macs MACs each) once ready; returns the adapted
#                               # blob when done and accepted: save it with save(blob)
# Files: the factory model (model.bin) is never written. The adapted model goes to
# adapted.bin through adapted.bin.tmp (write, flush, close, rename); a bad, partial or
# missing adapted.bin falls back to the factory model; restore() deletes it.

import os

import _earshot
from _earshot import HOP_SAMPLES, MEL_BINS

if not hasattr(_earshot, "Adapter"):
    raise ImportError("es_adapt: this _earshot is detection-only (built with "
                      "MICROPY_PY_EARSHOT_ADAPT=0 or natmod --no-adapt): no adaptation")

FACTORY = "model.bin"
ADAPTED = "adapted.bin"
HOP_BYTES = HOP_SAMPLES * 2  # int16 samples
EMPTY = 0xFF  # ES_ADAPT_LABEL_EMPTY: no candidate, or a window dropped

# Defaults shared with host_tools/earshot/adapt.py DEFAULTS (tests compare them).
DEFAULTS = {
    "pos_cutoff": 179,
    "neg_cutoff": 64,
    "neg_every": 4,
    "buffer_bytes": 16384,
    "pos_share": 4,
    "check_every": 4,
    "lr": 0.0005,
    "distill_lr": 0.0003,
    "pos_weight": 1,
    "neg_weight": 1,
    "distill_gain": 8,
    "anchor_shift": 0,
    "epochs": 6,
    "distill_epochs": 60,
    "distill_phases": 0,
    "slice_macs": 20000,
    "min_pos": 4,
    "min_neg": 64,
}


def _read(path):
    size = os.stat(path)[6]
    blob = bytearray(size)
    with open(path, "rb") as f:
        got = f.readinto(blob)
    if got != size:
        raise OSError("short read of " + path)
    return blob


def load_model(factory=FACTORY, adapted=ADAPTED):
    """(Model, path): the adapted model when its file parses (magic, sizes, CRC-32), else the
    factory model. Raises OSError/ValueError only when the factory model itself is bad."""
    try:
        return _earshot.Model(_read(adapted)), adapted
    except (OSError, ValueError):
        pass
    return _earshot.Model(_read(factory)), factory


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def save(blob, path=ADAPTED, chunk=512):
    """Write a model blob atomically: validate it (ValueError if it does not parse), write
    path + ".tmp" in chunks, flush, close, then rename over path. A crash at any point
    leaves either the old file or the new one (or, on a file system whose rename cannot
    replace, no adapted file, i.e. the factory model), never a partial model in use."""
    _earshot.Model(bytes(blob))
    tmp = path + ".tmp"
    mv = memoryview(blob)
    with open(tmp, "wb") as f:
        for i in range(0, len(blob), chunk):
            f.write(mv[i : i + chunk])
        f.flush()
    if hasattr(os, "sync"):
        os.sync()
    try:
        os.rename(tmp, path)
    except OSError:  # FAT cannot rename over an existing file
        os.remove(path)
        os.rename(tmp, path)
    return path


def restore(adapted=ADAPTED):
    """Back to the factory model: delete the adapted model (and a leftover temp file).
    Returns True if an adapted model was removed."""
    removed = False
    for p in (adapted + ".tmp", adapted):
        if _exists(p):
            os.remove(p)
            removed = removed or p == adapted
    return removed


class Adapter:
    """Pseudo-labelling buffer and training scheduler for `model` (the one detecting).

    With `student` (a pruned model), windows kept are stored as the student's embeddings,
    labelled DISTILL with `model`'s logit, and the student is trained; each kept positive
    output also stores the windows ending 1 .. phases - 1 hops before it (cfg
    distill_phases, 0: the model's output_stride; earshot.adapt.DEFAULTS says why). cfg
    overrides DEFAULTS. Memory: the buffer (cfg buffer_bytes at most), a feature ring of
    2 * (input_frames + phases - 1) rows of MEL_BINS bytes, and the C Adapter (forward
    scratch, statistics, trainer, the pseudo-labeller's state).
    """

    def __init__(self, model, cfg=None, student=None):
        c = dict(DEFAULTS)
        if cfg:
            c.update(cfg)
        self.cfg = c
        self.model = model
        self.student = student
        self.c = _earshot.Adapter(model) if student is None else _earshot.Adapter(model, student)
        self.frames = model.info()["input_frames"]
        self.emb = self.c.embedding_size()
        # The buffer's layout and the labelling rule: es_adapt_labeler_t (es_adapt.h).
        slots, self.pos_slots = self.c.labeler(c["pos_cutoff"], c["neg_cutoff"],
                                               c["neg_every"], c["check_every"],
                                               c["pos_share"], c["buffer_bytes"])
        self.slots = slots
        self.embs = bytearray(slots * self.emb)
        self.labels = bytearray(b"\xff" * slots)
        self.targets = bytearray(slots)
        self.check = None  # (n, rise, above, fires) of the last training's acceptance check
        if student is None:
            self.phases = 1
        else:
            self.phases = c["distill_phases"] or model.info()["output_stride"]
        self.rows = self.frames + self.phases - 1  # feature rows the ring keeps
        self.ring = bytearray(2 * self.rows * MEL_BINS)
        # The model's input features: the detector's own rows (observe's det; nothing is
        # computed again), or, for a caller without one, this frontend (and the blob's input
        # normalisation), created on first use.
        self.fe = None
        self.input_norm = model.info().get("input_norm", 0)
        self.feats = bytearray(0)
        self.got = 0  # rows of this stream copied into the ring (from det: its row count)
        self.cands = bytearray(0)  # per hop of a block: 1, 0 or EMPTY (Adapter.candidates)
        self.slot = 0
        self.hop = 0
        self.remaining = -1  # samples left to train; 0: checking; -1: idle
        self.sample_macs = 0
        self.check_at = 0
        self.rejected = False
        self.finished = False  # True once a training and its check have ended

    def buffer_bytes(self):
        return len(self.embs) + len(self.labels) + len(self.targets)

    # The labeller's counters (Adapter.counts): positives and negatives stored, negative
    # candidates seen, negatives kept.
    @property
    def n_pos(self):
        return self.c.counts()[0]

    @property
    def n_neg(self):
        return self.c.counts()[1]

    @property
    def neg_seen(self):
        return self.c.counts()[2]

    @property
    def n_kept_neg(self):
        return self.c.counts()[3]

    def new_stream(self):
        """Call when the audio restarts (as the detector's reset)."""
        if self.fe is not None:
            self.fe.reset()
        self.hop = 0
        self.got = 0
        self.slot = 0
        for i in range(len(self.ring)):
            self.ring[i] = 0

    def _store(self, window, cand, logit, label):
        # One window into the buffer: its slot (Adapter.slot), label, the teacher's logit as
        # the target, the trainee's embedding (Adapter.keep, which also adds the teacher's
        # statistics).
        slot = self.c.slot(cand)
        self.labels[slot] = label
        self.targets[slot] = logit & 0xFF
        emb = memoryview(self.embs)[slot * self.emb : (slot + 1) * self.emb]
        self.c.keep(window, emb, cand)

    def observe(self, samples, probs, flags, det=None):
        """The block the detector just ran: int16 samples and its per-hop probs and flags.

        det: that earshot.Detector. Its feature rows (Detector.rows: what its model was fed,
        after the input normalisation) go into the window ring, so no frontend runs here;
        rows of hops the detector has not finalised yet (up to GATE_PREROLL_HOPS while its
        first stage is closed) come in the next block. Candidates only fall on hops where
        the model ran, whose rows are final at once. Without det the Adapter computes the
        features itself (a frontend per block: about the detector's own cost again).
        While the block holds no candidate (the gate closed, or no output worth keeping),
        only the rows are copied: no forward pass, no labels.
        """
        ad = self.c
        n = _earshot.hops(samples)
        if len(self.cands) < n:
            self.cands = bytearray(n)
        if det is None:
            if self.fe is None:
                self.fe = _earshot.Frontend(self.input_norm)
            if len(self.feats) < n * MEL_BINS:
                self.feats = bytearray(n * MEL_BINS)
            self.fe.run(samples, self.feats)
            new = n
        else:
            new = det.gate_stats()[2] - self.got  # rows finalised since the last block
            if len(self.feats) < new * MEL_BINS:
                self.feats = bytearray(new * MEL_BINS)
            if new and det.rows(self.got, memoryview(self.feats)[: new * MEL_BINS]) != new:
                raise ValueError("es_adapt: the detector no longer holds the rows of the last "
                                 "block (observe every block, with the same detector)")
        found = ad.candidates(probs, flags, n, self.hop, self.cands)
        frames, rows, ring, cands = self.frames, self.rows, self.ring, self.cands
        # Each row is written twice, rows apart, so every window is one contiguous view.
        half = rows * MEL_BINS
        win = frames * MEL_BINS
        mv = memoryview(ring)
        feats = self.feats
        base = self.hop  # hop index of the block's first hop
        for i in range(new):
            row = feats[i * MEL_BINS : (i + 1) * MEL_BINS]
            at = self.slot * MEL_BINS
            ring[at : at + MEL_BINS] = row
            ring[at + half : at + half + MEL_BINS] = row
            self.slot = self.slot + 1 if self.slot + 1 < rows else 0
            hop = self.got  # the row's hop
            self.got += 1
            if not found or hop < base or cands[hop - base] == EMPTY:
                continue
            cand = cands[hop - base]
            at = ((self.slot - frames) % rows) * MEL_BINS
            window = mv[at : at + win]
            logit = ad.logit(window)
            label = ad.label(cand, logit)  # EMPTY: the recomputed probability disagrees
            if label == EMPTY:
                continue
            self._store(window, cand, logit, label)
            # The earlier phases of a positive (a student only): windows ending 1 ..
            # phases - 1 hops before this output, each with the teacher's logit there.
            for back in range(1, self.phases if cand else 1):
                if hop - back + 1 < frames:
                    break
                at = ((self.slot - frames - back) % rows) * MEL_BINS
                window = mv[at : at + win]
                self._store(window, 1, ad.logit(window), ad.label(1))
        self.hop += n

    def ready(self):
        n_pos, n_neg = self.c.counts()[:2]
        return n_pos >= self.cfg["min_pos"] and n_neg >= self.cfg["min_neg"]

    def start_training(self):
        c = self.cfg
        lr = c["lr"] if self.student is None else c["distill_lr"]
        lr_q24 = int(lr * 16777216 + 0.5)
        anchor = c["anchor_shift"] if self.student is None else 0
        self.sample_macs = self.c.train_begin(lr_q24, c["pos_weight"], c["neg_weight"],
                                              c["distill_gain"], anchor)
        epochs = c["epochs"] if self.student is None else c["distill_epochs"]
        self.remaining = epochs * self.slots
        self.check_at = 0
        self.check = [0, 0, 0, 0]

    def _check_slice(self):
        # One slice of the acceptance check: as many buffer slots as cfg slice_macs pays for
        # if all were held-back negatives. Returns True when the whole buffer is checked.
        per = max(1, self.cfg["slice_macs"] // self.c.check_macs())
        count = min(per, self.slots - self.check_at)
        got = self.c.check(self.embs, self.labels, self.targets, self.check_at, count)
        for i in range(4):
            self.check[i] += got[i]
        self.check_at += count
        return self.check_at >= self.slots

    def step(self, force=False):
        """Between two detector blocks: start training once ready (or forced), then run one
        slice of at most cfg slice_macs MACs (training, then the acceptance check). Returns
        the adapted blob (a bytearray) when it has just finished and passed the check, else
        None; self.check then holds (n, rise, above, fires) and self.rejected tells whether
        the adapted model was refused (the model in use stays)."""
        if self.remaining < 0:
            if not (force or self.ready()) or not self.n_pos or not self.n_neg:
                return None
            self.start_training()
        if self.remaining > 0:
            budget = min(self.cfg["slice_macs"], self.remaining * self.sample_macs)
            done = self.c.train(self.embs, self.labels, self.targets, budget)
            if done == 0:
                raise ValueError("slice_macs fits no training sample")
            self.remaining = max(0, self.remaining - done)  # empty slots cost nothing
            return None
        if not self._check_slice():
            return None
        self.remaining = -1
        self.finished = True
        self.rejected = not self.c.accepted(self.check)
        if self.rejected:
            return None
        blob = bytearray(self.c.write())
        self.c.write(blob)
        return blob

    def training(self):
        """True while training or checking (between the first and the last slice)."""
        return self.remaining >= 0

    def train_all(self):
        """Run every slice now (tests, or a board with time to spare); returns the blob, or
        None (no positives or negatives, or refused by the acceptance check)."""
        while True:
            blob = self.step(force=True)
            if blob is not None or self.remaining < 0:
                return blob

    def prune(self, teacher, ratios_pm):
        """The pruned blob of `teacher` (this adapter's model or its adapted version): per
        channel group, ratios_pm[g] per mille of channels removed (data-aware importance,
        bias correction from the statistics gathered by observe)."""
        from array import array

        pm = array("H", ratios_pm)
        blob = bytearray(self.c.prune(teacher, pm))
        self.c.prune(teacher, pm, blob)
        return blob

    def learning_memory(self):
        return self.c.learning_memory()


def run_files(names, cfg=None, block_hops=10, save_to=ADAPTED):
    """Adapt the current model (load_model()) on recordings: each file (raw int16 little-
    endian PCM at SAMPLE_RATE Hz) is one stream through a fresh detector and the Adapter, read in
    blocks of block_hops hops. Then train in slices and save atomically to save_to.
    Prints 'CHECK <n> <rise> <above> <fires>' (the acceptance check, when it ran) and
    'ADAPT <positives> <negatives> <bytes> <crc32>' and returns the blob (None when the buffer
    lacks positives or negatives or the check refused the model; nothing is saved then)."""
    model, _ = load_model()
    det = _earshot.Detector(model)
    ad = Adapter(model, cfg)
    buf = bytearray(block_hops * HOP_BYTES)
    probs = bytearray(block_hops)
    flags = bytearray(block_hops)
    for name in names:
        det.reset()
        ad.new_stream()
        with open(name, "rb") as f:
            while True:
                got = f.readinto(buf)
                if not got:
                    break
                n = got // HOP_BYTES
                if n == 0:
                    break
                samples = memoryview(buf)[: n * HOP_BYTES]
                det.run(samples, probs, flags)
                ad.observe(samples, probs, flags, det)
    blob = ad.train_all()
    if ad.check is not None:
        print("CHECK", *ad.check)
    if blob is None:
        print("ADAPT", ad.n_pos, ad.n_neg, 0, 0)
        return None
    save(blob, save_to)
    print("ADAPT", ad.n_pos, ad.n_neg, len(blob), _earshot.crc32(blob))
    return blob
