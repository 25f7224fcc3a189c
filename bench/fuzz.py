"""Coverage-guided fuzzing of everything that parses untrusted bytes: the C core's model blob
parser and what a parsed model drives (libFuzzer), and the host's parsers (atheris).

Targets (``--target``; default: all, one after the other):

- ``c_model`` (``bench/fuzz_model.c``): es_model_parse, es_model_get_info, the engine and the
  detector (defaults and a fuzzed configuration) on whatever parses, over a speech-like signal.
- ``c_adapt`` (``bench/fuzz_adapt.c``): on-device adaptation on whatever parses: forward
  passes with statistics, training, the acceptance check, the blob writer and channel pruning
  (both written blobs must parse), the pseudo-labeller.
- ``py_telemetry``, ``py_recording``, ``py_blob``, ``py_package`` (``bench/fuzz_targets.py``):
  the telemetry Decoder, ``read_recording``, ``blob.describe`` (against the C parser) and the
  package manifest loader.

The C targets are built with ``clang -fsanitize=fuzzer,address,undefined
-fno-sanitize-recover=all`` (any out-of-bounds access, signed overflow, bad shift or misaligned
access aborts) into ``build/fuzz/``. Each target runs for ``--seconds`` seconds, starting from
its corpus (``build/fuzz/corpus/<target>/``, kept between runs) and its seeds
(``build/fuzz/seeds/<target>/``, rewritten each run from the committed models, device-framed
telemetry and monitor recordings: ``fuzz_targets.seeds``). A crash is a sanitizer report,
a failed check of the harness (a broken API promise), a timeout or out-of-memory, or, for the
Python targets, an exception other than the documented ones; its reproducer is saved under
``build/fuzz/crashes/<target>/`` and named in the report.

Reported per target: executions, executions per second, coverage (libFuzzer's ``cov``: edges
or Python branches reached, and ``ft``: features, which also count hit-count buckets), the
corpus size and the crashes; with ``--line-coverage``, for the C targets, the share of each
core file's lines that the corpus runs (:func:`line_coverage`). ``--tolerate TARGET:Exception``
(Python targets) lets a run go on past an exception class already found and reported: its
first input is saved and listed (``tolerated``), and it does not count as a crash. Exit
status: 0 clean, 1 on any crash, 2 if a target cannot be built or run (clang, its libFuzzer
runtime or atheris missing: ``scripts/setup.sh``).

    python bench/fuzz.py --seconds N [--target NAME] [--json] [--fresh] [--line-coverage]
                         [--tolerate TARGET:Exception] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_targets  # noqa: E402  (bench/ is not a package)

ROOT = fuzz_targets.ROOT
OUT = ROOT / "build" / "fuzz"
CORE = ROOT / "firmware" / "core"
BENCH = ROOT / "bench"
TARGETS = fuzz_targets.C_TARGETS + fuzz_targets.PY_TARGETS
C_SOURCES = {"c_model": BENCH / "fuzz_model.c", "c_adapt": BENCH / "fuzz_adapt.c"}
CFLAGS = ["-std=c99", "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
          "-fno-sanitize-recover=all", "-Wall", "-Wextra", "-Werror"]
# Longest input above the largest seed, bytes: room for the trailer the C harnesses read.
MAX_LEN_EXTRA = 1024
TIMEOUT_S = 20  # one input running longer is a finding (libFuzzer -timeout)
RSS_LIMIT_MB = 2048


class Unavailable(RuntimeError):
    """A target cannot be built or run here (the reason names what is missing)."""


def core_sources(adapt: bool) -> list[Path]:
    """The core's C files (firmware/core/core.mk's list), without es_adapt*.c unless
    ``adapt``."""
    srcs = sorted(CORE.glob("*.c"))
    return srcs if adapt else [s for s in srcs if not s.name.startswith("es_adapt")]


def build_c(target: str) -> Path:
    """Build a C target with clang + libFuzzer into build/fuzz/<target> (again only when a
    source is newer). Raises Unavailable without clang or its libFuzzer runtime."""
    clang = shutil.which("clang")
    if clang is None:
        raise Unavailable("clang not installed (scripts/setup.sh: apt-get install clang)")
    exe = OUT / target
    srcs = [C_SOURCES[target], *core_sources(target == "c_adapt")]
    deps = srcs + [BENCH / "fuzz_blob.h", *CORE.glob("*.h")]
    if exe.is_file() and all(p.stat().st_mtime <= exe.stat().st_mtime for p in deps):
        return exe
    OUT.mkdir(parents=True, exist_ok=True)
    cmd = [clang, *CFLAGS, f"-I{CORE}", f"-I{BENCH}", "-o", str(exe), *map(str, srcs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "libclang_rt." in proc.stderr:
            raise Unavailable("clang's sanitizer and libFuzzer runtimes missing (apt-get "
                              "install libclang-rt-14-dev)")
        raise RuntimeError(f"building {target} failed:\n{proc.stderr[-3000:]}")
    return exe


def line_coverage(target: str) -> dict:
    """Line coverage of the core's C files by a C target's corpus and seeds: the harness built
    with clang's source-based coverage (fuzz_main.c in place of libFuzzer, -O0) replays every
    file; ``llvm-cov report`` gives, per file, the lines run over the lines with code.
    Returns {file name: [lines run, lines], ..., "total": [run, lines]}. Raises Unavailable
    without llvm-profdata and llvm-cov (Debian llvm, which clang depends on)."""
    tools = [shutil.which(t) for t in ("clang", "llvm-profdata", "llvm-cov")]
    if not all(tools):
        raise Unavailable("clang, llvm-profdata and llvm-cov are needed for --line-coverage")
    clang, profdata, cov = tools
    srcs = core_sources(target == "c_adapt")
    exe, raw = OUT / f"{target}-cov", OUT / "cov" / target
    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    subprocess.run([clang, "-std=c99", "-O0", "-g", "-fprofile-instr-generate",
                    "-fcoverage-mapping", f"-I{CORE}", f"-I{BENCH}", "-o", str(exe),
                    str(C_SOURCES[target]), str(BENCH / "fuzz_main.c"), *map(str, srcs)],
                   check=True, capture_output=True)
    inputs = sorted(p for d in ("corpus", "seeds") for p in (OUT / d / target).glob("*"))
    env = dict(os.environ, LLVM_PROFILE_FILE=str(raw / "%p-%m.profraw"))
    for i in range(0, len(inputs), 200):
        subprocess.run([str(exe), *map(str, inputs[i : i + 200])], env=env, check=True,
                       capture_output=True)
    merged = raw / "merged.profdata"
    subprocess.run([profdata, "merge", "-sparse", *map(str, raw.glob("*.profraw")), "-o",
                    str(merged)], check=True, capture_output=True)
    report = subprocess.run([cov, "report", str(exe), f"-instr-profile={merged}",
                             *map(str, srcs)], check=True, capture_output=True, text=True).stdout
    out = {}
    for line in report.splitlines():
        cells = line.split()
        # Filename, regions (3), functions (3), lines: total, missed, cover, branches (3).
        if len(cells) == 13 and cells[7].isdigit() and cells[8].isdigit():
            name = "total" if cells[0] == "TOTAL" else Path(cells[0]).name
            out[name] = [int(cells[7]) - int(cells[8]), int(cells[7])]
    return out


def command(target: str) -> list[str]:
    """The fuzzer's command without its libFuzzer flags. Raises Unavailable."""
    if target in C_SOURCES:
        return [str(build_c(target))]
    if importlib.util.find_spec("atheris") is None:
        raise Unavailable("atheris not installed (pip install -e '.[bench]')")
    return [sys.executable, str(BENCH / "fuzz_targets.py"), target]


def write_seeds(target: str) -> tuple[Path, int]:
    """Rewrite build/fuzz/seeds/<target>/ (one file per seed, named by its SHA-1); returns
    the folder and the largest seed's size in bytes."""
    folder = OUT / "seeds" / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seeds = fuzz_targets.seeds(target)
    for s in seeds:
        (folder / hashlib.sha1(s).hexdigest()).write_bytes(s)
    return folder, max(len(s) for s in seeds)


_PROGRESS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_TOLERATED = re.compile(r"^TOLERATED (\w+): (.*) \(input: (\S+)\)$", re.M)
_REASON = re.compile(r"(ERROR: \w+Sanitizer: .*|runtime error: .*|FUZZ_CHECK failed: .*|"
                     r"ERROR: libFuzzer: .*)")
_PY_EXC = re.compile(r"=== Uncaught Python exception: ===\n(?:.*\n)*?(\S.*)\n(?:\n|==)")


def crash_reason(log: str) -> str | None:
    """The first line that says why a run crashed: a Python exception (its last traceback
    line), a sanitizer's or the harness's report, or libFuzzer's (timeout, out-of-memory)."""
    m = _PY_EXC.search(log) or _REASON.search(log)
    return m[1].strip()[:300] if m else None


def parse_log(log: str) -> dict:
    """Executions, coverage, corpus and the crash (reason, reproducer) from a libFuzzer or
    atheris log."""
    stats = {k: int(v) for k, v in _STAT.findall(log)}
    progress = _PROGRESS.findall(log)
    last = progress[-1] if progress else (0, 0, 0, 0)
    artifacts = _ARTIFACT.findall(log)
    return {
        "executions": stats.get("number_of_executed_units", int(last[0])),
        "exec_per_s": stats.get("average_exec_per_sec", 0),
        "cov": int(last[1]),
        "ft": int(last[2]),
        "corpus": int(last[3]),
        "new_units": stats.get("new_units_added", 0),
        "peak_rss_mb": stats.get("peak_rss_mb", 0),
        "crashes": len(artifacts),
        "reproducers": artifacts,
        "reason": crash_reason(log),
        "tolerated": [{"exception": e, "message": m, "input": p}
                      for e, m, p in _TOLERATED.findall(log)],
    }


def run_target(target: str, seconds: float, fresh: bool, tolerate: tuple = ()) -> dict:
    """Fuzz one target for ``seconds`` s; the log goes to build/fuzz/logs/<target>.log.
    ``tolerate``: exception class names (Python targets; see fuzz_targets.tolerant).
    Raises Unavailable."""
    cmd = command(target)
    seed_dir, largest = write_seeds(target)
    corpus = OUT / "corpus" / target
    crashes = OUT / "crashes" / target
    if fresh:
        shutil.rmtree(corpus, ignore_errors=True)
    for d in (corpus, crashes, OUT / "logs"):
        d.mkdir(parents=True, exist_ok=True)
    flags = [f"-max_total_time={max(1, round(seconds))}", "-print_final_stats=1",
             f"-artifact_prefix={crashes}/", f"-max_len={largest + MAX_LEN_EXTRA}",
             f"-timeout={TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}", str(corpus),
             str(seed_dir)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               FUZZ_WORK_DIR=str(OUT / "work" / target),
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               FUZZ_TOLERATE=",".join(tolerate), FUZZ_TOLERATE_DIR=str(crashes))
    t0 = time.monotonic()
    proc = subprocess.run(cmd + flags, capture_output=True, text=True, errors="replace",
                          env=env, timeout=seconds + 600, check=False)
    log = proc.stdout + proc.stderr
    (OUT / "logs" / f"{target}.log").write_text(log)
    res = {"target": target, "seconds": round(time.monotonic() - t0, 1), **parse_log(log),
           "exit": proc.returncode, "log": str(OUT / "logs" / f"{target}.log")}
    if proc.returncode != 0 and res["crashes"] == 0:
        res["crashes"] = 1  # killed without a reproducer (e.g. the harness failed to start)
        res["reason"] = res["reason"] or (log.strip().splitlines() or ["?"])[-1][:300]
    return res


def table(results: list[dict]) -> str:
    head = (f"{'target':<13} {'seconds':>8} {'executions':>11} {'exec/s':>7} {'cov':>6} "
            f"{'ft':>7} {'corpus':>7} {'crashes':>8}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "unavailable" in r:
            lines.append(f"{r['target']:<13} unavailable: {r['unavailable']}")
            continue
        lines.append(f"{r['target']:<13} {r['seconds']:>8.0f} {r['executions']:>11,} "
                     f"{r['exec_per_s']:>7,} {r['cov']:>6,} {r['ft']:>7,} {r['corpus']:>7,} "
                     f"{r['crashes']:>8}")
        for path in r["reproducers"]:
            lines.append(f"  reproducer: {path}")
        if r["crashes"]:
            lines.append(f"  reason: {r['reason']}  (log: {r['log']})")
        cov = r.get("line_coverage")
        if cov:
            files = sorted((k, v) for k, v in cov.items() if k != "total")
            lines.append("  lines run: " + ", ".join(
                f"{k} {100 * a / b:.0f} %" for k, (a, b) in files + [("total", cov["total"])]
                if b))
        for t in r["tolerated"]:
            lines.append(f"  tolerated {t['exception']}: {t['message']} (input: {t['input']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="fuzzing time per target, s")
    ap.add_argument("--target", choices=TARGETS, action="append",
                    help="a target (repeatable); default: all")
    ap.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    ap.add_argument("--fresh", action="store_true", help="start from the seeds alone "
                    "(empty the kept corpus first)")
    ap.add_argument("--out", type=Path, help="folder for builds, corpora, "
                    "crashes and logs (default: build/fuzz)")
    ap.add_argument("--line-coverage", action="store_true", help="C targets: also report "
                    "the core's line coverage by the corpus (clang source-based coverage)")
    ap.add_argument("--tolerate", action="append", default=[], metavar="TARGET:EXCEPTION",
                    help="go on past this exception class of a Python target (repeatable)")
    args = ap.parse_args(argv)
    if args.out is not None:
        OUT = args.out.resolve()
    tolerate = {}
    for item in args.tolerate:
        target, _, exc = item.partition(":")
        if target not in fuzz_targets.PY_TARGETS or not exc.isidentifier():
            ap.error(f"--tolerate {item!r}: expected PYTHON_TARGET:ExceptionName")
        tolerate.setdefault(target, []).append(exc)
    results, status = [], 0
    for target in args.target or TARGETS:
        print(f"fuzz: {target} for {args.seconds:g} s", file=sys.stderr)
        try:
            results.append(run_target(target, args.seconds, args.fresh,
                                      tuple(tolerate.get(target, ()))))
            if args.line_coverage and target in C_SOURCES:
                results[-1]["line_coverage"] = line_coverage(target)
        except Unavailable as exc:
            results.append({"target": target, "unavailable": str(exc)})
            status = max(status, 2)
    if any(r.get("crashes") for r in results):
        status = 1
    print(json.dumps({"seconds": args.seconds, "targets": results}, indent=2) if args.json
          else table(results))
    return status


if __name__ == "__main__":
    sys.exit(main())
