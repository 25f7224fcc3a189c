"""Pruned-student variants on the adaptation bench (docs/adaptation.md: the table
of student training variants). None of them is used by ``earshot.adapt``; this script keeps
the measurement reproducible.

Per user (``bench/adapt.py``'s users, adaptation streams and held-out negative stream):
phase 1 adapts the factory model (the teacher), the teacher is pruned at ``--ratio`` (0.5)
with ``bench/adapt.py``'s PROFILE, then the student is trained as the variant says and
tested on the user's other utterances (recall) and on the held-out negatives (false
accepts; mean FA/h over the users' students).

Variants (``--variant``; ``shipped`` is what ``earshot.adapt.adapt`` does):

- ``shipped``: DEFAULTS (60 passes at distill_lr).
- ``hard-round``: ``shipped``, then every VAD-open output the teacher scores <=
  ``neg_cutoff`` and the trained student >= 64/255 is added as a DISTILL negative, then 20
  more passes.
- ``mid``: windows the teacher scores between neg_cutoff and pos_cutoff are added to the
  positive ring (DISTILL).
- ``mid+hard-round``: both.
- ``lr-steps``: 40 passes at 0.0003, 40 at 0.0001, 40 at 0.00003.
- ``gain-shift``: each positive also with its int8 features shifted by -16 and +16 steps
  (0.376 dB each, earshot.h), the teacher's logit of the shifted window as its target.
- ``pos-repeat``: each positive stored 3 times.
- ``importance-all`` / ``importance-norm``: channel importance from all kept windows, or
  from weight norms, instead of the positives' statistics.
- ``rounds``: ``--rounds`` R (comma list) rounds of listening: round 1 is the 4 utterances
  and 40 ambient clips, each later round 40 new ambient clips (``ambient(40 * max R)``)
  into the same buffer, then 20 more passes.

    python bench/adapt_student.py --variant hard-round [--users 12] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import adapt as bench
from earshot import adapt, core
from earshot.train import dataset
from earshot.evaluate import PAD_S, negative_stream, pad
from earshot.model import Model

VARIANTS = (
    "shipped", "hard-round", "mid", "mid+hard-round", "lr-steps", "gain-shift", "pos-repeat",
    "importance-all", "importance-norm", "rounds",
)
WANT = core.FLAG_OUTPUT | core.FLAG_VAD


class VariantLabeler(adapt.PseudoLabeler):
    """PseudoLabeler with a student (every kept window DISTILL), plus: ``mid`` windows,
    ``shifts`` (feature offsets of extra positive copies), ``repeat`` (copies per positive)."""

    mid = False
    shifts: tuple = ()
    repeat = 1

    def observe(self, feats, probs, flags):
        if self.mid:  # first the stream's in-between windows, then the usual ones
            c = self.cfg
            frames = self.fwd.frames
            for hop in np.flatnonzero((flags & WANT) == WANT):
                hop = int(hop)
                if hop + 1 >= frames and c["neg_cutoff"] < int(probs[hop]) < c["pos_cutoff"]:
                    window = feats[hop + 1 - frames : hop + 1]
                    self.add(1, self.student(window)[1], self.fwd(window)[0], adapt.DISTILL)
        super().observe(feats, probs, flags)

    def keep(self, window, cand, logit, emb):
        super().keep(window, cand, logit, emb)
        if not cand:
            return
        for _ in range(self.repeat - 1):
            self.add(1, self.student(window)[1], logit, adapt.DISTILL)
        for s in self.shifts:
            w2 = np.clip(window.astype(np.int16) + s, -128, 127).astype(np.int8)
            self.add(1, self.student(w2)[1], self.fwd(w2)[0], adapt.DISTILL)


def hard_round(teacher: Model, student_blob: bytes, pl, streams, cfg, min_prob=64) -> int:
    """Add every VAD-open output the teacher scores <= neg_cutoff and the student >=
    ``min_prob`` to ``pl`` as a DISTILL negative; returns how many."""
    st, smodel = adapt.Forward(Model(student_blob)), Model(student_blob)
    fwd = adapt.Forward(teacher)
    frames, n = fwd.frames, 0
    for s in streams:
        res = core.Detector(teacher).run(s)
        feats = core.model_features(s, teacher.info.get("input_norm", 0))
        for hop in np.flatnonzero((res.flags & WANT) == WANT):
            hop = int(hop)
            if hop + 1 < frames or int(res.probs[hop]) > cfg["neg_cutoff"]:
                continue
            w = feats[hop + 1 - frames : hop + 1]
            logit, emb = st(w)
            if smodel.probability(logit) >= min_prob:
                pl.add(0, emb, fwd(w)[0], adapt.DISTILL)
                n += 1
    return n


def student_for(variant: str, factory: bytes, streams, ratio: float, cfg: dict):
    """Phase 1 and pruning; returns (teacher, pruned student before training)."""
    model = Model(factory)
    pl = adapt.PseudoLabeler(model, cfg)
    for s in streams:
        pl.run_stream(s)
    teacher = Model(adapt.train_buffer(model, pl, cfg)[0])
    if variant == "importance-all":
        scores = adapt.importance(teacher, pl.stats, adapt.DATA_AWARE)
    elif variant == "importance-norm":
        scores = adapt.importance(teacher, pl.stats, adapt.WEIGHT_NORM)
    else:
        stats = pl.pos_stats if pl.pos_stats.windows else pl.stats  # as earshot.adapt.adapt
        scores = adapt.importance(teacher, stats, adapt.DATA_AWARE)
    keep = adapt.select(pl.stats, scores, bench.ratios_for(ratio))
    return teacher, Model(adapt.prune(teacher, pl.stats, keep, bias_fix=True))


def train_student(variant, teacher, student, streams, cfg, later=()):
    """The trained student blob(s): one per entry of ``later`` (rounds), else one."""
    lab = VariantLabeler(teacher, cfg, with_stats=False, student=student)
    lab.mid = variant.startswith("mid")
    lab.shifts = (-16, 16) if variant == "gain-shift" else ()
    lab.repeat = 3 if variant == "pos-repeat" else 1
    for s in streams:
        lab.run_stream(s)
    if variant == "lr-steps":
        out = student.blob
        for passes, lr in ((40, 3e-4), (40, 1e-4), (40, 3e-5)):
            c = {**cfg, "distill_epochs": passes, "distill_lr": lr}
            out = adapt.train_buffer(Model(bytes(out)), lab, c)[0]
        return [out]
    out = adapt.train_buffer(student, lab, cfg)[0]
    if variant.endswith("hard-round"):
        hard_round(teacher, out, lab, streams, cfg)
        out = adapt.train_buffer(Model(out), lab, {**cfg, "distill_epochs": 20})[0]
    if variant != "rounds":
        return [out]
    outs = [out]
    for chunk in later:
        for s in chunk:
            lab.run_stream(s)
        outs.append(adapt.train_buffer(Model(outs[-1]), lab, {**cfg, "distill_epochs": 20})[0])
    return outs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=VARIANTS, required=True)
    ap.add_argument("--users", type=int, default=12)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--rounds", default="1,3,6,10", help="rounds variant: rounds to test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rounds = sorted({int(r) for r in args.rounds.split(",")})
    factory = bench.FACTORY.read_bytes()
    held, _, _ = negative_stream(dataset.heldout_negatives(), None, np.random.default_rng(1))
    hours = len(held) / core.SAMPLE_RATE_HZ / 3600
    cfg = dict(adapt.DEFAULTS)
    names = [f"rounds-{r}" for r in rounds] if args.variant == "rounds" else [args.variant]
    rec = {n: [] for n in names}
    fas = {n: [] for n in names}
    for u, files in enumerate(bench.users(10)[: args.users]):
        clips, _ = dataset.load_clips(files)
        test = clips[4:]
        if args.variant == "rounds":
            amb = bench.ambient(40 * max(rounds), u)
            later = [amb[40 * r : 40 * (r + 1)] for r in range(1, max(rounds))]
        else:
            amb, later = bench.ambient(40, u), []
        streams = [pad(c, PAD_S) for c in clips[:4]] + amb[:40]
        teacher, student = student_for(args.variant, factory, streams, args.ratio, cfg)
        outs = train_student(args.variant, teacher, student, streams, cfg, later)
        chosen = [outs[r - 1] for r in rounds] if args.variant == "rounds" else outs
        for n, blob in zip(names, chosen):
            rec[n].append(bench.recall(blob, test))
            fas[n].append(bench.false_accepts(blob, held))
        print(u, {n: (round(rec[n][-1], 3), fas[n][-1]) for n in names}, file=sys.stderr)
    out = {
        n: {
            "users": len(rec[n]),
            "recall": sum(rec[n]) / len(rec[n]),
            "false_accepts": sum(fas[n]),
            "fa_per_hour": sum(fas[n]) / len(fas[n]) / hours,
        }
        for n in names
    }
    print(json.dumps(out) if args.json else "\n".join(f"{n}: {v}" for n, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
