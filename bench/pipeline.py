"""Work per second of audio, stage by stage, for the whole wake-word pipeline: Earshot gated and
ungated on ambient scenes and on speech, and microWakeWord's frontend + streaming model in
TFLite Micro and in the desktop TFLite runtime, all counted in one run.

    .venv/bin/python bench/pipeline.py [--json] [--model models/alexa]

Every number is an x86-64 instruction count from ``valgrind --tool=callgrind`` (deterministic:
the same input gives the same count on any run), divided by the seconds of audio, in millions
of instructions per second of audio (M/s). Nothing is estimated.

Audio (16 kHz int16, built here, seeded):
- ambient scenes, 2 s of warm-up then 10 s measured: ``white``, ``pink``, ``brown`` noise
  (RMS 300, about -41 dB below full scale), ``hum`` (50 Hz mains and its odd harmonics, RMS
  1000, with a faint hiss), ``silence`` (digital zeros), ``hiss`` (white noise 60 dB below full
  scale), ``babble`` (six overlapped negative-speech clips of EARSHOT_DATA, each at its own
  level, none of them "alexa");
- ``speech``: 10 s measured from a fresh detector: the development clip
  ``wake-word-benchmark/alexa/0.flac`` then ``wake-word-benchmark/computer`` clips (sorted by
  name), as in issue 35's table.
The warm-up is excluded by counting the scene twice, with and without it, and subtracting
(the detector starts with its first stage open for its hangover, es_vad.c).

Earshot (bench/core_step.c, the C core at -O2, no Python): ``gated`` = the default detector
(first stage and VAD on); ``ungated`` = first stage off, VAD on (the detector before the first
stage); ``free`` = both off (everything on every hop). Stages are callgrind's inclusive counts
of: ``first_stage`` es_gate_update, ``frontend`` es_frontend_hop, ``vad`` es_vad_update,
``norm`` es_norm_update, ``model`` es_engine_push + es_engine_reset, ``posterior``
es_posterior_push + es_posterior_clear + es_model_probability; ``other`` is es_detector_run's
total less those (pre-roll copies, bookkeeping).

microWakeWord, the way its users run it (streaming: one invoke per 30 ms, state variables in
the model): its alexa model from pymicro-wakeword 2.5.0 (``models/alexa.tflite``, input 3 x
40 int8); ``frontend`` = pymicro-features' TFLite Micro audio frontend (C function
FrontendProcessSamples, fed 10 ms at a time); ``model`` = ``MicroInterpreter::Invoke`` of the
PyPI tflite-micro runtime (``mww_tflm``), on the frontend's features quantised as
pymicro-wakeword does, or the desktop runtime pymicro-wakeword ships (``mww_tflite``), driven
by pymicro-wakeword's own streaming loop: its library carries no symbols valgrind can name,
so it is counted inside libffi's ``ffi_call`` (every ctypes call: copy in, Invoke, copy out),
less a run that only loads the model. Python's own work (numpy, the bindings) is not counted
on either side.

Keys of --json: ``ambient_gated`` / ``ambient_ungated`` / ``ambient_free`` (mean over the
ambient scenes, M/s), ``ambient_ratio_ungated_over_gated``, ``speech_gated`` /
``speech_ungated`` / ``speech_free``, ``mww_tflm_speech`` / ``mww_tflite_speech`` (frontend +
model), ``ratio_mww_tflm_over_earshot_speech``, ``scenes`` (every scene, configuration and
stage), ``mww`` (stages), ``adapt_unix_port``.

On-device adaptation's cost (``adapt_unix_port``): wall time per hop on the MicroPython unix
port (the x64 natmod; best of three runs) of the default detector and of
``es_adapt.Adapter.observe`` with the detector's rows (``rows``, what es_loop does) or with
its own frontend (``frontend``, as before), on the pink-noise scene (``ambient``) and on the
speech scene; wall times vary from run to run and machine to machine, instruction counts do
not.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host_tools"))

from earshot import core
from earshot.audio import load
from earshot.paths import FIRMWARE, MODELS, data_dir

CORE = FIRMWARE / "core"
STEP_C = ROOT / "bench" / "core_step.c"
RATE = core.SAMPLE_RATE_HZ
HOP = core.HOP_SAMPLES
WARM_S = 2
SCENE_S = 10
AMBIENT = ["white", "pink", "brown", "hum", "silence", "hiss", "babble"]
CONFIGS = {"gated": "gated", "ungated": "vad", "free": "detector"}  # name -> core_step mode
STAGES = {
    "first_stage": ["es_gate_update"],
    "frontend": ["es_frontend_hop"],
    "vad": ["es_vad_update"],
    "norm": ["es_norm_update"],
    "model": ["es_engine_push", "es_engine_reset"],
    "posterior": ["es_posterior_push", "es_posterior_clear", "es_model_probability"],
}
TFLM_INVOKE = "_ZN6tflite5micro16MicroInterpreter6InvokeEv"
# pymicro-wakeword calls the desktop runtime through ctypes; its library has no symbols
# valgrind can name, so its calls are counted inside libffi's ffi_call (every ctypes call),
# less the same count for a run that only loads the model (see mww_stages).
TFLITE_CALLS = "ffi_call"
MWW_FRONTEND = "FrontendProcessSamples"


def _noise(colour: str, seconds: float, rms: float, rng) -> np.ndarray:
    n = int(seconds * RATE)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.arange(len(spec)), 1.0)
    spec *= {"white": 1.0, "pink": f**-0.5, "brown": 1.0 / f}[colour]
    x = np.fft.irfft(spec, n)
    return x * rms / x.std()


def _pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _babble(seconds: float, data: Path, rng) -> np.ndarray:
    folder = data / "wake-word-benchmark"
    clips = sorted((folder / "computer").glob("*.flac"))[:40]
    clips += sorted((folder / "jarvis").glob("*.flac"))[:40]
    n = int(seconds * RATE)
    out = np.zeros(n)
    talkers = 6
    for t in range(talkers):  # each talker: clips back to back from a random start
        pos = -int(rng.integers(0, RATE))
        while pos < n:
            x = load(clips[int(rng.integers(0, len(clips)))]).astype(np.float64)
            x *= 1000.0 / (x.std() + 1e-9) * 10 ** (rng.uniform(-6, 6) / 20)
            a, b = max(pos, 0), min(pos + len(x), n)
            if b > a:
                out[a:b] += x[a - pos : b - pos]
            pos += len(x) + int(rng.integers(0, RATE // 4))
    return out


def scenes(data: Path) -> dict[str, tuple[np.ndarray, int]]:
    """name -> (int16 PCM, warm-up hops)."""
    rng = np.random.default_rng(35)
    total = WARM_S + SCENE_S
    n = total * RATE
    out = {}
    for colour in ("white", "pink", "brown"):
        out[colour] = _noise(colour, total, 300.0, rng)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 3, 5, 7))
    out["hum"] = hum * 1000.0 / hum.std() + _noise("white", total, 10.0, rng)
    out["silence"] = np.zeros(n)
    out["hiss"] = _noise("white", total, 32768 * 10 ** (-60 / 20), rng)
    out["babble"] = _babble(total, data, rng)
    res = {k: (_pcm(v), WARM_S * RATE // HOP) for k, v in out.items()}
    speech = [load(data / "wake-word-benchmark" / "alexa" / "0.flac")]
    for p in sorted((data / "wake-word-benchmark" / "computer").glob("*.flac")):
        if sum(len(s) for s in speech) >= SCENE_S * RATE:
            break
        speech.append(load(p))
    res["speech"] = (np.concatenate(speech)[: SCENE_S * RATE], 0)
    return res


def _callgrind(cmd, toggles, tmp: Path, demangle: bool = True) -> dict[str, int]:
    """Inclusive instruction counts of each function in `toggles` (collected only inside
    them), and their sum under "total"."""
    out = tmp / "callgrind.out"
    extra = [] if demangle else ["--demangle=no"]
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", *extra, *[f"--toggle-collect={t}" for t in toggles],
         f"--callgrind-out-file={out}", *map(str, cmd)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if not m:
        raise RuntimeError(f"callgrind: no count:\n{proc.stderr[-2000:]}")
    ann = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
        capture_output=True, text=True, check=True,
    ).stdout
    counts: dict[str, int] = {"total": int(m[1])}
    for line in ann.splitlines():
        lm = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S+)", line)
        if not lm:
            continue
        name = lm[2].rsplit(":", 1)[-1].split("'")[0]
        name = re.sub(r"\(.*$", "", name)
        counts.setdefault(name, int(lm[1].replace(",", "")))
    return counts


def earshot_stages(exe: Path, blob: Path, pcm: np.ndarray, warm: int, tmp: Path) -> dict:
    """M/s by stage for each configuration over the hops after `warm`."""
    raw = tmp / "scene.raw"
    raw.write_bytes(pcm.astype("<i2").tobytes())
    hops = len(pcm) // HOP
    seconds = (hops - warm) * HOP / RATE
    res = {}
    for name, mode in CONFIGS.items():
        runs = []
        for n in ([warm, hops] if warm else [hops]):
            runs.append(_callgrind([exe, mode, blob, raw, n], ["es_detector_run"], tmp))
        stage = {}
        for key in {k for r in runs for k in r}:
            stage[key] = runs[-1].get(key, 0) - (runs[0].get(key, 0) if warm else 0)
        total = stage.get("es_detector_run", stage["total"])
        row = {s: sum(stage.get(f, 0) for f in fns) for s, fns in STAGES.items()}
        row["other"] = total - sum(row.values())
        row["total"] = total
        res[name] = {k: round(v / seconds / 1e6, 3) for k, v in row.items()}
    return res


def mww_worker(pcm_path: str, load_only: bool = False) -> None:
    """Run under callgrind: microWakeWord's frontend, then its streaming model in TFLM and in
    the desktop TFLite runtime, over the int16 file (Python's own work is not counted).
    load_only: only load the desktop runtime's model (the baseline of its count)."""
    import pymicro_wakeword
    from pymicro_features import MicroFrontend
    from pymicro_wakeword import MicroWakeWord
    from tflite_micro.python.tflite_micro import runtime

    mww = MicroWakeWord.from_builtin(pymicro_wakeword.Model.ALEXA)
    if load_only:
        return
    pcm = np.fromfile(pcm_path, "<i2")
    fe = MicroFrontend()
    feats = []
    for i in range(0, len(pcm) - HOP + 1, HOP):
        out = fe.process_samples(pcm[i : i + HOP].tobytes())
        if out.features:
            feats.append(np.asarray(out.features, np.float32))
    models = Path(pymicro_wakeword.__file__).parent / "models"
    interp = runtime.Interpreter.from_bytes((models / "alexa.tflite").read_bytes(),
                                            arena_size=200_000)  # fmt: skip
    det = interp.get_input_details(0)
    scale = det["quantization_parameters"]["scales"][0]
    zp = det["quantization_parameters"]["zero_points"][0]
    stride = int(det["shape"][1])
    x = np.array(feats)
    q = np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8)
    blocks = [q[i : i + stride] for i in range(0, len(q) - stride + 1, stride)]
    for b in blocks:
        interp.set_input(b.reshape(det["shape"]), 0)
        interp.invoke()
    for row in x:  # pymicro-wakeword's own streaming loop: an invoke every `stride` rows
        mww.process_streaming_prob(row.reshape(1, -1))
    print(json.dumps({"feature_rows": len(feats), "invokes": len(blocks)}))


def mww_stages(pcm: np.ndarray, tmp: Path) -> dict:
    """microWakeWord's M/s by stage over `pcm` (mww_worker under callgrind)."""
    raw = tmp / "mww.raw"
    raw.write_bytes(pcm.astype("<i2").tobytes())
    seconds = len(pcm) / RATE
    worker = [sys.executable, __file__, "--mww-worker", raw]
    counts = _callgrind(worker, [MWW_FRONTEND, TFLM_INVOKE, TFLITE_CALLS], tmp, demangle=False)
    base = _callgrind([*worker, "--load-only"], [TFLITE_CALLS], tmp, demangle=False)
    fe = counts.get(MWW_FRONTEND, 0)
    tflm = counts.get(TFLM_INVOKE, 0)
    tfl = counts.get(TFLITE_CALLS, 0) - base.get(TFLITE_CALLS, 0)
    if not (fe > 0 and tflm > 0 and tfl > 0):
        raise RuntimeError(f"callgrind missed a microWakeWord stage: {fe}, {tflm}, {tfl}")
    m = lambda v: round(v / seconds / 1e6, 3)  # noqa: E731
    return {
        "frontend": m(fe),
        "tflm_model": m(tflm),
        "tflite_model": m(tfl),
        "tflm_total": m(fe + tflm),
        "tflite_total": m(fe + tfl),
    }


ADAPT_SCRIPT = """
import time, _earshot, es_adapt
m = _earshot.Model(es_adapt._read('model.bin'))
res = {}
for scene in ('ambient', 'speech'):
    for mode in ('rows', 'frontend'):
        best = None
        for rep in range(3):
            det = _earshot.Detector(m)
            ad = es_adapt.Adapter(m)
            buf = bytearray(3200); probs = bytearray(10); flags = bytearray(10)
            t_det = t_ad = 0; hops = 0
            with open(scene + '.raw', 'rb') as f:
                while True:
                    got = f.readinto(buf)
                    if got < 3200: break
                    t0 = time.ticks_us(); det.run(buf, probs, flags); t1 = time.ticks_us()
                    if mode == 'rows': ad.observe(buf, probs, flags, det)
                    else: ad.observe(buf, probs, flags)
                    t2 = time.ticks_us()
                    t_det += time.ticks_diff(t1, t0); t_ad += time.ticks_diff(t2, t1); hops += 10
            r = (t_det / hops, t_ad / hops)
            best = r if best is None or r[1] < best[1] else best
        res[scene + '_' + mode] = best
print(res)
"""


def adapt_cost(model_dir: Path, ambient: np.ndarray, speech: np.ndarray, tmp: Path) -> dict:
    """Wall time per hop on the MicroPython unix port (x64 natmod; best of 3 runs, so wall
    times, which vary from run to run, not instruction counts) of the detector and of
    es_adapt.Adapter.observe, fed the detector's rows or computing its own features."""
    import ast

    from earshot.board import natmod
    from earshot.board.vboard import micropython_executable

    d = tmp / "flash"
    d.mkdir()
    natmod.build("x64", out=d, clean=True)
    for p in (FIRMWARE / "modules").glob("*.py"):
        (d / p.name).write_bytes(p.read_bytes())
    (d / "model.bin").write_bytes((model_dir / "model.bin").read_bytes())
    (d / "ambient.raw").write_bytes(ambient.astype("<i2").tobytes())
    (d / "speech.raw").write_bytes(speech.astype("<i2").tobytes())
    out = subprocess.run([micropython_executable(), "-X", "heapsize=8M", "-c", ADAPT_SCRIPT],
                         cwd=d, capture_output=True, text=True, check=True).stdout  # fmt: skip
    raw = ast.literal_eval(out.strip().splitlines()[-1])
    return {
        f"{k}_{what}_us_per_hop": round(v[i], 1)
        for k, v in raw.items()
        for i, what in enumerate(("detector", "observe"))
    }


def measure(model_dir: Path) -> dict:
    for tool in ("valgrind", "callgrind_annotate", "gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run scripts/setup.sh")
    data = data_dir()
    blob = model_dir / "model.bin"
    res: dict = {
        "model": str(model_dir.relative_to(ROOT) if model_dir.is_relative_to(ROOT) else model_dir),
        "unit": "million x86-64 instructions per second of audio (callgrind)",
        "gate_preroll_hops": core.GATE_PREROLL_HOPS,
        "gate_decimate": core.GATE_DECIMATE,
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        exe = tmp / "core_step"
        subprocess.run(["gcc", "-std=c99", "-O2", "-g", f"-I{CORE}", "-o", str(exe), str(STEP_C),
                        *map(str, sorted(CORE.glob("*.c")))], check=True)  # fmt: skip
        all_scenes = scenes(data)
        res["scenes"] = {
            name: earshot_stages(exe, blob, pcm, warm, tmp)
            for name, (pcm, warm) in all_scenes.items()
        }
        res["mww"] = mww_stages(all_scenes["speech"][0], tmp)
        res["adapt_unix_port"] = adapt_cost(
            model_dir, all_scenes["pink"][0], all_scenes["speech"][0], tmp
        )
    sc = res["scenes"]
    for cfg in CONFIGS:
        res[f"ambient_{cfg}"] = round(float(np.mean([sc[s][cfg]["total"] for s in AMBIENT])), 3)
        res[f"speech_{cfg}"] = sc["speech"][cfg]["total"]
    res["ambient_ratio_ungated_over_gated"] = round(
        res["ambient_ungated"] / res["ambient_gated"], 2
    )
    res["ambient_ratio_per_scene"] = {
        s: round(sc[s]["ungated"]["total"] / sc[s]["gated"]["total"], 2) for s in AMBIENT
    }
    res["mww_tflm_speech"] = res["mww"]["tflm_total"]
    res["mww_tflite_speech"] = res["mww"]["tflite_total"]
    res["ratio_mww_tflm_over_earshot_speech"] = round(
        res["mww_tflm_speech"] / res["speech_gated"], 2
    )
    return res


def _table(res: dict) -> str:
    lines = [f"{res['unit']}; model {res['model']}", ""]
    cols = [*STAGES, "other", "total"]
    lines.append(f"{'scene':<9} {'config':<8} " + " ".join(f"{c:>11}" for c in cols))
    for scene, cfgs in res["scenes"].items():
        for cfg, row in cfgs.items():
            lines.append(f"{scene:<9} {cfg:<8} " + " ".join(f"{row[c]:>11.3f}" for c in cols))
    m = res["mww"]
    lines += [
        "",
        f"microWakeWord alexa, speech: frontend {m['frontend']:.3f}, model in TFLM "
        f"{m['tflm_model']:.3f} (total {m['tflm_total']:.3f}), model in desktop TFLite "
        f"{m['tflite_model']:.3f} (total {m['tflite_total']:.3f})",
        "",
    ]
    for key, value in res.items():
        if key not in ("scenes", "mww", "unit", "model"):
            lines.append(f"{key:<36} {value}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--mww-worker":
        mww_worker(argv[1], "--load-only" in argv)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--model", type=Path, default=MODELS / "alexa")
    args = ap.parse_args(argv)
    res = measure(args.model.resolve())
    print(json.dumps(res, indent=1) if args.json else _table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
