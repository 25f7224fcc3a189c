"""All-int8 against mixed int8 / packed int4 (``earshot quantize --bits auto``), one table.

    .venv/bin/python bench/precision.py [--int8 models/alexa]
                                        [--mixed build/quantize/alexa-mixed] [--json]
                                        [--snr 10] [--limit-negatives N]

Every number is measured in this run, for each of the two packages:
- blob bytes (the file), MACs per 30 ms and engine RAM (the C parser's header numbers);
- x86 instructions per hop: one ``es_engine_push`` per hop (the model part of a hop), counted
  by callgrind with ``--toggle-collect`` on it in ``bench/core_step.c``'s engine mode, the
  core built at -O2 (as ``bench/core.py`` counts) and at -Os (the device build's code
  paths), averaged over HOPS hops of ``bench/core.py``'s fixed test signal;
- heap bytes allocated after init: valgrind memcheck's heap total of core_step's detector
  mode at HOPS hops minus at 1 hop (everything runs on every hop);
- recall and false accepts per hour on the development split, clean and at each ``--snr``,
  as ``bench/accuracy.py`` measures them (``earshot.evaluate``): the development positives of
  the speaker folds the model never trained or validated on (for alexa, a model without a
  fold record: all of them), each padded with 1 s of silence and run on a fresh detector
  (VAD on, the model's cutoff / window / refractory); every negative clip in one shuffled
  stream, detections within 1.5 s merged. The same seeded noise for both models.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))
sys.path.insert(0, str(ROOT / "bench"))

import core as core_bench  # bench/core.py: the test signal, callgrind, the step driver

from earshot.evaluate import (
    NOISE_SEED,
    Earshot,
    NegativeStream,
    fold_positives,
    load_positives,
    measure,
    scan_negatives,
)
from earshot.model import Model, blob
from earshot.train import dataset

HOPS = core_bench.HOPS


def _heap_bytes(exe: Path, blob_path: Path, pcm: Path, hops: int) -> int:
    proc = subprocess.run(["valgrind", "--tool=memcheck", str(exe), "detector", str(blob_path),
                           str(pcm), str(hops)], capture_output=True, text=True, check=True)
    m = re.search(r"total heap usage: [\d,]+ allocs, [\d,]+ frees, ([\d,]+) bytes allocated",
                  proc.stderr)
    if not m:
        raise RuntimeError(f"valgrind printed no heap summary:\n{proc.stderr[-1500:]}")
    return int(m[1].replace(",", ""))


def costs(model_dir: Path, tmp: Path, exes: dict) -> dict:
    """Bytes, MACs, RAM, instructions per hop (-O2 and -Os) and heap after init."""
    blob_path = model_dir / "model.bin"
    raw = blob_path.read_bytes()
    info = Model(raw).info
    d = blob.describe(raw)
    res = {
        "blob_bytes": len(raw),
        "format_version": info["format_version"],
        "weight_bits": [int(lay["weight_bits"]) for lay in d["layers"]],
        "weight_bytes": int(d["weight_bytes"]),
        "macs_per_30ms": info["macs_per_output"] * 3 // info["output_stride"],
        "engine_ram_bytes": info["engine_bytes"],
    }
    for opt, exe in exes.items():
        n = core_bench._callgrind([exe, "engine", blob_path, tmp / "feats.raw", HOPS],
                                  "es_engine_push", tmp)
        res[f"instructions_per_hop{'' if opt == '-O2' else '_Os'}"] = round(n / HOPS)
    exe = exes["-O2"]
    res["heap_alloc_after_init_bytes"] = (_heap_bytes(exe, blob_path, tmp / "pcm.raw", HOPS)
                                          - _heap_bytes(exe, blob_path, tmp / "pcm.raw", 1))
    return res


def accuracy(dirs: dict, snr_db, limit_negatives, log) -> dict:
    """Recall and FA/h of each package on the development split (see the docstring)."""
    engines = {k: Earshot(v) for k, v in dirs.items()}
    first = next(iter(engines.values()))
    pos_paths, fold_info = fold_positives(first.manifest, "test")
    for k, eng in engines.items():
        if fold_positives(eng.manifest, "test")[0] != pos_paths:
            raise ValueError(f"{k}: its fold record selects other development clips")
    rng = np.random.default_rng(NOISE_SEED)
    positives, failed = load_positives(pos_paths, snr_db, rng, log)
    neg_paths = dataset.all_negatives(dataset.data_dir())
    if limit_negatives:
        neg_paths = neg_paths[:limit_negatives]
    stream = NegativeStream(neg_paths, snr_db, rng)
    times, _ = scan_negatives(list(engines.values()), stream)
    out = {"snr_db": snr_db, "positives": len(positives), "positives_unreadable": len(failed),
           "negative_clips": stream.clips, "negative_hours": round(stream.hours, 3),
           "folds": fold_info.get("selected") if isinstance(fold_info, dict) else None}
    for (k, eng), t in zip(engines.items(), times):
        r = measure(eng, positives, t[0], stream.hours)
        out[k] = {key: r[key] for key in ("detected", "recall", "recall_ci", "false_accepts",
                                          "fa_per_hour", "fa_per_hour_ci")}
        log(f"{k} at {'clean' if snr_db is None else f'{snr_db:g} dB'}: recall {r['recall']}, "
            f"FA/h {r['fa_per_hour']}")
    return out


def run(int8_dir: Path, mixed_dir: Path, snrs, limit_negatives=None, log=print) -> dict:
    dirs = {"int8": int8_dir, "mixed": mixed_dir}
    res: dict = {"int8_model": str(int8_dir), "mixed_model": str(mixed_dir), "hops": HOPS}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pcm, feats = core_bench._features(600)
        (tmp / "feats.raw").write_bytes(feats.tobytes())
        (tmp / "pcm.raw").write_bytes(pcm.astype("<i2").tobytes())
        exes = {}
        for opt in ("-O2", "-Os"):
            exes[opt] = tmp / f"core_step{opt}"
            core_bench._run(["gcc", "-std=c99", opt, "-g", f"-I{core_bench.CORE}", "-o",
                             exes[opt], core_bench.STEP_C, *sorted(core_bench.CORE.glob("*.c"))])
        for k, v in dirs.items():
            for key, val in costs(v, tmp, exes).items():
                res[f"{k}_{key}"] = val
    res["mixed_over_int8_blob"] = round(res["mixed_blob_bytes"] / res["int8_blob_bytes"], 4)
    res["mixed_over_int8_instructions"] = round(
        res["mixed_instructions_per_hop"] / res["int8_instructions_per_hop"], 3)
    res["mixed_over_int8_instructions_Os"] = round(
        res["mixed_instructions_per_hop_Os"] / res["int8_instructions_per_hop_Os"], 3)
    res["accuracy"] = []
    for snr in snrs:
        t0 = time.monotonic()
        a = accuracy(dirs, snr, limit_negatives, log)
        a["seconds"] = round(time.monotonic() - t0, 1)
        res["accuracy"].append(a)
    clean = next((a for a in res["accuracy"] if a["snr_db"] is None), res["accuracy"][0])
    for k in dirs:
        res[f"{k}_recall"] = clean[k]["recall"]
        res[f"{k}_fa_per_hour"] = clean[k]["fa_per_hour"]
    for a in res["accuracy"]:
        if a["snr_db"] is not None:
            for k in dirs:
                res[f"{k}_recall_{a['snr_db']:g}db"] = a[k]["recall"]
                res[f"{k}_fa_per_hour_{a['snr_db']:g}db"] = a[k]["fa_per_hour"]
    return res


def table(r: dict) -> str:
    rows = [
        ("blob bytes", "blob_bytes", "{:,}"),
        ("weight bytes (arrays)", "weight_bytes", "{:,}"),
        ("weight bits per layer", "weight_bits", "{}"),
        ("MACs per 30 ms", "macs_per_30ms", "{:,}"),
        ("engine RAM bytes", "engine_ram_bytes", "{:,}"),
        ("x86 instructions per hop (-O2)", "instructions_per_hop", "{:,}"),
        ("x86 instructions per hop (-Os)", "instructions_per_hop_Os", "{:,}"),
        ("heap bytes allocated after init", "heap_alloc_after_init_bytes", "{}"),
    ]
    lines = ["| measure | all int8 | mixed int8/int4 |", "|---|---|---|"]
    for name, key, fmt in rows:
        a, b = fmt.format(r["int8_" + key]), fmt.format(r["mixed_" + key])
        lines.append(f"| {name} | {a} | {b} |")
    for a in r["accuracy"]:
        snr = "clean" if a["snr_db"] is None else f"{a['snr_db']:g} dB SNR"
        for k in ("int8", "mixed"):
            a[k]["_r"] = (f"{100 * a[k]['recall']:.1f} % ({a[k]['detected']}/{a['positives']})")
            a[k]["_f"] = f"{a[k]['false_accepts']} ({a[k]['fa_per_hour']:.2f}/h)"
        lines.append(f"| recall, dev split, {snr} | {a['int8']['_r']} | {a['mixed']['_r']} |")
        lines.append(f"| false accepts in {a['negative_hours']:.2f} h, {snr} | {a['int8']['_f']} "
                     f"| {a['mixed']['_f']} |")
    lines.append("")
    lines.append(f"mixed / int8: blob {r['mixed_over_int8_blob']:.3f}, instructions per hop "
                 f"{r['mixed_over_int8_instructions']:.3f} (-O2), "
                 f"{r['mixed_over_int8_instructions_Os']:.3f} (-Os)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--int8", type=Path, default=ROOT / "models" / "alexa")
    ap.add_argument("--mixed", type=Path, default=ROOT / "build" / "quantize" / "alexa-mixed",
                    help="made by: earshot quantize --bits auto -o DIR")
    ap.add_argument("--snr", type=float, action="append",
                    help="also measure at this SNR in dB (repeatable; default: 10)")
    ap.add_argument("--limit-negatives", type=int, help="only the first N negatives (quick)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not (args.mixed / "model.bin").is_file():
        print(f"precision: {args.mixed}: no package (earshot quantize --bits auto -o "
              f"{args.mixed})", file=sys.stderr)
        return 2
    snrs = [None] + (args.snr or [10.0])
    r = run(args.int8, args.mixed, snrs, args.limit_negatives,
            lambda m: print(m, file=sys.stderr))
    print(json.dumps(r, indent=2) if args.json else table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
