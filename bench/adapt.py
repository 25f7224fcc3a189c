"""Adaptation bench: per-user weight adaptation and channel pruning on real recordings.

Users: the development positives ``wake-word-benchmark/alexa`` sorted by number, in blocks
of ``--block`` (10) consecutive files (neighbouring files share a speaker); 120 files make 12
users. Each user adapts on its first ``--k`` (4) utterances plus ``--ambient`` (40) ambient
clips drawn (seed = user index) from ``earshot.train.dataset.training_negatives("train")``, each
clip and utterance padded with 1 s of silence and run as its own stream through
``earshot.adapt.adapt`` (pseudo-labels from the model's own outputs: no ground truth is
used for adapting). Undecodable files are reported and skipped
(``skipped_files``), so a user may have fewer utterances (``test_utterances`` counts the
ones tested; a user with none beyond the first K is left out of the averages:
``users_left_out``). The user's remaining utterances are the test: each padded with 1 s of
silence, a fresh detector (VAD on, the blob's cutoff/window/refractory), a hit when at least
one detection fires (as bench/accuracy.py). False accepts: the held-out negatives
(``earshot.train.dataset.heldout_negatives``), shuffled with seed 0 and joined with 0.5 s gaps
into one stream, detections within 1.5 s merged (bench/accuracy.py), per user's model.
The same on the training's validation negatives
(``earshot.train.dataset.training_negatives("validation")``: never fitted, used by training only to
choose the cutoff; ``fa_*val*`` keys): a second stream of unseen speech, which needs none of
the test material, so adaptation settings can be judged on it.

Reported per user and averaged: recall and FA/h before (factory) and after adaptation (the
adapted model, or the factory one where the on-device acceptance check refused it:
``users_accepted``), for the adapted model and for models pruned at ``--ratios`` (group
ratios from PROFILE; data-aware importance, bias correction, then fine-tuned); blob bytes
and MACs per output before and after pruning;
``pruned_blob_ratio`` / ``pruned_macs_ratio`` / ``recall_pruned`` / ``fa_per_hour_pruned``
at ``--main-ratio``. ``--png`` writes the size-vs-recall curve (averaged over users).
``--vboard`` also runs user 0's adaptation through the virtual board (firmware/modules/
es_adapt.py on the MicroPython unix port) and checks its blob equals the host's.

``--sweep`` derives PROFILE instead (see sweep(); adaptation data only). ``--loo`` scores the
pruned students on adaptation utterances held out in turn (see loo(); adaptation data only).

    python bench/adapt.py [--json] [--png bench/adapt_size_recall.png] [--vboard]
    python bench/adapt.py --sweep [--sweep-users 12] [--sweep-holdout | --sweep-loo [--jobs 2]]
                          [--sweep-grid '[[0, 0.25], ...]']
    python bench/adapt.py --loo [--users 12] [--profile ...] [--adapt-cfg JSON] [--json]
    python bench/adapt.py --model OTHER/model.bin [--profile p0 p1 p2 p3 p4] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from earshot import adapt, core
from earshot.train import dataset
from earshot.evaluate import HOP_S, PAD_S, merge, negative_stream, pad
from earshot.model import Model

ROOT = Path(__file__).resolve().parents[1]
FACTORY = ROOT / "models" / "alexa" / "model.bin"
#: Per-group pruning profile (groups: conv0, pw2, pw4, pw6, pw8 outputs); a ratio r prunes
#: min(1, r * profile[g]) of group g, so --main-ratio 0.5 prunes profile / 2. Derived for
#: models/alexa (R3) by `python bench/adapt.py --sweep --sweep-users 12 --sweep-loo --jobs 2`
#: (see _sweep_loo(): the candidates of SWEEP_GRID that meet the size targets, ranked on
#: leave-one-out folds of the users' adaptation utterances only, no ground truth), with
#: earshot.adapt.DEFAULTS as they are (students learn every output phase): the only one of
#: the 19 with no held-out miss in 48. `--sweep-holdout` (one held-out utterance per user)
#: picks (0.5, 0.5, 1.5, 1, 1) there, 2 misses in the 48 folds.
PROFILE = (0.5, 0.0, 1.5, 1.25, 1.0)
#: Sweep candidates: the ratios tried per group (the product, filtered by the size targets,
#: keeping only the minimal ones: pruning more than a passing candidate never helps).
SWEEP_GRID = (
    (0.0, 0.125, 0.25),
    (0.0, 0.25),
    (0.25, 0.5, 0.75),
    (0.5, 0.625, 0.75, 0.875),
    (0.5, 0.625, 0.75, 0.875),
)
#: Size targets of the pruned model (issue 6): blob >= 2x smaller, MACs >= 1.5x fewer.
BLOB_TARGET, MACS_TARGET = 2.0, 1.5


def adapt_cfg(args) -> dict:
    """earshot.adapt.DEFAULTS with ``--adapt-cfg`` applied; SystemExit naming unknown keys."""
    cfg = {**adapt.DEFAULTS, **(getattr(args, "adapt_cfg", None) or {})}
    unknown = sorted(set(cfg) - set(adapt.DEFAULTS))
    if unknown:
        raise SystemExit(f"--adapt-cfg: unknown keys {unknown} (see earshot.adapt.DEFAULTS)")
    return cfg


def ratios_for(r: float, profile=PROFILE) -> list[float]:
    """Group pruning ratios at overall ratio ``r``: min(1, r * profile[g]) per group."""
    return [min(1.0, r * p) for p in profile]


def users(block: int) -> list[list[Path]]:
    files = dataset.dev_positives()
    return [files[i : i + block] for i in range(0, len(files) - block + 1, block)]


def recall(blob: bytes, clips) -> float:
    model = Model(blob)
    hits = 0
    for c in clips:
        hits += bool(core.Detector(model).run(pad(c, PAD_S)).detections)
    return hits / max(1, len(clips))


def false_accepts(blob: bytes, stream: np.ndarray) -> int:
    res = core.Detector(Model(blob)).run(stream)
    return len(merge([(h + 1) * HOP_S for h in res.detections]))


def ambient(n: int, seed: int) -> list[np.ndarray]:
    negs = sorted(p for ps in dataset.training_negatives(part="train").values() for p in ps)
    pick = random.Random(seed).sample(negs, n)
    clips, _ = dataset.load_clips(pick)
    return [pad(c, PAD_S) for c in clips]


def run(args, log=print) -> dict:
    """The whole benchmark, one user after another: factory scores, weight adaptation,
    pruning and the held-out tallies. Long because each step is a few lines that share the
    run's models, streams and counters, in the order the report prints them."""
    factory = args.model.read_bytes()
    fmodel = Model(factory)
    groups = len(adapt.Stats(fmodel).groups)
    profile = tuple(args.profile or PROFILE)
    if len(profile) != groups or len(SWEEP_GRID) != groups:
        raise SystemExit(
            f"{args.model} has {groups} channel groups, profile/SWEEP_GRID {len(profile)}: "
            "give SWEEP_GRID one entry per group and re-derive PROFILE with --sweep"
        )
    cfg = adapt_cfg(args)
    t0 = time.time()
    held, n_held, _ = negative_stream(dataset.heldout_negatives(), None, np.random.default_rng(1))
    hours = len(held) / core.SAMPLE_RATE_HZ / 3600
    fa_before = false_accepts(factory, held)
    log(f"held-out negatives: {n_held} clips, {hours:.3f} h, factory FA {fa_before}")
    val_paths = [p for ps in dataset.training_negatives(part="validation").values() for p in ps]
    val, n_val, _ = negative_stream(val_paths, None, np.random.default_rng(1))
    val_hours = len(val) / core.SAMPLE_RATE_HZ / 3600
    fa_val_before = false_accepts(factory, val)
    log(f"validation negatives: {n_val} clips, {val_hours:.3f} h, factory FA {fa_val_before}")
    per_user = []
    skipped = []  # undecodable files of the users' blocks (reported, not used)
    users_left_out = []  # users with no readable utterance beyond the first k
    curve = {r: [] for r in args.ratios}
    sizes = {}
    for u, files in enumerate(users(args.block)[: args.users]):
        clips, bad = dataset.load_clips(files, notify=log)
        skipped += [p.name for p, _ in bad]
        train, test = clips[: args.k], clips[args.k :]
        if not test:
            log(f"user {u}: {len(clips)} readable utterances, none left to test; left out")
            users_left_out.append(u)
            continue
        streams = [pad(c, PAD_S) for c in train] + ambient(args.ambient, u)
        rec_before = recall(factory, test)
        res = adapt.adapt(factory, streams, cfg)
        row = {
            "user": u,
            "files": f"{files[0].name}..{files[-1].name}",
            "test_utterances": len(test),
            "positives": res.positives,
            "negatives": res.negatives,
            "accepted": res.info["accepted"],
            "check": res.info["check"],
            "recall_before": rec_before,
            "recall_after": recall(res.blob, test),
            "fa_before": fa_before,
            "fa_after": false_accepts(res.blob, held),
            "fa_val_before": fa_val_before,
            "fa_val_after": false_accepts(res.blob, val),
        }
        for r in args.ratios:
            pr = adapt.adapt(factory, streams, cfg, prune_ratio=ratios_for(r, profile))
            m = Model(pr.blob)
            sizes[r] = (len(pr.blob), m.info["macs_per_output"])
            rec = recall(pr.blob, test)
            curve[r].append(rec)
            if r == args.main_ratio:
                row["recall_pruned"] = rec
                row["fa_pruned"] = false_accepts(pr.blob, held)
                row["fa_val_pruned"] = false_accepts(pr.blob, val)
                row["learning_memory_bytes_pruned"] = pr.learning_memory_bytes
        row["learning_memory_bytes"] = res.learning_memory_bytes
        row["buffer_bytes"] = res.buffer_bytes
        per_user.append(row)
        log(json.dumps(row))
    n = len(per_user)
    if not n:
        raise SystemExit("no user has an utterance left to test: lower --k or check the data")

    def avg(key):
        return sum(r[key] for r in per_user) / n

    blob_main, macs_main = sizes[args.main_ratio]
    out = {
        "users": n,
        "block": args.block,
        "k": args.k,
        "ambient_clips": args.ambient,
        "test_utterances": sum(r["test_utterances"] for r in per_user),
        "skipped_files": skipped,
        "users_left_out": users_left_out,
        "heldout_hours": round(hours, 4),
        "recall_before": avg("recall_before"),
        "recall_after": avg("recall_after"),
        "fa_per_hour_before": avg("fa_before") / hours,
        "fa_per_hour_after": avg("fa_after") / hours,
        "validation_negative_clips": n_val,
        "validation_hours": round(val_hours, 4),
        "fa_per_hour_val_before": avg("fa_val_before") / val_hours,
        "fa_per_hour_val_after": avg("fa_val_after") / val_hours,
        "users_accepted": sum(bool(r["accepted"]) for r in per_user),
        "model": str(args.model),
        "profile": list(profile),
        "adapt_cfg": getattr(args, "adapt_cfg", None) or {},
        "main_ratio": args.main_ratio,
        "recall_pruned": avg("recall_pruned"),
        "fa_per_hour_pruned": avg("fa_pruned") / hours,
        "fa_per_hour_val_pruned": avg("fa_val_pruned") / val_hours,
        "blob_bytes_before": len(factory),
        "blob_bytes_pruned": blob_main,
        "macs_before": fmodel.info["macs_per_output"],
        "macs_pruned": macs_main,
        "pruned_blob_ratio": len(factory) / blob_main,
        "pruned_macs_ratio": fmodel.info["macs_per_output"] / macs_main,
        "learning_memory_bytes": max(r["learning_memory_bytes"] for r in per_user),
        "buffer_bytes": per_user[0]["buffer_bytes"],
        "curve": [
            {
                "prune_ratio": r,
                "group_ratios": ratios_for(r, profile),
                "blob_bytes": sizes[r][0],
                "macs": sizes[r][1],
                "recall": sum(curve[r]) / n,
            }
            for r in args.ratios
        ],
        "per_user": per_user,
        "seconds": round(time.time() - t0, 1),
    }
    return out


def _fires(blob: bytes, streams) -> list[bool]:
    model = Model(blob)
    return [bool(core.Detector(model).run(s).detections) for s in streams]


def sweep(args, log=print) -> dict:
    """Derive PROFILE without ground truth: every minimal SWEEP_GRID candidate whose pruned
    blob meets BLOB_TARGET / MACS_TARGET (sizes depend on channel counts only) runs the whole
    adaptation (phase 1, pruning, fine-tuning) for the first ``--sweep-users`` users, on
    their adaptation streams only. Score per candidate:
    streams where the adapted (unpruned) teacher detects and the student does not, plus
    streams where the student detects and the teacher does not; the lowest total wins,
    ties by the smaller blob. No test utterance and no held-out negative is used.

    With ``--sweep-holdout`` each user adapts (teacher and every student) on its first
    ``--k`` - 1 utterances plus the ambient clips, and the ``--k``-th adaptation utterance is
    held out of that adaptation: candidates are ranked first by held-out utterances the
    teacher detects and the student does not, then by the in-sample score above, then by the
    student's summed peak probability (0..255) on the held-out utterances (higher first),
    then by the smaller blob. Scoring students on the streams they were fine-tuned on cannot
    tell apart candidates that all reproduce the teacher there."""
    import itertools

    factory = args.model.read_bytes()
    fm = Model(factory)
    stats = adapt.Stats(fm)
    grid = getattr(args, "sweep_grid", None) or SWEEP_GRID
    if len(grid) != len(stats.groups) or not all(len(g) for g in grid):
        raise SystemExit(
            f"the sweep grid needs one non-empty list of ratios per channel group "
            f"({len(stats.groups)}), got {len(grid)} lists"
        )
    grid = [[float(x) for x in g] for g in grid]
    scores = adapt.importance(fm, stats, adapt.WEIGHT_NORM)
    cands = []
    for r in itertools.product(*grid):
        b = Model(adapt.prune(fm, stats, adapt.select(stats, scores, r), bias_fix=False))
        blob_x = len(factory) / len(b.blob)
        macs_x = fm.info["macs_per_output"] / b.info["macs_per_output"]
        if blob_x >= BLOB_TARGET and macs_x >= MACS_TARGET:
            cands.append(r)
    cands = [c for c in cands if not any(d != c and all(map(float.__le__, d, c)) for d in cands)]
    log(f"sweep: {len(cands)} candidates meet {BLOB_TARGET}x blob, {MACS_TARGET}x MACs")
    if getattr(args, "sweep_loo", False):
        return _sweep_loo(args, factory, cands, log)
    holdout = getattr(args, "sweep_holdout", False)
    n_fit = args.k - 1 if holdout else args.k
    if n_fit < 1:
        raise SystemExit("--sweep-holdout needs --k >= 2")
    data = []
    for u, files in enumerate(users(args.block)[: args.sweep_users]):
        clips, _ = dataset.load_clips(files, notify=log)
        streams = [pad(c, PAD_S) for c in clips[:n_fit]] + ambient(args.ambient, u)
        held = [pad(c, PAD_S) for c in clips[n_fit : args.k]] if holdout else []
        teacher = adapt.adapt(factory, streams).blob
        data.append((streams, _fires(teacher, streams), held, _fires(teacher, held)))
    rows = []
    for r in cands:
        misses = extras = size = held_misses = held_peak = 0
        for streams, want, held, held_want in data:
            res = adapt.adapt(factory, streams, prune_ratio=r)
            got = _fires(res.blob, streams)
            misses += sum(w and not g for w, g in zip(want, got))
            extras += sum(g and not w for w, g in zip(want, got))
            size = len(res.blob)
            student = Model(res.blob) if held else None
            for h, w in zip(held, held_want):
                out = core.Detector(student).run(h)
                held_misses += bool(w and not out.detections)
                held_peak += int(out.probs.max()) if w else 0
        row = {"ratios": list(r), "misses": misses, "extras": extras, "blob_bytes": size}
        if holdout:
            row.update(held_misses=held_misses, held_peak=held_peak)
        rows.append(row)
        log(json.dumps(rows[-1]))
    best = min(rows, key=lambda x: (x.get("held_misses", 0), x["misses"] + x["extras"],
                                    -x.get("held_peak", 0), x["blob_bytes"]))
    profile = [round(x / args.main_ratio, 4) for x in best["ratios"]]
    return {"best": best, "profile": profile, "candidates": rows}


_LOO_STATE = None  # (factory, cfg, folds) for the worker processes of _sweep_loo (fork)


def _loo_folds(args, factory: bytes, cfg: dict, n_users: int, log) -> list[tuple]:
    """Leave-one-out folds of the first ``n_users`` users: each of a user's first ``--k``
    readable utterances held out in turn, as (user, held-out file name, adaptation streams
    (the other k - 1 plus the user's ambient clips), held-out stream, whether the model
    adapted on those streams (the teacher) detects the held-out one)."""
    folds = []
    for u, files in enumerate(users(args.block)[:n_users]):
        clips, bad = dataset.load_clips(files, notify=log)
        skipped = {p for p, _ in bad}
        names = [p.name for p in files if p not in skipped]
        amb = ambient(args.ambient, u)
        for f in range(min(args.k, len(clips))):
            fit = [pad(c, PAD_S) for i, c in enumerate(clips[: args.k]) if i != f] + amb
            held = pad(clips[f], PAD_S)
            teacher = Model(adapt.adapt(factory, fit, cfg).blob)
            want = bool(core.Detector(teacher).run(held).detections)
            folds.append((u, names[f], fit, held, want))
    return folds


def _loo_score(ratios) -> dict:
    """One sweep candidate over every leave-one-out fold of _LOO_STATE."""
    factory, cfg, folds = _LOO_STATE
    misses = peak = size = 0
    for _u, _name, fit, held, want in folds:
        res = adapt.adapt(factory, fit, cfg, prune_ratio=ratios)
        out = core.Detector(Model(res.blob)).run(held)
        misses += bool(want and not out.detections)
        peak += int(out.probs.max()) if want else 0
        size = len(res.blob)
    return {"ratios": list(ratios), "held_out": len(folds), "held_misses": misses,
            "held_peak": peak, "blob_bytes": size}


def _sweep_loo(args, factory: bytes, cands, log) -> dict:
    """``--sweep --sweep-loo``: each of the first ``--sweep-users`` users' first ``--k``
    utterances is held out in turn; the adapted model (teacher) and each candidate's pruned
    student are fit on the other k - 1 plus the user's ambient clips. Rank: held-out
    utterances the teacher detects and the student misses, then the student's summed peak
    probability on them (higher first), then the smaller blob. ``--jobs`` processes."""
    global _LOO_STATE
    import contextlib
    import multiprocessing

    cfg = adapt_cfg(args)
    folds = _loo_folds(args, factory, cfg, args.sweep_users, log)
    log(f"sweep-loo: {len(folds)} folds, teacher detects {sum(f[-1] for f in folds)}")
    _LOO_STATE = (factory, cfg, folds)
    jobs = max(1, int(getattr(args, "jobs", 1)))
    rows = []
    with (multiprocessing.get_context("fork").Pool(jobs) if jobs > 1
          else contextlib.nullcontext()) as pool:
        for row in (pool.imap if pool else map)(_loo_score, cands):
            rows.append(row)
            log(json.dumps(row))
    best = min(rows, key=lambda x: (x["held_misses"], -x["held_peak"], x["blob_bytes"]))
    profile = [round(x / args.main_ratio, 4) for x in best["ratios"]]
    return {"best": best, "profile": profile, "candidates": rows}


def loo(args, log=print) -> dict:
    """Leave-one-out on the adaptation utterances (adaptation data only, no test utterance
    and no held-out negative): for each of the first ``--users`` users and each of its first
    ``--k`` utterances, adapt on the other k - 1 plus the user's ambient clips, prune at
    ``--main-ratio`` (PROFILE or ``--profile``, ``--adapt-cfg``) and fine-tune, then run the
    held-out utterance through the adapted model (teacher) and the pruned one (student).
    Returns counts of held-out utterances each detects and the student's summed peak
    probability (0..255) on them."""
    factory = args.model.read_bytes()
    cfg = adapt_cfg(args)
    ratios = ratios_for(args.main_ratio, tuple(args.profile or PROFILE))
    rows = []
    for u, name, fit, held, want in _loo_folds(args, factory, cfg, args.users, log):
        student = Model(adapt.adapt(factory, fit, cfg, prune_ratio=ratios).blob)
        out = core.Detector(student).run(held)
        rows.append({
            "user": u,
            "held_out": name,
            "teacher": want,
            "student": bool(out.detections),
            "student_peak": int(out.probs.max()) if len(out.probs) else 0,
        })
        log(json.dumps(rows[-1]))
    return {
        "profile": list(args.profile or PROFILE),
        "adapt_cfg": getattr(args, "adapt_cfg", None) or {},
        "main_ratio": args.main_ratio,
        "held_out": len(rows),
        "teacher_hits": sum(r["teacher"] for r in rows),
        "student_hits": sum(r["student"] for r in rows),
        "student_peak_sum": sum(r["student_peak"] for r in rows),
        "rows": rows,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(result["blob_bytes_before"], result["recall_after"])] + [
        (c["blob_bytes"], c["recall"]) for c in result["curve"]
    ]
    pts.sort()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], "o-", label="adapted (+ pruned)")
    ax.axhline(100 * result["recall_before"], color="grey", ls="--", label="factory")
    for c in result["curve"]:
        ax.annotate(f"{c['prune_ratio']:.2f}", (c["blob_bytes"], 100 * c["recall"]))
    ax.set_xlabel("model blob (bytes)")
    ax.set_ylabel(f"recall, {result['users']} users (%)")
    ax.set_title("Earshot on-device adaptation: size vs recall")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def vboard_user(user: int, args, log=print) -> dict:
    """Run user ``user``'s adaptation (phase 1) on the virtual board: the streams are written
    to its flash as raw int16, ``es_adapt.run_files`` pseudo-labels, trains in slices and
    saves ``adapted.bin`` there; the host runs ``earshot.adapt.adapt`` on the same streams.
    Returns both blobs' sizes and CRC-32s and whether they are equal."""
    import tempfile
    import zlib

    from earshot.board import deploy, natmod
    from earshot.board.vboard import VirtualBoard

    files = users(args.block)[user]
    clips, _ = dataset.load_clips(files, notify=log)
    streams = [pad(c, PAD_S) for c in clips[: args.k]] + ambient(args.ambient, user)
    # Padded to whole hops, so the host and the board see the same samples.
    streams = [np.concatenate([s, np.zeros((-len(s)) % core.HOP_SAMPLES, np.int16)])
               for s in streams]
    host = adapt.adapt(args.model.read_bytes(), streams)
    natmod.build("x64")
    with tempfile.TemporaryDirectory() as tmp:
        flash = Path(tmp)
        names = []
        for i, s in enumerate(streams):
            (flash / f"u{i}.raw").write_bytes(s.astype("<i2").tobytes())
            names.append(f"u{i}.raw")
        t0 = time.time()
        with VirtualBoard(flash) as board:
            deploy.deploy(board.port, model=args.model)
            code = f"import es_adapt\nes_adapt.run_files({names!r})\n"
            out = deploy.run_on_board(board.port, code, timeout=1800).decode()
        board_blob = (flash / "adapted.bin").read_bytes()
        seconds = time.time() - t0
    line = [x for x in out.splitlines() if x.startswith("ADAPT")]
    log(f"virtual board: {line[-1] if line else out!r} in {seconds:.1f} s")
    return {
        "user": user,
        "board_blob_bytes": len(board_blob),
        "board_blob_crc32": zlib.crc32(board_blob),
        "host_blob_crc32": zlib.crc32(host.blob),
        "equal": board_blob == host.blob,
        "seconds": round(seconds, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=FACTORY,
                    help=f"factory blob (default {FACTORY.relative_to(ROOT)})")
    ap.add_argument("--profile", type=float, nargs="+", default=None,
                    help="per-group pruning profile instead of PROFILE (one value per group)")
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--ambient", type=int, default=40)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.2, 0.35, 0.5, 0.6])
    ap.add_argument("--main-ratio", type=float, default=0.5)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--vboard", action="store_true", help="also run user 0 on the virtual board")
    ap.add_argument("--sweep", action="store_true", help="derive PROFILE (see sweep()), exit")
    ap.add_argument("--sweep-users", type=int, default=2)
    ap.add_argument("--sweep-holdout", action="store_true",
                    help="with --sweep: hold the k-th adaptation utterance out (see sweep())")
    ap.add_argument("--sweep-grid", type=json.loads, default=None,
                    help="JSON list, per channel group, of the ratios to sweep (default "
                    "SWEEP_GRID), e.g. '[[0,0.25],[0],[0.5],[0.75],[0.75]]'")
    ap.add_argument("--sweep-loo", action="store_true",
                    help="with --sweep: rank on leave-one-out folds (see _sweep_loo())")
    ap.add_argument("--jobs", type=int, default=1, help="--sweep-loo worker processes")
    ap.add_argument("--loo", action="store_true",
                    help="leave-one-out on the adaptation utterances (see loo()), exit")
    ap.add_argument(
        "--adapt-cfg",
        type=json.loads,
        default=None,
        help='JSON object overriding earshot.adapt.DEFAULTS, e.g. \'{"distill_phases": 1}\'',
    )
    args = ap.parse_args(argv)
    if args.main_ratio not in args.ratios:
        args.ratios.append(args.main_ratio)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    if args.loo:
        res = loo(args, log)
        print(json.dumps(res) if args.json else
              f"held out {res['held_out']}: teacher {res['teacher_hits']}, "
              f"student {res['student_hits']}")
        return 0
    if args.sweep:
        res = sweep(args, log)
        print(json.dumps(res) if args.json else f"PROFILE = {tuple(res['profile'])}")
        return 0
    result = run(args, log)
    if args.vboard:
        result["vboard"] = vboard_user(0, args, log)
    if args.png:
        plot(result, args.png)
    if args.json:
        print(json.dumps(result))
    else:
        keys = [k for k in result if k not in ("per_user", "curve")]
        for k in keys:
            log(f"{k:24s} {result[k]}")
        for c in result["curve"]:
            log(
                f"prune {c['prune_ratio']:.2f}: {c['blob_bytes']} B, {c['macs']} MACs, "
                f"recall {100 * c['recall']:.1f} %"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
