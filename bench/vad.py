"""VAD gate bench: Earshot's integer VAD vs silero-vad labels, webrtcvad and pymicro-vad; model
duty cycle on noise alone and on speech; wake-word recall with the gate on and off.

Scenes (all seeded, SEED = 0; speech never comes from the development positives):

- **Speech scenes**: 60 s of noise per (kind, SNR) with real speech from ``shared/data``
  inserted every 1-5 s: the held-out wake-word-benchmark negatives (``earshot.train.dataset``; never
  trained on) and wuw-corpus-ii sentences (8 kHz telephone speech, resampled). Each clip is set
  to an active level of SPEECH_DBFS (RMS over its 10 ms frames within 30 dB of its loudest);
  the noise sits SNR dB below that. SNRs: 20, 10, 5 dB.
- **Noise alone**: 60 s per (kind, level), levels NOISE_DBFS.
- Noise kinds: ``white``, ``pink``, ``brown`` (1/f^a spectra), ``babble`` (8 talkers, each a
  stream of training-negative clips, a disjoint set of speakers' recordings), ``hum`` (50 Hz
  with odd harmonics), ``tone`` (a steady 1 kHz sine) and ``beeps`` (1 kHz bursts, 200 ms
  every 1.5 s), each with a faint white floor at -80 dBFS so no scene is digitally silent.

Reference labels: silero-vad 6.2.3's bundled ``silero_vad.onnx`` (run with onnxruntime, no
torch) on the *clean* speech track of each scene (the speech alone, in place), 512-sample
chunks, probability >= 0.5; a 10 ms hop takes the label of the chunk holding its middle
sample. Every VAD is then scored on the noisy mixture, frame by frame (10 ms hops):
precision = TP / (TP + FP), recall = TP / (TP + FN).

- ``earshot_vad``: the core's per-hop speech-like decision (es_vad.c, before onset
  confirmation and hangover).
- ``earshot_gate``: the gate the detector uses (default parameters, hangover included).
- references: ``silero`` (the same onnx model on the noisy mixture), ``webrtcvad_0..3``
  (webrtcvad-wheels, modes 0-3, 10 ms frames), ``pymicro_vad`` (probability >= 0.5; a hop where
  it returns -1, no new decision, keeps the previous one).

Cost per hop: ``us_per_hop`` is wall time per 10 ms of audio on this machine, through each
package's Python API (call overhead included; silero per 32 ms chunk / 3.2). Earshot's VAD is
timed in C (``bench/vad_cost.c``, -O2, over every hop of the scenes) and counted by
``valgrind --tool=callgrind`` as x86-64 instructions per es_vad_update call
(``vad_ops_per_hop``).

Model duty: the fraction of hops in which the model runs (``earshot.core.Detector`` with the
committed model, gate on): on noise alone (all noise-only scenes) and on the speech scenes.

Wake-word recall (method as ``bench/accuracy.py``): each development positive padded with 1 s
of silence on both sides, a fresh detector per clip, counted when it fires, gate on vs off;
the same at 10 dB SNR (``earshot.evaluate.add_noise``) and after 10 s of pink noise or babble
at 10 dB below the clip (the word right after a long stretch in which the gate stayed closed).

    python bench/vad.py [--json] [--model models/alexa] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from earshot import core, evaluate
from earshot.train import dataset
from earshot.audio import SAMPLE_RATE_HZ
from earshot.paths import BUILD, FIRMWARE, ROOT

SEED = 0
HOP = core.HOP_SAMPLES
SPEECH_DBFS = -26.0
SNRS_DB = (20.0, 10.0, 5.0)
NOISE_DBFS = (-70.0, -50.0, -35.0)
KINDS = ("white", "pink", "brown", "babble", "hum", "tone", "beeps")
SCENE_S = 60.0
GAP_S = (1.0, 5.0)
FLOOR_DBFS = -80.0
BABBLE_TALKERS = 8
LEAD_S = 10.0  # noise before the word in the "after a long stretch" recall conditions
SILERO_CHUNK = 512
SILERO_CONTEXT = 64
SILERO_THRESHOLD = 0.5


def dbfs(level_db: float) -> float:
    """int16 RMS of a full-scale-relative level in dB (0 dBFS = RMS 32768)."""
    return 32768.0 * 10 ** (level_db / 20)


# --- signals ----------------------------------------------------------------------------------


def colored(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power ~ 1/f^alpha, float64 (n,), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (alpha / 2), n)
    return x / np.sqrt(np.mean(x**2))


def talker_stream(n: int, clips: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Random clips joined end to end (each at unit active RMS), float64 (n,)."""
    out, filled = np.zeros(n), 0
    while filled < n:
        c = clips[int(rng.integers(len(clips)))].astype(np.float64)
        c = c / (active_rms(c) + 1e-9)
        k = min(len(c), n - filled)
        out[filled : filled + k] = c[:k]
        filled += k
    return out


def noise(kind: str, n: int, rng: np.random.Generator, babble_clips) -> np.ndarray:
    """Noise of ``kind`` (see KINDS), float64 (n,), unit RMS."""
    t = np.arange(n) / SAMPLE_RATE_HZ
    if kind in ("white", "pink", "brown"):
        return colored(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind], rng)
    if kind == "babble":
        x = sum(talker_stream(n, babble_clips, rng) for _ in range(BABBLE_TALKERS))
    elif kind == "hum":
        x = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k
                for k in (1, 3, 5, 7))
    elif kind == "tone":
        x = np.sin(2 * np.pi * 1000 * t)
    elif kind == "beeps":
        on = (t % 1.5) < 0.2
        x = np.sin(2 * np.pi * 1000 * t) * on
        return x / np.sqrt(np.mean(x[on] ** 2))  # unit RMS while on
    else:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {KINDS}")
    return x / np.sqrt(np.mean(x**2))


def active_rms(x: np.ndarray) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest one (an active speech level)."""
    n = len(x) // HOP
    if n == 0:
        return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))
    e = np.mean(np.asarray(x[: n * HOP], np.float64).reshape(n, HOP) ** 2, axis=1)
    return float(np.sqrt(np.mean(e[e >= e.max() * 1e-3])))


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def scene(kind, snr_db, noise_db, speech_clips, babble_clips, rng, seconds=SCENE_S):
    """One scene: (mixture int16, clean speech track int16). ``snr_db`` None: noise alone at
    ``noise_db`` dBFS; else speech at SPEECH_DBFS and noise ``snr_db`` below it."""
    n = int(seconds * SAMPLE_RATE_HZ)
    speech = np.zeros(n)
    if snr_db is not None:
        pos = int(rng.uniform(*GAP_S) * SAMPLE_RATE_HZ)
        while True:
            c = speech_clips[int(rng.integers(len(speech_clips)))].astype(np.float64)
            if pos + len(c) > n:
                break
            speech[pos : pos + len(c)] = c * dbfs(SPEECH_DBFS) / (active_rms(c) + 1e-9)
            pos += len(c) + int(rng.uniform(*GAP_S) * SAMPLE_RATE_HZ)
        noise_db = SPEECH_DBFS - snr_db
    x = speech + noise(kind, n, rng, babble_clips) * dbfs(noise_db)
    x += rng.standard_normal(n) * dbfs(FLOOR_DBFS)
    return to_int16(x), to_int16(speech)


# --- VADs -------------------------------------------------------------------------------------


def hop_frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // HOP
    return x[: n * HOP].reshape(n, HOP)


class Silero:
    """silero-vad's bundled onnx model through onnxruntime (state and 64-sample context carried
    as in silero_vad.utils_vad.OnnxWrapper, without torch)."""

    def __init__(self):
        import importlib.util

        import onnxruntime as ort

        spec = importlib.util.find_spec("silero_vad")
        if spec is None:
            raise RuntimeError("silero-vad is not installed (pip install --no-deps silero-vad)")
        path = Path(spec.origin).parent / "data" / "silero_vad.onnx"
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=opts,
                                            providers=["CPUExecutionProvider"])

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample chunk of int16 ``x`` (zero-padded at the end)."""
        xf = x.astype(np.float32) / 32768.0
        n = -(-len(xf) // SILERO_CHUNK)
        xf = np.concatenate([xf, np.zeros(n * SILERO_CHUNK - len(xf), np.float32)])
        state = np.zeros((2, 1, 128), np.float32)
        ctx = np.zeros(SILERO_CONTEXT, np.float32)
        sr = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        out = np.zeros(n, np.float32)
        for i in range(n):
            chunk = xf[i * SILERO_CHUNK : (i + 1) * SILERO_CHUNK]
            inp = np.concatenate([ctx, chunk])[None, :]
            p, state = self.session.run(None, {"input": inp, "state": state, "sr": sr})
            out[i] = p[0, 0]
            ctx = chunk[-SILERO_CONTEXT:]
        return out

    def hops(self, x: np.ndarray) -> np.ndarray:
        """0/1 per 10 ms hop: the label of the chunk holding the hop's middle sample."""
        p = self.probs(x)
        mid = np.arange(len(x) // HOP) * HOP + HOP // 2
        return (p[mid // SILERO_CHUNK] >= SILERO_THRESHOLD).astype(np.uint8)


def webrtc_hops(x: np.ndarray, mode: int) -> np.ndarray:
    import webrtcvad

    v = webrtcvad.Vad(mode)
    return np.array([v.is_speech(f.tobytes(), SAMPLE_RATE_HZ) for f in hop_frames(x)], np.uint8)


def microvad_hops(x: np.ndarray) -> np.ndarray:
    import pymicro_vad

    v = pymicro_vad.MicroVad()
    out, last = [], 0
    for f in hop_frames(x):
        p = v.process_10ms(f.tobytes())
        if p >= 0:
            last = 1 if p >= 0.5 else 0
        out.append(last)
    return np.array(out, np.uint8)


def score(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of 0/1 hop arrays."""
    n = min(len(pred), len(ref))
    p, r = pred[:n].astype(bool), ref[:n].astype(bool)
    return int((p & r).sum()), int((p & ~r).sum()), int((~p & r).sum())


def pr(tp: int, fp: int, fn: int) -> dict:
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
    }


# --- Earshot VAD cost in C --------------------------------------------------------------------


def earshot_cost(features: np.ndarray, log) -> dict:
    """Time es_vad_update in C over ``features`` (int8 (n, 40)) and count its instructions with
    callgrind. Returns {"us_per_hop", "ops_per_hop", "ops_method"}; ops None without valgrind."""
    out_dir = BUILD / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    exe = out_dir / "vad_cost"
    core_dir = FIRMWARE / "core"
    src = [ROOT / "bench" / "vad_cost.c", core_dir / "es_vad.c"]
    subprocess.run(["gcc", "-std=c99", "-O2", "-I", str(core_dir), "-o", str(exe),
                    *map(str, src)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        feat = Path(tmp) / "features.bin"
        np.ascontiguousarray(features, np.int8).tofile(feat)
        run = subprocess.run([str(exe), str(feat), "20"], check=True, capture_output=True,
                             text=True)
        ns = float(re.search(r"ns_per_hop ([0-9.]+)", run.stdout).group(1))
        res = {"us_per_hop": round(ns / 1000, 4), "ops_per_hop": None,
               "ops_method": "valgrind not found"}
        if shutil.which("valgrind"):
            cg = Path(tmp) / "callgrind.out"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                            "--toggle-collect=es_vad_update", str(exe), str(feat), "1"],
                           check=True, capture_output=True)
            summary = re.search(r"^summary: (\d+)", cg.read_text(), re.MULTILINE)
            ir = int(summary.group(1))
            res["ops_per_hop"] = round(ir / len(features), 1)
            res["ops_method"] = ("callgrind: x86-64 instructions inside es_vad_update "
                                 "(gcc -O2) / calls")
    log(f"earshot VAD cost: {res}")
    return res


# --- bench ------------------------------------------------------------------------------------


def speech_sources(root, rng):
    """(speech clips for the scenes, clips for babble): disjoint sets of recordings."""
    held = dataset.heldout_negatives(root)
    wuw = dataset.training_negatives(root)["wuw"]
    wuw = [wuw[i] for i in rng.permutation(len(wuw))[:150]]
    speech, _ = dataset.load_clips(held + wuw)
    train = dataset.training_negatives(root)
    babble_paths = train["wwb"] + train["precise"]
    babble_paths = [babble_paths[i] for i in rng.permutation(len(babble_paths))[:300]]
    babble, _ = dataset.load_clips(babble_paths)
    return speech, babble


def model_duty(model, x: np.ndarray) -> tuple[int, int]:
    det = core.Detector(model, vad=True)
    det.run(x)
    s = det.stats
    return s["model_hops"], s["hops"]


def wake_recall(model, manifest, log) -> dict:
    """Recall on the development positives under several conditions, gate on and off."""
    root = dataset.data_dir()
    clips = []
    for p in dataset.dev_positives(root):
        c, bad = dataset.load_clips([p])
        if not bad:
            clips.append(c[0])
    rng = np.random.default_rng(SEED)
    babble_src = speech_sources(root, np.random.default_rng(SEED + 1))[1]
    conds = {}
    noise_rng = np.random.default_rng(evaluate.NOISE_SEED)
    conds["clean"] = [evaluate.pad(c, evaluate.PAD_S) for c in clips]
    conds["snr10_white"] = [evaluate.add_noise(evaluate.pad(c, evaluate.PAD_S), 10.0, noise_rng)
                            for c in clips]
    for kind in ("pink", "babble"):
        xs = []
        for c in clips:
            body = np.concatenate([np.zeros(int(LEAD_S * SAMPLE_RATE_HZ)), c.astype(np.float64),
                                   np.zeros(int(evaluate.PAD_S * SAMPLE_RATE_HZ))])
            lvl = active_rms(c) / 10 ** (10.0 / 20)
            xs.append(to_int16(body + noise(kind, len(body), rng, babble_src) * lvl))
        conds[f"after_{LEAD_S:g}s_{kind}_snr10"] = xs
    out = {}
    kw = dict(cutoff=manifest["cutoff"], window=manifest["window"],
              refractory=manifest["refractory"])
    for name, xs in conds.items():
        r = {}
        for gate in (True, False):
            hits = [bool(core.Detector(model, vad=gate, **kw).run(x).detections) for x in xs]
            r["on" if gate else "off"] = round(sum(hits) / len(hits), 4)
            r[f"missed_{'on' if gate else 'off'}"] = [i for i, h in enumerate(hits) if not h]
        out[name] = r
        log(f"recall {name}: gate on {r['on']:.4f}, off {r['off']:.4f}")
    out["positives"] = len(clips)
    return out


def run(model_dir, quick=False, log=print) -> dict:
    """Every scene through every VAD and the detector, gate on and off. Long because the
    scenes, the reference VADs and the tallies share one set of clips and one report, built
    in the order it prints."""
    from earshot.model import Model, package as modelpkg

    manifest, blob = modelpkg.load(model_dir)
    model = Model(blob)
    root = dataset.data_dir()
    rng = np.random.default_rng(SEED)
    speech_clips, babble_clips = speech_sources(root, np.random.default_rng(SEED + 1))
    kinds = KINDS[:2] + ("babble", "beeps") if quick else KINDS
    seconds = 20.0 if quick else SCENE_S
    silero = Silero()
    names = ["earshot_vad", "earshot_gate", "silero", "webrtcvad_0", "webrtcvad_1",
             "webrtcvad_2", "webrtcvad_3", "pymicro_vad"]
    counts = {n: [0, 0, 0] for n in names}
    per_kind = {}
    secs = {n: 0.0 for n in names}
    all_feats, duty_speech, duty_noise = [], [0, 0], [0, 0]
    noise_only, open_noise = {}, {}
    for kind in kinds:
        for snr in SNRS_DB:
            x, clean = scene(kind, snr, None, speech_clips, babble_clips, rng, seconds)
            ref = silero.hops(clean)
            preds = {}
            t0 = time.perf_counter()
            preds["silero"] = silero.hops(x)
            secs["silero"] += time.perf_counter() - t0
            for m in range(4):
                t0 = time.perf_counter()
                preds[f"webrtcvad_{m}"] = webrtc_hops(x, m)
                secs[f"webrtcvad_{m}"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            preds["pymicro_vad"] = microvad_hops(x)
            secs["pymicro_vad"] += time.perf_counter() - t0
            feats = core.features(x)
            all_feats.append(feats)
            trace = core.vad_trace(feats)
            preds["earshot_vad"] = trace["speech"]
            preds["earshot_gate"] = trace["gate"]
            key = f"{kind}@{snr:g}dB"
            per_kind[key] = {}
            for n in names:
                s = score(preds[n], ref)
                counts[n] = [a + b for a, b in zip(counts[n], s)]
                per_kind[key][n] = pr(*s)
            ran, hops = model_duty(model, x)
            duty_speech[0] += ran
            duty_speech[1] += hops
            per_kind[key]["model_duty"] = round(ran / hops, 4)
            per_kind[key]["speech_fraction"] = round(float(ref.mean()), 4)
            log(f"{key}: earshot {per_kind[key]['earshot_vad']} gate "
                f"{per_kind[key]['earshot_gate']} silero {per_kind[key]['silero']} "
                f"duty {ran / hops:.3f}")
        for level in NOISE_DBFS:
            x, _ = scene(kind, None, level, speech_clips, babble_clips, rng, seconds)
            opens = {"earshot_gate": core.vad(core.features(x))[0], "silero": silero.hops(x),
                     "pymicro_vad": microvad_hops(x)}
            for m in range(4):
                opens[f"webrtcvad_{m}"] = webrtc_hops(x, m)
            for n, o in opens.items():
                open_noise.setdefault(n, {})[f"{kind}@{level:g}dBFS"] = round(float(o.mean()), 4)
            ran, hops = model_duty(model, x)
            duty_noise[0] += ran
            duty_noise[1] += hops
            noise_only[f"{kind}@{level:g}dBFS"] = round(ran / hops, 4)
            log(f"noise only {kind}@{level:g} dBFS: model duty {ran / hops:.3f}")
    total_hops = sum(len(f) for f in all_feats)
    cost = earshot_cost(np.concatenate(all_feats), log)
    refs = {}
    for n in names[2:]:
        refs[n] = {**pr(*counts[n]), "us_per_hop": round(1e6 * secs[n] / total_hops, 3)}
    def mean_open(name):
        v = open_noise[name]
        return {"open_noise_only": round(sum(v.values()) / len(v), 4),
                "open_noise_only_no_babble": round(
                    np.mean([o for k, o in v.items() if not k.startswith("babble")]), 4)}

    for n in refs:
        refs[n].update(mean_open(n))
    results = {
        "model": str(model_dir),
        "quick": quick,
        "scene_seconds": seconds,
        "speech_scene_hops": total_hops,
        "model_duty_noise_only": round(duty_noise[0] / duty_noise[1], 4),
        "model_duty_noise_only_no_babble": round(
            np.mean([v for k, v in noise_only.items() if not k.startswith("babble")]), 4),
        "model_duty_speech": round(duty_speech[0] / duty_speech[1], 4),
        "vad_ops_per_hop": cost["ops_per_hop"],
        "vad_ops_method": cost["ops_method"],
        "vad_us_per_hop": cost["us_per_hop"],
        "earshot_vad": {**pr(*counts["earshot_vad"]), "ops_per_hop": cost["ops_per_hop"],
                        "us_per_hop": cost["us_per_hop"]},
        "earshot_gate": {**pr(*counts["earshot_gate"]), "ops_per_hop": cost["ops_per_hop"],
                         "us_per_hop": cost["us_per_hop"], **mean_open("earshot_gate")},
        "references": refs,
        "model_duty_by_noise": noise_only,
        "open_on_noise_only": open_noise,
        "speech_scenes": per_kind,
        "vad_params": core.vad_defaults(),
    }
    rec = wake_recall(model, manifest, log)
    results["recall_gate_on"] = rec["clean"]["on"]
    results["recall_gate_off"] = rec["clean"]["off"]
    results["recall"] = rec
    return results


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def table(r: dict) -> str:
    """Markdown tables of one run."""
    lines = [
        "| VAD | precision | recall | open on noise alone (without babble) | cost per hop |",
        "|---|---|---|---|---|",
    ]
    rows = [("Earshot VAD (per hop)", r["earshot_vad"]), ("Earshot gate", r["earshot_gate"])]
    rows += list(r["references"].items())
    for name, v in rows:
        cost = f"{v['us_per_hop']:.2f} us"
        if v.get("ops_per_hop"):
            cost = f"{v['ops_per_hop']:.0f} instructions, {v['us_per_hop']:.2f} us (C)"
        noise = "-"
        if "open_noise_only" in v:
            noise = f"{_pct(v['open_noise_only'])} ({_pct(v['open_noise_only_no_babble'])})"
        lines.append(f"| {name} | {_pct(v['precision'])} | {_pct(v['recall'])} | {noise} | "
                     f"{cost} |")
    rec = r["recall"]
    lines += [
        "",
        f"Model duty: noise alone {_pct(r['model_duty_noise_only'])} of hops (without babble "
        f"{_pct(r['model_duty_noise_only_no_babble'])}); speech scenes "
        f"{_pct(r['model_duty_speech'])}.",
        "",
        f"| wake-word recall, {rec['positives']} dev positives | gate on | gate off |",
        "|---|---|---|",
    ]
    for cond, v in rec.items():
        if isinstance(v, dict):
            lines.append(f"| {cond} | {_pct(v['on'])} | {_pct(v['off'])} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "alexa"))
    ap.add_argument("--json", action="store_true", help="print one JSON object, not tables")
    ap.add_argument("--quick", action="store_true", help="shorter scenes, fewer noise kinds")
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    try:
        res = run(args.model, args.quick, log)
    except (ValueError, FileNotFoundError) as exc:
        print(f"vad: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=2) if args.json else table(res))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
