"""The C core's costs for the shipped model, all measured in one run: bytes, RAM, MACs,
instructions and wall time per 10 ms hop against TFLite Micro, Xtensa code size.

    .venv/bin/python bench/core.py [--json] [--model models/alexa]

Definitions (every number is measured here, none is typed in):
- Earshot's step = one ``es_engine_push`` (one feature row in; the model part of a hop, as
  TFLM's ``Invoke`` is the model part). Counted by callgrind with ``--toggle-collect`` on the
  C symbol in ``bench/core_step.c`` (no Python at all), averaged over HOPS hops
  (x86_instructions_per_hop). The whole detector hop (frontend + engine + posterior, VAD off)
  is reported too (x86_instructions_per_detector_hop).
- TFLM = ``tflite::micro::MicroInterpreter::Invoke()`` of the PyPI tflite-micro runtime on
  the model's ``.tflite``, counted by callgrind with ``--toggle-collect`` on that symbol
  (Python excluded). TFLM runs the non-streaming window once per output, i.e. once every
  output_stride hops, so its cost per hop = Invoke cost / output_stride.
- Wall time: Earshot from C (clock_gettime around HOPS pushes, best of 5); TFLM from Python,
  the best of 5 loops of invokes minus the best of 5 identical loops calling the runtime's
  cheapest bound method (``Reset``, which does a little work itself), so Python's call
  overhead is excluded (slightly over-excluded: TFLM's time is if anything under-stated).
- ram_bytes = es_detector_mem_size (frontend + VAD + pre-roll + engine + posterior: every
  byte of state and scratch), engine_ram_bytes = es_engine_mem_size, on this host (x86-64;
  a 32-bit target needs a few bytes less: pointers are smaller).
- Xtensa code: every core source compiled by xtensa-lx106-elf-gcc -Os -ffunction-sections
  (the ESP8266's LX106 stands in for the S3's LX7). xtensa_core_text_bytes = sum of the
  objects' ``size`` text (code + literals + const tables; plain -Os objects).
  xtensa_hot_path_bytes = code and literal pools of the functions reachable by calls from
  es_detector_run (the per-hop entry: first stage, frontend, VAD, normalisation, engine,
  kernels, posterior; found from
  the relocations, so any function it might call counts), excluding const tables and the
  libc / libgcc helpers (listed separately: memcpy, memset, 64-bit multiply and shifts).
- heap_alloc_after_init_bytes: valgrind's heap total for bench/core_step.c (detector mode)
  at 3000 hops minus at 1 hop (the driver allocates only through stdio, before init);
  heap_alloc_after_init_gated_bytes: the same for the default detector (gated mode).
- ram_bytes includes the first stage's raw pre-roll (ES_GATE_PREROLL_HOPS hops of int16).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from earshot import core
from earshot.board import natmod
from earshot.model import Model
from earshot.paths import FIRMWARE, MODELS

CORE = FIRMWARE / "core"
STEP_C = ROOT / "bench" / "core_step.c"
XTENSA_GCC = "xtensa-lx106-elf-gcc"
XTENSA_FLAGS = ["-std=c99", "-Os", "-mlongcalls", "-ffunction-sections", "-fdata-sections"]
HOT_ROOT = "es_detector_run"
TFLM_INVOKE = "_ZN6tflite5micro16MicroInterpreter6InvokeEv"
BUDGET_MS = 30  # DESIGN.md states the MAC budget per 30 ms of audio
HOPS = 3000  # callgrind hops (500 engine outputs)
WALL_HOPS = 60000
TFLM_INVOKES = 30


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True, **kw)


def _features(n_hops: int) -> tuple[np.ndarray, np.ndarray]:
    """int16 PCM of a fixed, non-silent integer signal (LCG noise, slow envelope) and its
    int8 features."""
    n = n_hops * core.HOP_SAMPLES
    x = np.empty(n, np.int64)
    s = 99
    for i in range(n):
        s = (1664525 * s + 1013904223) & 0xFFFFFFFF
        x[i] = (s >> 16) - 32768
    pcm = (x * (1 + (np.arange(n) // 4000) % 8) // 8).astype(np.int16)
    return pcm, core.features(pcm)


def _callgrind(cmd, toggle: str, tmp: Path, demangle: bool = True) -> int:
    out = tmp / "callgrind.out"
    extra = [] if demangle else ["--demangle=no"]
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", *extra, f"--toggle-collect={toggle}",
         f"--callgrind-out-file={out}", *map(str, cmd)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if not m or int(m[1]) == 0:
        raise RuntimeError(f"callgrind collected nothing for {toggle}:\n{proc.stderr[-2000:]}")
    return int(m[1])


def _step(exe: Path, mode: str, blob: Path, inp: Path, hops: int) -> dict:
    line = _run([exe, mode, blob, inp, hops]).stdout
    m = re.fullmatch(r"hops (\d+) outputs (\d+) ns_per_hop ([\d.]+) checksum (\d+)\n", line)
    if not m:
        raise RuntimeError(f"core_step printed {line!r}")
    return {"outputs": int(m[2]), "ns_per_hop": float(m[3])}


def tflm_worker(tflite: str, feats: str, invokes: int, wall: bool) -> None:
    """Run in a subprocess (under callgrind, or for wall time): `invokes` Invokes."""
    from tflite_micro.python.tflite_micro import runtime

    flat = Path(tflite).read_bytes()
    x = np.fromfile(feats, np.int8).reshape(-1, core.MEL_BINS)
    interp = runtime.Interpreter.from_bytes(flat)
    shape = interp.get_input_details(0)["shape"]
    interp.set_input(x[: shape[1]].reshape(shape), 0)
    if not wall:
        for _ in range(invokes):
            interp.invoke()
        return
    raw = interp._interpreter
    best_invoke = best_call = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(invokes):
            raw.Invoke()
        t1 = time.perf_counter_ns()
        for _ in range(invokes):
            raw.Reset()
        t2 = time.perf_counter_ns()
        best_invoke = min(best_invoke, (t1 - t0) / invokes)
        best_call = min(best_call, (t2 - t1) / invokes)
    print(json.dumps({"invoke_ns": best_invoke, "call_overhead_ns": best_call}))


def xtensa_sizes(tmp: Path) -> dict:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    objs = []
    for src in sorted(CORE.glob("*.c")):
        obj = tmp / f"{src.stem}.o"
        _run([XTENSA_GCC, *XTENSA_FLAGS, "-isystem", "/usr/lib/xtensa-lx106-elf/include",
              f"-I{CORE}", "-c", src, "-o", obj])  # fmt: skip
        objs.append(obj)
    # Whole-core size from plain objects (no per-function sections, as a firmware build).
    plain = []
    for src in sorted(CORE.glob("*.c")):
        obj = tmp / f"plain_{src.stem}.o"
        _run([XTENSA_GCC, *XTENSA_FLAGS[:3], "-isystem", "/usr/lib/xtensa-lx106-elf/include",
              f"-I{CORE}", "-c", src, "-o", obj])  # fmt: skip
        plain.append(obj)
    size_out = _run(["xtensa-lx106-elf-size", *plain]).stdout.splitlines()[1:]
    per_object = {
        Path(line.split()[-1]).stem.removeprefix("plain_"): int(line.split()[0])
        for line in size_out
    }
    sizes: dict[str, int] = collections.Counter()
    calls: dict[str, set] = collections.defaultdict(set)
    for obj in objs:
        with open(obj, "rb") as f:
            elf = ELFFile(f)
            symtab = elf.get_section_by_name(".symtab")
            for sec in elf.iter_sections():
                for pre in (".text.", ".literal."):
                    if sec.name.startswith(pre):
                        sizes[sec.name[len(pre) :]] += sec.data_size
                if not isinstance(sec, RelocationSection):
                    continue
                target = elf.get_section(sec["sh_info"]).name
                fn = next(
                    (target[len(p) :] for p in (".text.", ".literal.") if target.startswith(p)),
                    None,
                )
                if fn is None:
                    continue
                for rel in sec.iter_relocations():
                    sym = symtab.get_symbol(rel["r_info_sym"])
                    name = sym.name
                    if not name and isinstance(sym["st_shndx"], int):
                        name = elf.get_section(sym["st_shndx"]).name.rsplit(".", 1)[-1]
                    if name and name != fn:
                        calls[fn].add(name)
    seen, todo = set(), [HOT_ROOT]
    while todo:
        fn = todo.pop()
        if fn not in seen:
            seen.add(fn)
            todo.extend(calls.get(fn, ()))
    hot = {fn: sizes[fn] for fn in seen if fn in sizes}
    helpers = sorted(fn for fn in seen if fn.startswith("__") or fn in ("memcpy", "memset"))
    return {
        "xtensa_core_text_bytes": sum(per_object.values()),
        "xtensa_text_bytes_per_object": per_object,
        "xtensa_hot_path_bytes": sum(hot.values()),
        "xtensa_hot_path_functions": dict(sorted(hot.items(), key=lambda kv: -kv[1])),
        "xtensa_hot_path_libc_libgcc_calls": helpers,
    }


def measure(model_dir: Path) -> dict:
    for tool in ("valgrind", "gcc", XTENSA_GCC):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run scripts/setup.sh")
    blob_path, tflite = model_dir / "model.bin", model_dir / "model.tflite"
    model = Model(blob_path.read_bytes())
    info = model.info
    so = core.lib()
    stride = info["output_stride"]
    res: dict = {
        "model": str(model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir),
        "blob_bytes": len(model.blob),
        "ram_bytes": int(so.es_detector_mem_size(model.handle)),
        "engine_ram_bytes": info["engine_bytes"],
        "macs_per_30ms": info["macs_per_output"] * (BUDGET_MS // core.HOP_MS) // stride,
        "output_stride_hops": stride,
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pcm, feats = _features(600)
        (tmp / "feats.raw").write_bytes(feats.tobytes())
        (tmp / "pcm.raw").write_bytes(pcm.astype("<i2").tobytes())
        exe = tmp / "core_step"
        _run(["gcc", "-std=c99", "-O2", "-g", f"-I{CORE}", "-o", exe, STEP_C,
              *sorted(CORE.glob("*.c"))])  # fmt: skip
        # Instructions (deterministic).
        eng = _callgrind(
            [exe, "engine", blob_path, tmp / "feats.raw", HOPS], "es_engine_push", tmp
        )
        det = _callgrind(
            [exe, "detector", blob_path, tmp / "pcm.raw", HOPS], "es_detector_run", tmp
        )
        worker = [sys.executable, __file__, "--tflm-worker", tflite, tmp / "feats.raw"]
        inv = _callgrind([*worker, TFLM_INVOKES], TFLM_INVOKE, tmp, demangle=False)
        res["x86_instructions_per_hop"] = round(eng / HOPS)
        res["x86_instructions_per_detector_hop"] = round(det / HOPS)
        res["tflm_x86_instructions_per_invoke"] = round(inv / TFLM_INVOKES)
        res["tflm_x86_instructions_per_hop"] = round(inv / TFLM_INVOKES / stride)
        res["instruction_ratio_tflm_over_earshot"] = round(
            res["tflm_x86_instructions_per_hop"] / res["x86_instructions_per_hop"], 2
        )
        # Wall time, same run.
        wall = min(
            _step(exe, "engine", blob_path, tmp / "feats.raw", WALL_HOPS)["ns_per_hop"]
            for _ in range(5)
        )
        tw = json.loads(_run([*worker, 300, "--wall"]).stdout)
        tflm_hop = (tw["invoke_ns"] - tw["call_overhead_ns"]) / stride
        res["earshot_wall_ns_per_hop"] = round(wall, 1)
        res["tflm_wall_ns_per_hop"] = round(tflm_hop, 1)
        res["tflm_python_call_overhead_ns"] = round(tw["call_overhead_ns"], 1)
        res["wall_ratio_tflm_over_earshot"] = round(tflm_hop / wall, 2)
        # Heap after init (valgrind memcheck), everything on every hop and the default
        # detector (first stage and VAD on: its closed and open paths both run on this input).
        for mode, key in (("detector", ""), ("gated", "_gated")):
            heap = {}
            for hops in (1, HOPS):
                proc = subprocess.run(
                    ["valgrind", "--error-exitcode=3", exe, mode, blob_path,
                     tmp / "pcm.raw", str(hops)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                m = re.search(r"total heap usage: [\d,]+ allocs, [\d,]+ frees, ([\d,]+) bytes",
                              proc.stderr)  # fmt: skip
                heap[hops] = int(m[1].replace(",", ""))
            res[f"heap_alloc_after_init{key}_bytes"] = heap[HOPS] - heap[1]
        res.update(xtensa_sizes(tmp))
        mpy = natmod.build("xtensa", out=tmp / "xtensa", clean=True)
        res["mpy_xtensa_bytes"] = mpy.stat().st_size
    return res


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--tflm-worker":
        tflm_worker(argv[1], argv[2], int(argv[3]), "--wall" in argv)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--model", type=Path, default=MODELS / "alexa")
    args = ap.parse_args(argv)
    res = measure(args.model.resolve())
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    width = max(len(k) for k in res)
    for key, value in res.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, int):
            value = f"{value:,}"
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
