"""Import of an int8 ``.tflite`` into an Earshot blob (:func:`from_tflite`).

Supported graph: one subgraph, a chain of CONV_2D (kernel (k, 1), stride (s, 1), VALID) /
DEPTHWISE_CONV_2D (depth multiplier 1) / FULLY_CONNECTED (last) with per-channel or per-tensor
int8 weights (zero point 0), int32 bias, fused NONE/RELU/RELU6/RELU_N1_TO_1, and RESHAPE ops
that only flatten, as ``earshot.train.arch.to_tflite_int8`` makes. Requantization follows
TFLite Micro's Prepare step (see :mod:`earshot.model.blob`), so the C engine reproduces the
TFLM interpreter bit for bit. The flatbuffer is read with the TFLite schema module of
ai_edge_litert, tflite_micro or TensorFlow, whichever is installed (:func:`schema`).
"""

from __future__ import annotations

import numpy as np

from earshot.core import MEL_BINS
from earshot.model.blob import activation_range, logistic_table, pack, quantize_multiplier
from earshot.train.arch import FEATURE_INPUT_SCALE


def schema():
    """The TFLite flatbuffer schema module (from ai_edge_litert, tflite_micro or TF)."""
    # Imported here: each is an optional package (the ``train`` extra), and TensorFlow's copy
    # is the last resort because importing TensorFlow takes seconds.
    try:
        from ai_edge_litert import schema_py_generated as sch
    except ImportError:
        try:
            from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as sch
        except ImportError:
            from tensorflow.lite.python import schema_py_generated as sch
    return sch


class _Graph:
    """One parsed .tflite subgraph with the lookups :func:`from_tflite` needs; every check
    raises ValueError naming the tensor."""

    def __init__(self, tflite_bytes: bytes):
        if len(tflite_bytes) < 8 or tflite_bytes[4:8] != b"TFL3":
            raise ValueError("not a .tflite flatbuffer (no TFL3 file identifier)")
        self.schema = sch = schema()
        try:
            self.model = sch.ModelT.InitFromObj(sch.Model.GetRootAsModel(tflite_bytes, 0))
        except Exception as exc:
            raise ValueError(f"not a .tflite flatbuffer: {exc}") from exc
        if self.model is None or not self.model.subgraphs or len(self.model.subgraphs) != 1:
            raise ValueError("the .tflite must have exactly one subgraph")
        self.graph = self.model.subgraphs[0]
        self.op_names = {v: k for k, v in vars(sch.BuiltinOperator).items()
                         if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(sch.TensorType).items() if not k.startswith("_")}
        act = sch.ActivationFunctionType
        self.act_names = {act.NONE: "none", act.RELU: "relu", act.RELU6: "relu6",
                          act.RELU_N1_TO_1: "relu_n1_to_1"}

    def tensor(self, i):
        """(tensor object, its name as str)."""
        t = self.graph.tensors[i]
        return t, t.name.decode() if isinstance(t.name, bytes) else str(t.name)

    def shape(self, i) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.tensors[i].shape)

    def qparams(self, i, what):
        """(scales, zero points, quantized dimension) of tensor ``i``."""
        t, name = self.tensor(i)
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            raise ValueError(f"{what} tensor {name!r} is not quantized")
        zp = [0] * len(q.scale) if q.zeroPoint is None else [int(z) for z in q.zeroPoint]
        return [float(s) for s in q.scale], zp, int(q.quantizedDimension or 0)

    def check_type(self, i, want, what) -> None:
        t, name = self.tensor(i)
        if t.type != want:
            raise ValueError(
                f"{what} tensor {name!r} is {self.type_names.get(t.type, t.type)}, "
                f"expected {self.type_names[want]}"
            )

    def const(self, i, dtype, what) -> np.ndarray:
        """The constant data of tensor ``i`` as ``dtype``, in its shape."""
        t, name = self.tensor(i)
        buf = self.model.buffers[t.buffer]
        if buf is None or buf.data is None or len(buf.data) == 0:
            raise ValueError(f"{what} tensor {name!r} has no constant data")
        return np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=dtype).reshape(
            self.shape(i)
        )


def _input(g: _Graph) -> tuple[int, int]:
    """(input tensor index, frames T) after checking the input: int8 (1, T, 1, MEL_BINS)
    with scale FEATURE_INPUT_SCALE and zero point 0, one input and one output."""
    if len(g.graph.inputs) != 1 or len(g.graph.outputs) != 1:
        raise ValueError("the model must have one input and one output")
    current = int(g.graph.inputs[0])
    g.check_type(current, g.schema.TensorType.INT8, "input")
    in_shape = g.shape(current)
    if len(in_shape) != 4 or in_shape[0] != 1 or in_shape[2] != 1 or in_shape[3] != MEL_BINS:
        raise ValueError(f"input shape must be (1, T, 1, {MEL_BINS}), got {in_shape}")
    (scale,), (zp,), _ = g.qparams(current, "input")
    if np.float32(scale) != np.float32(FEATURE_INPUT_SCALE) or zp != 0:
        raise ValueError(
            f"input quantization (scale {scale}, zero point {zp}) is not "
            f"({FEATURE_INPUT_SCALE}, 0): the int8 features would not be the model input"
        )
    return current, in_shape[1]


def _check_reshape(g: _Graph, n: int, current: int, out: int) -> None:
    """A RESHAPE may only flatten one time step and keep the quantization."""
    in_s, out_s = g.graph.tensors[current].shape, g.graph.tensors[out].shape
    if int(np.prod(in_s)) != int(np.prod(out_s)) or int(np.prod(in_s[:-1])) != 1:
        raise ValueError(f"op {n} (RESHAPE): only a flatten of one time step is supported")
    if g.qparams(current, "reshape input")[:2] != g.qparams(out, "reshape output")[:2]:
        raise ValueError(f"op {n} (RESHAPE): changes the quantization")


def _geometry(g: _Graph, n: int, opname: str, op, current: int, w: np.ndarray):
    """(kind, kernel, stride, in_ch, out_ch) of a conv, depthwise or fully connected op with
    int8 filter ``w``; its weights are stored as the blob wants them (conv OHWI =
    [out][kernel][1][in], depthwise 1HWC = [kernel][ch], fc [out][in])."""
    opts, in_shape = op.builtinOptions, g.shape(current)
    if opname == "FULLY_CONNECTED":
        out_ch, in_ch = w.shape
        if int(np.prod(in_shape)) != in_ch:
            raise ValueError(f"op {n} (FULLY_CONNECTED): input is not one flattened row")
        return "fc", 1, 1, in_ch, out_ch
    if opts.padding != g.schema.Padding.VALID:
        raise ValueError(f"op {n} ({opname}): padding must be VALID")
    if opts.strideW != 1 or opts.dilationHFactor != 1 or opts.dilationWFactor != 1:
        raise ValueError(f"op {n} ({opname}): stride over width or dilation unsupported")
    if len(in_shape) != 4 or in_shape[2] != 1:
        raise ValueError(f"op {n} ({opname}): input must be (1, T, 1, C), got {in_shape}")
    kernel, stride = int(w.shape[1]), int(opts.strideH)
    if w.shape[2] != 1:
        raise ValueError(f"op {n} ({opname}): kernel width must be 1")
    if opname == "CONV_2D":
        return "conv", kernel, stride, int(w.shape[3]), int(w.shape[0])
    ch = int(w.shape[3])
    if opts.depthMultiplier not in (0, 1) or in_shape[3] != ch:
        raise ValueError(f"op {n} (DEPTHWISE_CONV_2D): depth multiplier must be 1")
    return "depthwise", kernel, stride, ch, ch


def _requantization(kind: str, f_scales, in_scale, out_scale, out_ch: int):
    """Per output channel (multiplier Q31, shift) as TFLite Micro's Prepare computes them:
    ``double(in) * double(filter[c]) / double(out)`` for convolutions and per-channel fully
    connected, ``double(float(in * filter)) / double(out)`` for a per-tensor fully connected
    op (``GetQuantizedConvolutionMultipler``). Returns (multipliers, shifts) as int64
    arrays."""
    per_channel = len(f_scales) > 1
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
    return np.array(mult), np.array(shift)


def _layer(g: _Graph, n: int, opname: str, op, current: int, out: int) -> dict:
    """The blob layer dict (as :func:`earshot.model.blob.pack` takes it) of operator ``n``,
    which maps tensor ``current`` to ``out``."""
    inputs = [int(i) for i in op.inputs]
    g.check_type(out, g.schema.TensorType.INT8, f"op {n} ({opname}) output")
    g.check_type(inputs[1], g.schema.TensorType.INT8, f"op {n} ({opname}) filter")
    in_scales, in_zps, _ = g.qparams(current, f"op {n} input")
    out_scales, out_zps, _ = g.qparams(out, f"op {n} output")
    f_scales, f_zps, f_dim = g.qparams(inputs[1], f"op {n} filter")
    if any(z != 0 for z in f_zps):
        raise ValueError(f"op {n} ({opname}): filter zero points must be 0")
    activation = g.act_names.get(op.builtinOptions.fusedActivationFunction)
    if activation is None:
        raise ValueError(f"op {n} ({opname}): unsupported fused activation "
                         f"{op.builtinOptions.fusedActivationFunction}")
    w = g.const(inputs[1], np.int8, f"op {n} filter")
    kind, kernel, stride, in_ch, out_ch = _geometry(g, n, opname, op, current, w)
    if len(f_scales) not in (1, out_ch):
        raise ValueError(f"op {n} ({opname}): {len(f_scales)} filter scales for {out_ch} channels")
    if len(f_scales) > 1 and f_dim != (3 if kind == "depthwise" else 0):
        raise ValueError(f"op {n} ({opname}): per-channel scales on an unexpected axis")
    bias = None
    if len(inputs) > 2 and inputs[2] >= 0:
        g.check_type(inputs[2], g.schema.TensorType.INT32, f"op {n} ({opname}) bias")
        bias = g.const(inputs[2], "<i4", f"op {n} bias").reshape(-1)
    out_scale = np.float32(out_scales[0])
    mult, shift = _requantization(kind, f_scales, np.float32(in_scales[0]), out_scale, out_ch)
    act_min, act_max = activation_range(activation, out_scale, out_zps[0])
    return {"type": kind, "kernel": kernel, "stride": stride, "in_ch": in_ch, "out_ch": out_ch,
            "input_zp": in_zps[0], "output_zp": out_zps[0], "act_min": act_min,
            "act_max": act_max, "weights": w, "bias": bias, "multiplier": mult, "shift": shift}


def _layers(g: _Graph, current: int) -> tuple[list[dict], int]:
    """Walk the operator chain from the input tensor ``current``: (layer dicts, the last
    tensor). Raises ValueError for a branch or an unsupported operator."""
    layers = []
    for n, op in enumerate(g.graph.operators):
        code = g.model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        opname = g.op_names.get(builtin, str(builtin))
        out = int(op.outputs[0])
        if len(op.outputs) != 1 or int(op.inputs[0]) != current:
            raise ValueError(f"op {n} ({opname}): the graph is not a single chain")
        if opname == "RESHAPE":
            _check_reshape(g, n, current, out)
        elif opname in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            layers.append(_layer(g, n, opname, op, current, out))
        else:
            raise ValueError(f"op {n}: unsupported operator {opname}")
        current = out
    return layers, current


def from_tflite(
    tflite_bytes: bytes, *, cutoff: float, window: int, refractory: int, input_norm: int = 0
) -> bytes:
    """Convert a full-integer int8 ``.tflite`` (as made by ``arch.to_tflite_int8``) to a blob.

    The graph must be as the module docstring says; the input int8 (1, T, 1, 40) with scale
    ``arch.FEATURE_INPUT_SCALE`` and zero point 0, the output one int8 logit, T the layers'
    receptive field. ``cutoff`` / ``window`` / ``refractory`` / ``input_norm``: the posterior
    defaults and input normalisation, as in :func:`earshot.model.blob.pack`. Raises
    ValueError naming any unsupported op, option, type or quantization.
    """
    g = _Graph(bytes(tflite_bytes))
    current, frames_in = _input(g)
    layers, current = _layers(g, current)
    if current != int(g.graph.outputs[0]):
        raise ValueError("the graph's output is not the end of the layer chain")
    if not layers:
        raise ValueError("the graph has no CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op")
    if layers[-1]["out_ch"] != 1:
        raise ValueError(f"the model must output one logit, got {layers[-1]['out_ch']}")
    frames = 1
    for layer in reversed(layers):
        frames = (frames - 1) * layer["stride"] + layer["kernel"]
    if frames != frames_in:
        raise ValueError(
            f"input has {frames_in} frames but the layers' receptive field "
            f"is {frames}: the last convolution must have time length 1"
        )
    (lscale,), (lzp,), _ = g.qparams(current, "output")
    return pack(layers, logistic=logistic_table(lscale, lzp), cutoff=cutoff, window=window,
                refractory=refractory, input_norm=input_norm)
