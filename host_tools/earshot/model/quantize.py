"""Re-quantization of a model package: int8 or packed int4 weights per layer.

The float starting point is the package's own int8 ``.tflite``, dequantized
(:func:`float_layers`: weights ``q * scale`` per channel, biases ``q * in_scale * scale``);
activation scales and zero points are kept as the converter calibrated them. Packages written
by ``earshot train`` also keep the float network (``float.keras``,
:data:`earshot.train.packaging.FLOAT_CHECKPOINT`); the shipped models predate it, and the
dequantized int8 network is within one int8 step of it, which fine-tuning
(:mod:`earshot.model.qat`) then moves.

A layer quantized to 4 bits keeps TFLite's arithmetic: symmetric per-channel scales
``max |w| / 7``, weights in [-7, 7], an int32 bias at ``in_scale * scale``. In the ``.tflite``
(:func:`export`) its weights are stored as int8 holding those values (TFLite has no packed
int4 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights), so TFLite / TFLite Micro run the
same numbers; in the blob (:func:`mixed_blob`) they are packed two per byte
(``weight_bits`` 4, format 3), and the C engine's logits equal the int8 blob's of the same
``.tflite`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earshot.model import blob
from earshot.model.tflite import _Graph, _input, _layer, from_tflite

OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
QMAX = {8: 127, 4: 7}


@dataclass
class FloatLayer:
    """One layer of a .tflite chain in float: ``w`` in the .tflite's filter shape (conv OHWI,
    depthwise 1HWC, fc [out][in]) with its channel axis ``axis``, ``b`` float32 [out],
    the input / output quantization, the clamp, and the tensor indices to write back."""

    op: str
    kernel: int
    stride: int
    w: np.ndarray
    axis: int
    b: np.ndarray
    in_scale: float
    out_scale: float
    out_zp: int
    act_min: int
    act_max: int
    filter_tensor: int
    bias_tensor: int

    @property
    def name(self) -> str:
        if self.op == "FULLY_CONNECTED":
            return "fc"
        if self.op == "DEPTHWISE_CONV_2D":
            return "depthwise"
        return "pointwise" if self.kernel == 1 else "conv"


def float_layers(tflite_bytes: bytes) -> tuple[_Graph, list[FloatLayer]]:
    """The graph and its layers dequantized to float (see the module docstring). Raises
    ValueError for what :func:`earshot.model.tflite.from_tflite` refuses or a layer without
    bias."""
    g = _Graph(bytes(tflite_bytes))
    current, _ = _input(g)
    layers = []
    for n, op in enumerate(g.graph.operators):
        code = g.model.operatorCodes[op.opcodeIndex]
        opname = g.op_names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)))
        out = int(op.outputs[0])
        if opname in OPS:
            inputs = [int(i) for i in op.inputs]
            if len(inputs) < 3 or inputs[2] < 0:
                raise ValueError(f"op {n} ({opname}): no bias tensor to re-quantize")
            (in_s,), _, _ = g.qparams(current, "input")
            (out_s,), (out_zp,), _ = g.qparams(out, "output")
            f_scales, _, _ = g.qparams(inputs[1], "filter")
            wq = g.const(inputs[1], np.int8, "filter").astype(np.float32)
            axis = 3 if opname == "DEPTHWISE_CONV_2D" else 0
            shape = [1] * wq.ndim
            shape[axis] = -1
            fs = np.asarray(f_scales, np.float32)
            w = wq * (fs.reshape(shape) if len(fs) > 1 else fs[0])
            bq = g.const(inputs[2], "<i4", "bias").reshape(-1).astype(np.float64)
            b = (bq * np.float64(in_s) * fs.astype(np.float64)).astype(np.float32)
            lay = _layer(g, n, opname, op, current, out)
            layers.append(FloatLayer(opname, lay["kernel"], lay["stride"], w, axis, b,
                                     float(in_s), float(out_s), int(out_zp), lay["act_min"],
                                     lay["act_max"], inputs[1], inputs[2]))
        current = out
    return g, layers


def quantize_weights(layer: FloatLayer, w: np.ndarray, b: np.ndarray, bits: int):
    """(int8 weights in ``w``'s shape with values in [-QMAX, QMAX], float32 per-channel
    scales, int32 bias) of float ``w``, ``b`` at ``bits`` (8 or 4), symmetric per channel."""
    qmax = QMAX[bits]
    other = tuple(a for a in range(w.ndim) if a != layer.axis)
    amax = np.max(np.abs(w), axis=other).astype(np.float32)
    scale = np.maximum(amax / np.float32(qmax), np.float32(1e-9)).astype(np.float32)
    shape = [1] * w.ndim
    shape[layer.axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    bias_scale = np.float64(np.float32(layer.in_scale)) * scale.astype(np.float64)
    bq = np.clip(np.round(b.astype(np.float64) / bias_scale), -(1 << 30), 1 << 30)
    return q, scale, bq.astype(np.int32)


def export(tflite_bytes: bytes, layers: list[FloatLayer], bits: list[int],
           weights=None) -> bytes:
    """The int8 ``.tflite`` of ``layers`` (from :func:`float_layers` of ``tflite_bytes``;
    float ``weights``: a list of (w, b), default the layers' own) quantized per layer at
    ``bits``: filter and bias buffers and scales replaced, activations unchanged."""
    import flatbuffers

    g = _Graph(bytes(tflite_bytes))
    model = g.model
    for lay, nb, wb in zip(layers, bits, weights or [(lay.w, lay.b) for lay in layers]):
        q, scale, bq = quantize_weights(lay, *wb, nb)
        ft, bt = g.graph.tensors[lay.filter_tensor], g.graph.tensors[lay.bias_tensor]
        model.buffers[ft.buffer].data = np.frombuffer(q.tobytes(), np.uint8).copy()
        model.buffers[bt.buffer].data = np.frombuffer(bq.astype("<i4").tobytes(), np.uint8).copy()
        ft.quantization.scale = [float(s) for s in scale]
        ft.quantization.zeroPoint = [0] * len(scale)
        bias_scale = np.float32(lay.in_scale) * scale
        bt.quantization.scale = [float(s) for s in bias_scale]
        bt.quantization.zeroPoint = [0] * len(scale)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def mixed_blob(tflite: bytes, bits: list[int], *, cutoff: float, window: int, refractory: int,
               input_norm: int) -> bytes:
    """The blob of ``tflite`` (made by :func:`export` with ``bits``) with the layers at 4 bits
    packed int4. Raises ValueError if such a layer's weights leave [-8, 7]."""
    plain = from_tflite(tflite, cutoff=cutoff, window=window, refractory=refractory,
                        input_norm=input_norm)
    d = blob.describe(plain)
    if len(d["layers"]) != len(bits):
        raise ValueError(f"{len(bits)} widths for {len(d['layers'])} layers")
    layers = [dict(lay, weight_bits=blob.INT4 if nb == 4 else 8)
              for lay, nb in zip(d["layers"], bits)]
    return blob.pack(layers, logistic=bytes(d["logistic"]), cutoff=cutoff, window=window,
                     refractory=refractory, input_norm=input_norm)


def weight_bytes(layers: list[FloatLayer], bits: list[int]) -> int:
    """Bytes the layers' weights take in a blob at ``bits`` (4: packed, 4-byte aligned)."""
    total = 0
    for lay, nb in zip(layers, bits):
        n = lay.w.size if nb == 8 else (lay.w.size + 1) // 2
        total += n + (-n % 4)
    return total


# ---------------------------------------------------------------------------------------
# Measuring (the C engine, as the device runs it) and choosing widths.


def window_probs(model_blob: bytes, x: np.ndarray) -> np.ndarray:
    """uint8 probability of the last output of each int8 window ``x`` (n, frames, 40), each
    run from a reset engine (the C core, :class:`earshot.model.Engine`)."""
    from earshot.model import Engine, Model

    model = Model(model_blob)
    engine = Engine(model)
    table = blob.describe(model_blob)["logistic"]
    out = np.empty(len(x), np.uint8)
    for i, w in enumerate(x):
        engine.reset()
        _, logits = engine.run(w)
        out[i] = table[int(logits[-1]) + 128]
    return out


def accuracy(model_blob: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Balanced accuracy of ``model_blob`` on windows ``x`` with labels ``y`` at the blob's
    default cutoff: the mean of the positives' recall and the negatives' rejection."""
    cutoff = blob.describe(model_blob)["cutoff"]
    p = window_probs(model_blob, x)
    return 0.5 * (float(np.mean(p[y == 1] >= cutoff)) + float(np.mean(p[y == 0] < cutoff)))


def sensitivity(tflite: bytes, layers: list[FloatLayer], x, y, blob_kw: dict, log=print):
    """(all-int8 accuracy, rows): per layer, its ``name``, the blob bytes 4 bits save and the
    validation accuracy (:func:`accuracy`) and its ``drop`` when that layer alone goes to 4
    bits (post-training, no fine-tuning)."""
    n = len(layers)

    def acc(bits):
        return accuracy(mixed_blob(export(tflite, layers, bits), bits, **blob_kw), x, y)

    base = acc([8] * n)
    log(f"all int8: validation accuracy {base:.4f}")
    rows = []
    for i, lay in enumerate(layers):
        bits = [8] * n
        bits[i] = 4
        a = acc(bits)
        saved = weight_bytes(layers, [8] * n) - weight_bytes(layers, bits)
        rows.append({"layer": i, "name": lay.name, "weights": int(lay.w.size),
                     "bytes_saved": saved, "accuracy": round(a, 4), "drop": round(base - a, 4)})
        log(f"layer {i} ({lay.name}, {lay.w.size} weights) at 4 bits: accuracy {a:.4f} "
            f"(drop {base - a:+.4f}), {saved} B saved")
    return base, rows


def choose_bits(tflite: bytes, layers: list[FloatLayer], rows: list[dict], base: float, x, y,
                blob_kw: dict, max_drop: float, log=print) -> tuple[list[int], list[dict]]:
    """Widths by measured sensitivity: the layers whose drop alone is within ``max_drop``,
    least sensitive first (then most bytes saved), go to 4 bits one by one, each kept only
    while the accuracy of all chosen so far together stays within ``max_drop`` of ``base``
    (post-training). Depthwise layers stay int8: their taps are strided, so the int4 path
    widens each tap alone (measured on alexa: 1.205x the int8 model's instructions per hop
    with them at 4 bits), and they hold 5 % of its weights. Returns (widths, the steps tried:
    layer, accuracy, kept)."""
    bits = [8] * len(layers)
    steps = []
    for r in sorted(rows, key=lambda r: (r["drop"], -r["bytes_saved"])):
        if r["drop"] > max_drop or r["name"] == "depthwise":
            continue
        trial = list(bits)
        trial[r["layer"]] = 4
        a = accuracy(mixed_blob(export(tflite, layers, trial), trial, **blob_kw), x, y)
        keep = base - a <= max_drop
        steps.append({"layer": r["layer"], "accuracy": round(a, 4), "kept": keep})
        log(f"+ layer {r['layer']} ({r['name']}): together {a:.4f} "
            f"({'kept' if keep else 'back to 8 bits'})")
        if keep:
            bits = trial
    return bits, steps


def requantize(model_dir, out_dir, bits: str = "auto", qat_epochs: int = 2, *,
               max_drop: float = 0.005, max_pos: int = 600, max_neg_clips: int = 300,
               seed: int = 0, synth_dir=None, log=print) -> dict:
    """Re-quantize the package ``model_dir`` into ``out_dir`` (model.bin, model.tflite,
    manifest.json with a ``quantization`` record, README.md); returns the manifest.

    ``bits`` "8": every layer int8; "auto": a layer goes to packed int4 when its validation
    accuracy drops by at most ``max_drop`` with it alone at 4 bits (:func:`sensitivity`).
    Then ``qat_epochs`` epochs of quantization-aware fine-tuning (:mod:`earshot.model.qat`)
    on training windows (:mod:`earshot.model.quantdata`, ``max_pos`` positive and
    ``max_neg_clips`` negative clips per part). The detector defaults are the package's.
    Long because it is the verb's whole recipe, step by step, each logged.
    Raises ValueError for a bad package or ``bits``, FileNotFoundError without the data."""
    import json
    import time
    from pathlib import Path

    from earshot.model import package as modelpkg
    from earshot.model import qat, quantdata

    if bits not in ("8", "auto"):
        raise ValueError(f"--bits must be 8 or auto, got {bits!r}")
    t0 = time.monotonic()
    man, _ = modelpkg.load(model_dir)
    tflite = modelpkg.tflite_path(model_dir).read_bytes()
    _, layers = float_layers(tflite)
    kw = {"cutoff": float(man["cutoff"]), "window": int(man["window"]),
          "refractory": int(man["refractory"]), "input_norm": int(man.get("input_norm", 0))}
    frames = int(man["input_frames"])
    data = {"wake_word": man["wake_word"], "frames": frames, "input_norm": kw["input_norm"],
            "max_pos": max_pos, "max_neg_clips": max_neg_clips, "seed": seed,
            "synth_dir": synth_dir, "log": log}
    val = quantdata.windows(part="validation", **data)
    n = len(layers)
    record = {"source": str(model_dir), "bits": bits, "qat_epochs": int(qat_epochs),
              "float_start": "the source package's int8 .tflite, dequantized"}
    if bits == "auto":
        base, rows = sensitivity(tflite, layers, val.x, val.y, kw, log)
        widths, steps = choose_bits(tflite, layers, rows, base, val.x, val.y, kw, max_drop, log)
        record |= {"max_drop": max_drop, "validation_accuracy_int8": round(base, 4),
                   "sensitivity": rows, "selection": steps}
    else:
        widths = [8] * n
    log(f"widths: {widths}")
    weights = None
    if qat_epochs > 0:
        train = quantdata.windows(part="train", **data)
        # Targets: the source model's own probabilities (self-distillation). Fine-tuning on
        # the labels alone moved its calibration at the package's cutoff (measured: accuracy
        # 0.959 against 0.990 with these targets, same layers and epochs).
        source = modelpkg.load(model_dir)[1]
        targets = window_probs(source, train.x).astype(np.float32) / 255.0
        weights = qat.fine_tune(layers, widths, train.x, targets, qat_epochs, seed=seed,
                                log=log)
        record["qat_windows"] = len(train)
        record["qat_targets"] = "the source model's probabilities"
    new_tflite = export(tflite, layers, widths, weights)
    new_blob = mixed_blob(new_tflite, widths, **kw)
    record |= {"weight_bits": widths,
               "validation_accuracy": round(accuracy(new_blob, val.x, val.y), 4),
               "validation_windows": len(val), "seconds": round(time.monotonic() - t0, 1)}
    log(f"validation accuracy {record['validation_accuracy']:.4f}; blob {len(new_blob)} B")
    out = Path(out_dir)
    new_man = modelpkg.write(out, man["wake_word"], new_blob, new_tflite,
                             training=man.get("training"))
    new_man["quantization"] = record
    (out / modelpkg.MANIFEST).write_text(json.dumps(new_man, indent=2) + "\n")
    (out / "README.md").write_text(card(new_man, len(Path(model_dir, "model.bin").read_bytes())
                                        if Path(model_dir, "model.bin").is_file() else None))
    return new_man


def card(man: dict, source_bytes: int | None) -> str:
    """A short model card for a re-quantized package: what was done and measured."""
    q = man["quantization"]
    names = [r["name"] for r in q.get("sensitivity", [])]
    widths = ", ".join(f"{i} {names[i] if names else ''}: {b}".replace("  ", " ")
                       for i, b in enumerate(q["weight_bits"]))
    smaller = (f" ({100 * (1 - man['blob_bytes'] / source_bytes):.1f} % smaller than the "
               f"source's {source_bytes:,} B)" if source_bytes else "")
    return f"""# Model card: Earshot "{man['wake_word']}", re-quantized

Made by `earshot quantize --bits {q['bits']} --qat-epochs {q['qat_epochs']}` from
`{q['source']}` ({q['float_start']}; `earshot.model.quantize`).

| | |
|---|---|
| blob | {man['blob_bytes']:,} B{smaller}, format {3 if 4 in q['weight_bits'] else 2} |
| weight bits per layer | {widths} |
| validation accuracy (balanced, at the cutoff; {q['validation_windows']} windows) | \
{q['validation_accuracy']:.4f} |
| detector defaults | the source's: cutoff {man['cutoff']:.3f}, window {man['window']}, \
refractory {man['refractory']} |

`model.tflite` is int8: TFLite has no packed int4 weights for CONV_2D, DEPTHWISE_CONV_2D or
FULLY_CONNECTED, so the 4-bit layers are stored there as int8 holding values in [-7, 7] with
their 4-bit scales. TFLite / TFLite Micro run the same numbers as the blob; only the blob
packs them two per byte. Accuracy on the development split: `bench/precision.py`.
"""
