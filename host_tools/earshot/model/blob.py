"""Earshot model blobs: export from an int8 ``.tflite``, pack from layer dicts, describe.

The format is documented in ``firmware/core/es_model.h`` (the C parser is the reference;
``describe`` mirrors its checks in Python). In short: a 48-byte header, a table of 48-byte
layer records, 4-byte aligned int8 weights and int32 bias / multiplier / shift arrays, a
256-byte logistic table, and a CRC-32 (zlib.crc32) over bytes [12, total).

Requantization follows TFLite Micro's Prepare step exactly, so the C engine reproduces the
TFLM interpreter bit for bit:

* CONV_2D / DEPTHWISE_CONV_2D (``PopulateConvolutionQuantizationParams``, kernel_util.cc):
  per channel ``double(input_scale) * double(filter_scale[c]) / double(output_scale)``;
* FULLY_CONNECTED with one filter scale (``GetQuantizedConvolutionMultipler``):
  ``double(float(input_scale * filter_scale)) / double(output_scale)``;
* both through ``QuantizeMultiplier`` (quantization_util.cc): frexp, round half away from
  zero to Q31, shift clamped to [-31, 30];
* fused activations as ``CalculateActivationRangeQuantized``.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

MAGIC = b"ESMB"
VERSION = 2  # newest format read and written (es_model.h ES_BLOB_VERSION)
VERSION_NORM = 2  # first version with input_norm; a blob without it is written as 1
MAX_INPUT_NORM = 2  # ES_NORM_MINSTAT (1) or ES_NORM_MINSTAT_GATE (2)
HEADER_BYTES = 48
LAYER_BYTES = 48
CRC_START = 12
MAX_LAYERS = 24  # ES_MODEL_MAX_LAYERS
MAX_WINDOW = 32  # ES_MAX_WINDOW

# Frontend constants (earshot.h); every blob carries them and the parser checks them.
SAMPLE_RATE_HZ = 16000
WINDOW_SAMPLES = 480
HOP_SAMPLES = 160
MEL_BINS = 40

LAYER_TYPES = {"conv": 1, "depthwise": 2, "fc": 3}
LAYER_NAMES = {v: k for k, v in LAYER_TYPES.items()}

_HEADER = struct.Struct("<4sHHII I HHHHHH BBH II H BB")
_LAYER = struct.Struct("<BBBB HH hhhh II II II II")
assert _HEADER.size == HEADER_BYTES and _LAYER.size == LAYER_BYTES


# ---------------------------------------------------------------------------------------
# TFLite quantization helpers (the Prepare-time arithmetic of TFLite Micro).


def _round_half_away(x: float) -> int:
    """std::round: half away from zero (TfLiteRound)."""
    r = math.floor(abs(x))
    if abs(x) - r >= 0.5:
        r += 1
    return int(r if x >= 0 else -r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier(double)``: (multiplier Q31 int32, shift) with
    ``real ~= multiplier * 2**(shift - 31)``; multiplier in [2**30, 2**31) or 0."""
    if real == 0.0:
        return 0, 0
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"requantization scale must be finite and >= 0, got {real}")
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized`` for an int8 output."""

    def quant(x: float) -> int:
        return zero_point + _round_half_away(float(np.float32(x) / np.float32(scale)))

    if activation == "none":
        return -128, 127
    if activation == "relu":
        return max(-128, quant(0.0)), 127
    if activation == "relu6":
        return max(-128, quant(0.0)), min(127, quant(6.0))
    if activation == "relu_n1_to_1":
        return max(-128, quant(-1.0)), min(127, quant(1.0))
    raise ValueError(f"unsupported fused activation {activation!r}")


def logistic_table(scale: float, zero_point: int) -> bytes:
    """256 uint8: entry i = round(255 * sigmoid(scale * (q - zero_point))), q = i - 128."""
    q = np.arange(-128, 128, dtype=np.float64)
    p = 255.0 / (1.0 + np.exp(-float(scale) * (q - zero_point)))
    return bytes(np.floor(p + 0.5).astype(np.uint8))


# ---------------------------------------------------------------------------------------
# Packing.


def _receptive_field(layers: list[dict]) -> int:
    frames = 1
    for layer in reversed(layers):
        frames = (frames - 1) * layer["stride"] + layer["kernel"]
    return frames


def pack(
    layers: list[dict],
    *,
    logistic: bytes,
    cutoff: float,
    window: int,
    refractory: int,
    input_norm: int = 0,
) -> bytes:
    """Pack layer dicts into a blob (format version 1, or 2 when ``input_norm`` is set).

    Each layer dict: ``type`` ("conv", "depthwise", "fc"), ``kernel``, ``stride``,
    ``in_ch``, ``out_ch``, ``input_zp``, ``output_zp``, ``act_min``, ``act_max``,
    ``weights`` (int8; conv [out][kernel][in], depthwise [kernel][ch], fc [out][in], any
    shape with that many elements in that order), ``bias`` (int32 [out] or None),
    ``multiplier`` and ``shift`` (int32 [out]). ``cutoff``: default probability cutoff in
    (0, 1]; ``window``: outputs averaged, 1..32; ``refractory``: outputs ignored after a
    detection, 0..65535. ``input_norm``: 0 (the model takes the frontend's log-mel), 1
    (ES_NORM_MINSTAT: the detector runs es_norm, minimum statistics, first; earshot.h) or 2
    (ES_NORM_MINSTAT_GATE: the same with each bin's noise gate).
    ``input_frames`` and ``output_stride`` are derived from the layers.
    The C parser (es_model_parse) performs the full validation; this raises ValueError for
    arguments it cannot encode.
    """
    if not 0.0 < cutoff <= 1.0:
        raise ValueError(f"cutoff must be a probability in (0, 1], got {cutoff}")
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW} outputs, got {window}")
    if not 0 <= refractory <= 0xFFFF:
        raise ValueError(f"refractory must be 0..65535 outputs, got {refractory}")
    if not 0 <= input_norm <= MAX_INPUT_NORM:
        raise ValueError(f"input_norm must be 0..{MAX_INPUT_NORM}, got {input_norm}")
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"a blob holds 1..{MAX_LAYERS} layers, got {len(layers)}")
    if len(logistic) != 256:
        raise ValueError(f"logistic table must have 256 entries, got {len(logistic)}")

    layers_off = HEADER_BYTES
    data = bytearray()
    data_off = layers_off + LAYER_BYTES * len(layers)

    def put(arr: np.ndarray | None, dtype) -> tuple[int, int]:
        if arr is None:
            return 0, 0
        raw = np.ascontiguousarray(arr, dtype=dtype).tobytes()
        off = data_off + len(data)
        data.extend(raw)
        data.extend(b"\0" * (-len(data) % 4))
        return off, len(raw)

    records = bytearray()
    for i, layer in enumerate(layers):
        try:
            kind = LAYER_TYPES[layer["type"]]
        except KeyError:
            raise ValueError(f"layer {i}: unknown type {layer.get('type')!r}") from None
        w = put(np.asarray(layer["weights"]).reshape(-1), np.int8)
        b = put(None if layer.get("bias") is None else np.asarray(layer["bias"]), "<i4")
        m = put(np.asarray(layer["multiplier"]), "<i4")
        s = put(np.asarray(layer["shift"]), "<i4")
        records += _LAYER.pack(
            kind,
            layer["kernel"],
            layer["stride"],
            0,
            layer["in_ch"],
            layer["out_ch"],
            layer["input_zp"],
            layer["output_zp"],
            layer["act_min"],
            layer["act_max"],
            *w,
            *b,
            *m,
            *s,
        )
    logistic_off = data_off + len(data)
    total = logistic_off + 256
    stride = int(np.prod([layer["stride"] for layer in layers]))
    body = (
        _HEADER.pack(
            MAGIC,
            VERSION_NORM if input_norm else 1,
            HEADER_BYTES,
            0,
            total,
            SAMPLE_RATE_HZ,
            WINDOW_SAMPLES,
            HOP_SAMPLES,
            MEL_BINS,
            _receptive_field(layers),
            stride,
            len(layers),
            _round_half_away(cutoff * 255),
            window,
            refractory,
            layers_off,
            logistic_off,
            LAYER_BYTES,
            input_norm,
            0,
        )
        + records
        + data
        + bytes(logistic)
    )
    assert len(body) == total
    crc = zlib.crc32(body[CRC_START:])
    return body[:8] + struct.pack("<I", crc) + body[CRC_START:]


# ---------------------------------------------------------------------------------------
# Export from .tflite.


def _schema():
    """The TFLite flatbuffer schema module (from ai_edge_litert, tflite_micro or TF)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
        except ImportError:
            from tensorflow.lite.python import schema_py_generated as schema
    return schema


def from_tflite(
    tflite_bytes: bytes, *, cutoff: float, window: int, refractory: int, input_norm: int = 0
) -> bytes:
    """Convert a full-integer int8 ``.tflite`` (as made by ``arch.to_tflite_int8``) to a blob.

    Supported graph: one subgraph, a chain of CONV_2D (kernel (k, 1), stride (s, 1), VALID)
    / DEPTHWISE_CONV_2D (depth multiplier 1) / FULLY_CONNECTED (last) with per-channel or
    per-tensor int8 weights (zero point 0), int32 bias, fused NONE/RELU/RELU6/RELU_N1_TO_1,
    and RESHAPE ops that only flatten. The input must be int8 (1, T, 1, 40) with scale
    ``arch.FEATURE_INPUT_SCALE`` and zero point 0; the output one int8 logit.
    ``cutoff`` / ``window`` / ``refractory``: the posterior defaults, as in ``pack``.
    Raises ValueError naming any unsupported op, option, type or quantization.
    """
    from earshot.train.arch import FEATURE_INPUT_SCALE

    tflite_bytes = bytes(tflite_bytes)
    if len(tflite_bytes) < 8 or tflite_bytes[4:8] != b"TFL3":
        raise ValueError("not a .tflite flatbuffer (no TFL3 file identifier)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytes(tflite_bytes), 0))
    except Exception as exc:
        raise ValueError(f"not a .tflite flatbuffer: {exc}") from exc
    if model is None or not model.subgraphs or len(model.subgraphs) != 1:
        raise ValueError("the .tflite must have exactly one subgraph")
    graph = model.subgraphs[0]
    ops_by_code = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    act_names = {
        schema.ActivationFunctionType.NONE: "none",
        schema.ActivationFunctionType.RELU: "relu",
        schema.ActivationFunctionType.RELU6: "relu6",
        schema.ActivationFunctionType.RELU_N1_TO_1: "relu_n1_to_1",
    }

    def tensor(i):
        t = graph.tensors[i]
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        return t, name

    def qparams(i, what):
        t, name = tensor(i)
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise ValueError(f"{what} tensor {name!r} is not quantized")
        zp = [0] * len(q.scale) if q.zeroPoint is None else [int(z) for z in q.zeroPoint]
        return [float(s) for s in q.scale], zp, int(q.quantizedDimension or 0)

    def check_type(i, want, what):
        t, name = tensor(i)
        if t.type != want:
            raise ValueError(
                f"{what} tensor {name!r} is {type_names.get(t.type, t.type)}, "
                f"expected {type_names[want]}"
            )

    def const(i, dtype, what):
        t, name = tensor(i)
        buf = model.buffers[t.buffer]
        if buf is None or buf.data is None or len(buf.data) == 0:
            raise ValueError(f"{what} tensor {name!r} has no constant data")
        return np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=dtype).reshape(
            tuple(int(d) for d in t.shape)
        )

    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError("the model must have one input and one output")
    current = int(graph.inputs[0])
    check_type(current, schema.TensorType.INT8, "input")
    in_shape = tuple(int(d) for d in graph.tensors[current].shape)
    if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[2] != 1 or in_shape[3] != MEL_BINS:
        raise ValueError(f"input shape must be (1, T, 1, {MEL_BINS}), got {in_shape}")
    frames_in = in_shape[1]
    (scale,), (zp,), _ = qparams(current, "input")
    if np.float32(scale) != np.float32(FEATURE_INPUT_SCALE) or zp != 0:
        raise ValueError(
            f"input quantization (scale {scale}, zero point {zp}) is not "
            f"({FEATURE_INPUT_SCALE}, 0): the int8 features would not be the model input"
        )

    layers = []
    for n, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        opname = ops_by_code.get(builtin, str(builtin))
        inputs = [int(i) for i in op.inputs]
        out = int(op.outputs[0])
        if len(op.outputs) != 1 or inputs[0] != current:
            raise ValueError(f"op {n} ({opname}): the graph is not a single chain")
        if opname == "RESHAPE":
            in_s, out_s = graph.tensors[current].shape, graph.tensors[out].shape
            if int(np.prod(in_s)) != int(np.prod(out_s)) or int(np.prod(in_s[:-1])) != 1:
                raise ValueError(f"op {n} (RESHAPE): only a flatten of one time step is supported")
            if qparams(current, "reshape input")[:2] != qparams(out, "reshape output")[:2]:
                raise ValueError(f"op {n} (RESHAPE): changes the quantization")
            current = out
            continue
        if opname not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            raise ValueError(f"op {n}: unsupported operator {opname}")
        check_type(out, schema.TensorType.INT8, f"op {n} ({opname}) output")
        check_type(inputs[1], schema.TensorType.INT8, f"op {n} ({opname}) filter")
        opts = op.builtinOptions
        in_scales, in_zps, _ = qparams(current, f"op {n} input")
        out_scales, out_zps, _ = qparams(out, f"op {n} output")
        f_scales, f_zps, f_dim = qparams(inputs[1], f"op {n} filter")
        if any(z != 0 for z in f_zps):
            raise ValueError(f"op {n} ({opname}): filter zero points must be 0")
        activation = act_names.get(opts.fusedActivationFunction)
        if activation is None:
            raise ValueError(
                f"op {n} ({opname}): unsupported fused activation {opts.fusedActivationFunction}"
            )
        w = const(inputs[1], np.int8, f"op {n} filter")
        in_shape = tuple(int(d) for d in graph.tensors[current].shape)
        if opname == "FULLY_CONNECTED":
            out_ch, in_ch = w.shape
            kind, kernel, stride = "fc", 1, 1
            if int(np.prod(in_shape)) != in_ch:
                raise ValueError(f"op {n} (FULLY_CONNECTED): input is not one flattened row")
            weights = w
        else:
            if opts.padding != schema.Padding.VALID:
                raise ValueError(f"op {n} ({opname}): padding must be VALID")
            if opts.strideW != 1 or opts.dilationHFactor != 1 or opts.dilationWFactor != 1:
                raise ValueError(f"op {n} ({opname}): stride over width or dilation unsupported")
            if len(in_shape) != 4 or in_shape[2] != 1:
                raise ValueError(f"op {n} ({opname}): input must be (1, T, 1, C), got {in_shape}")
            kernel, stride = int(w.shape[1]), int(opts.strideH)
            if w.shape[2] != 1:
                raise ValueError(f"op {n} ({opname}): kernel width must be 1")
            if opname == "CONV_2D":
                kind, out_ch, in_ch = "conv", int(w.shape[0]), int(w.shape[3])
                weights = w  # OHWI = [out][kernel][1][in]
            else:
                kind = "depthwise"
                in_ch = out_ch = int(w.shape[3])
                if opts.depthMultiplier not in (0, 1) or in_shape[3] != out_ch:
                    raise ValueError(f"op {n} (DEPTHWISE_CONV_2D): depth multiplier must be 1")
                weights = w  # 1HWC = [kernel][ch]
        if len(f_scales) not in (1, out_ch):
            raise ValueError(
                f"op {n} ({opname}): {len(f_scales)} filter scales for {out_ch} channels"
            )
        per_channel = len(f_scales) > 1
        if per_channel and f_dim != (3 if kind == "depthwise" else 0):
            raise ValueError(f"op {n} ({opname}): per-channel scales on an unexpected axis")
        bias = None
        if len(inputs) > 2 and inputs[2] >= 0:
            check_type(inputs[2], schema.TensorType.INT32, f"op {n} ({opname}) bias")
            bias = const(inputs[2], "<i4", f"op {n} bias").reshape(-1)
        in_scale, out_scale = np.float32(in_scales[0]), np.float32(out_scales[0])
        mult, shift = [], []
        for c in range(out_ch):
            fs = np.float32(f_scales[c if per_channel else 0])
            if kind == "fc" and not per_channel:
                real = float(np.float32(in_scale * fs)) / float(out_scale)
            else:
                real = float(in_scale) * float(fs) / float(out_scale)
            m, s = quantize_multiplier(real)
            mult.append(m)
            shift.append(s)
        act_min, act_max = activation_range(activation, out_scale, out_zps[0])
        layers.append(
            {
                "type": kind,
                "kernel": kernel,
                "stride": stride,
                "in_ch": in_ch,
                "out_ch": out_ch,
                "input_zp": in_zps[0],
                "output_zp": out_zps[0],
                "act_min": act_min,
                "act_max": act_max,
                "weights": weights,
                "bias": bias,
                "multiplier": np.array(mult),
                "shift": np.array(shift),
            }
        )
        current = out
    if current != int(graph.outputs[0]):
        raise ValueError("the graph's output is not the end of the layer chain")
    if not layers:
        raise ValueError("the graph has no CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op")
    if layers[-1]["out_ch"] != 1:
        raise ValueError(f"the model must output one logit, got {layers[-1]['out_ch']}")
    frames = _receptive_field(layers)
    if frames != frames_in:
        raise ValueError(
            f"input has {frames_in} frames but the layers' receptive field "
            f"is {frames}: the last convolution must have time length 1"
        )
    (lscale,), (lzp,), _ = qparams(current, "output")
    return pack(
        layers,
        logistic=logistic_table(lscale, lzp),
        cutoff=cutoff,
        window=window,
        refractory=refractory,
        input_norm=input_norm,
    )


# ---------------------------------------------------------------------------------------
# Description (pure Python).


def describe(blob: bytes) -> dict:
    """Parse a blob in Python: header fields, ``layers`` (dicts as ``pack`` takes, with
    numpy arrays), ``logistic`` (uint8 [256]), ``macs_per_output``, ``weight_bytes``,
    ``total_bytes``. Raises ValueError naming the first problem found (bounds, CRC, sizes).
    """
    blob = bytes(blob)
    if len(blob) < HEADER_BYTES:
        raise ValueError("blob shorter than its header")
    (
        magic,
        version,
        header_bytes,
        crc,
        total,
        rate,
        win,
        hop,
        bins,
        frames,
        stride,
        n_layers,
        cutoff,
        window,
        refractory,
        layers_off,
        logistic_off,
        layer_bytes,
        input_norm,
        _,
    ) = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError("bad magic")
    if not 1 <= version <= VERSION:
        raise ValueError(f"unsupported format version {version}")
    if input_norm > MAX_INPUT_NORM or bool(input_norm) != (version >= VERSION_NORM):
        raise ValueError(f"input_norm {input_norm} invalid for format version {version}")
    if total > len(blob) or total < header_bytes:
        raise ValueError(f"blob truncated or bad total size ({total} bytes, have {len(blob)})")
    if zlib.crc32(blob[CRC_START:total]) != crc:
        raise ValueError("payload CRC mismatch")
    if layer_bytes < LAYER_BYTES or layers_off + n_layers * layer_bytes > total:
        raise ValueError("layer table out of bounds")
    if logistic_off + 256 > total:
        raise ValueError("logistic table out of bounds")

    def arr(off, size, dtype, what, i):
        if off + size > total or off % 4:
            raise ValueError(f"layer {i}: {what} out of bounds")
        return np.frombuffer(
            blob, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=off
        ).copy()

    layers, macs, weight_bytes, cum = [], 0, 0, 1
    for i in range(n_layers):
        (
            kind,
            kernel,
            lstride,
            _,
            in_ch,
            out_ch,
            in_zp,
            out_zp,
            amin,
            amax,
            w_off,
            w_size,
            b_off,
            b_size,
            m_off,
            m_size,
            s_off,
            s_size,
        ) = _LAYER.unpack_from(blob, layers_off + i * layer_bytes)
        if kind not in LAYER_NAMES:
            raise ValueError(f"layer {i}: unknown type {kind}")
        name = LAYER_NAMES[kind]
        layers.append(
            {
                "type": name,
                "kernel": kernel,
                "stride": lstride,
                "in_ch": in_ch,
                "out_ch": out_ch,
                "input_zp": in_zp,
                "output_zp": out_zp,
                "act_min": amin,
                "act_max": amax,
                "weights": arr(w_off, w_size, np.int8, "weights", i),
                "bias": arr(b_off, b_size, "<i4", "bias", i) if b_size else None,
                "multiplier": arr(m_off, m_size, "<i4", "multiplier", i),
                "shift": arr(s_off, s_size, "<i4", "shift", i),
            }
        )
        cum *= max(lstride, 1)
        per_run = kernel * in_ch * (1 if name == "depthwise" else out_ch)
        macs += per_run * (stride // cum if cum else 0)
        weight_bytes += w_size + b_size + m_size + s_size
    return {
        "format_version": version,
        "header_bytes": header_bytes,
        "total_bytes": total,
        "crc32": crc,
        "sample_rate_hz": rate,
        "window_samples": win,
        "hop_samples": hop,
        "mel_bins": bins,
        "input_frames": frames,
        "output_stride": stride,
        "n_layers": n_layers,
        "cutoff": cutoff,
        "window": window,
        "refractory": refractory,
        "input_norm": input_norm,
        "layers": layers,
        "logistic": np.frombuffer(blob, np.uint8, 256, logistic_off).copy(),
        "macs_per_output": macs,
        "weight_bytes": weight_bytes,
    }


# ---------------------------------------------------------------------------------------
# Synthetic models (tests, benchmarks, boards before a trained model exists).


def random_layers(cfg: dict | None = None, seed: int = 0) -> list[dict]:
    """Layer dicts (as ``pack`` takes) with seeded random int8 weights for an arch config.

    Requantization is calibrated on 32 random int8 input windows (float arithmetic) so that
    every layer's int8 output is spread over its range (std about 40, neither all clamped nor
    constant): a realistic workload for the kernels, without training. ``cfg``: an
    ``earshot.train.arch`` config (default DEFAULT_ARCH).
    """
    from earshot.train import arch

    cfg = arch.DEFAULT_ARCH if cfg is None else cfg
    rng = np.random.default_rng(seed)
    table = arch.layer_table(cfg)
    x = rng.integers(-128, 128, size=(32, arch.receptive_field(cfg), table[0]["in_ch"]))
    layers, in_zp = [], 0
    for i, spec in enumerate(table):
        out_ch, kind, k, s = spec["out_ch"], spec["type"], spec["kernel"], spec["stride"]
        last = i == len(table) - 1
        w_shape = {
            "conv": (out_ch, k, spec["in_ch"]),
            "depthwise": (k, out_ch),
            "fc": (out_ch, spec["in_ch"]),
        }[kind]
        w = rng.integers(-127, 128, size=w_shape).astype(np.int8)
        bias = rng.integers(-3000, 3000, size=out_ch).astype(np.int32)
        xi = (x - in_zp).astype(np.float64)
        wf = w.astype(np.float64)
        if kind == "fc":
            acc = (xi.reshape(len(xi), -1) @ wf.T)[:, None, :]
        else:
            n_out = (xi.shape[1] - k) // s + 1
            win = np.stack([xi[:, t * s : t * s + k] for t in range(n_out)], axis=1)
            acc = (
                np.einsum("bnki,oki->bno", win, wf)
                if kind == "conv"
                else np.einsum("bnkc,kc->bnc", win, wf)
            )
        acc = acc + bias
        spread = np.maximum(acc.reshape(-1, out_ch).std(axis=0), 1.0)
        scale = 40.0 / spread * rng.uniform(0.7, 1.3, size=out_ch)
        mult, shift = zip(*(quantize_multiplier(float(v)) for v in scale))
        out_zp = int(rng.integers(-20, 20)) if last else int(rng.integers(-128, -100))
        act_min = -128 if last else out_zp
        x = np.clip(np.round(acc * scale) + out_zp, act_min, 127)
        layers.append(
            dict(
                spec,
                input_zp=in_zp,
                output_zp=out_zp,
                act_min=act_min,
                act_max=127,
                weights=w,
                bias=bias,
                multiplier=np.array(mult, np.int32),
                shift=np.array(shift, np.int32),
            )
        )
        in_zp = out_zp
    return layers


def random_model(
    cfg: dict | None = None,
    seed: int = 0,
    *,
    cutoff: float = 0.9,
    window: int = 5,
    refractory: int = 10,
    input_norm: int = 0,
) -> bytes:
    """A blob with ``random_layers(cfg, seed)`` and the logistic table of scale 1/16, zero
    point 0 (``input_norm`` as in ``pack``). Its detections are meaningless; its cost and
    memory are the real ones."""
    return pack(
        random_layers(cfg, seed),
        logistic=logistic_table(1.0 / 16.0, 0),
        cutoff=cutoff,
        window=window,
        refractory=refractory,
        input_norm=input_norm,
    )
