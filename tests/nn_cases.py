"""Shared helpers for the kernel tests: ctypes mirrors of es_nn.h, buffers with guard bytes
at chosen misalignments, builds of the core with either kernel variant (ES_NN_OPT 0/1, with
or without sanitizers), and single-op int8 ``.tflite`` models for the TFLM interpreter.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
from earshot.model import blob
from earshot.paths import FIRMWARE

CORE = FIRMWARE / "core"
TESTS_C = Path(__file__).parent / "c"
KINDS = ("conv", "depthwise", "pointwise", "fc")


class es_nn_params_t(ctypes.Structure):
    _fields_ = [
        ("in_len", ctypes.c_uint16),
        ("in_ch", ctypes.c_uint16),
        ("out_ch", ctypes.c_uint16),
        ("kernel", ctypes.c_uint8),
        ("stride", ctypes.c_uint8),
        ("weight_bits", ctypes.c_uint8),  # 0/8 int8, 4 packed int4
        ("input_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
        ("act_min", ctypes.c_int32),
        ("act_max", ctypes.c_int32),
    ]


class es_nn_quant_t(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_void_p), ("shift", ctypes.c_void_p)]


def core_sources() -> list[Path]:
    return sorted(CORE.glob("*.c"))


def build_core(
    out: Path,
    *,
    opt: bool,
    sanitize: bool = False,
    optimize: str = "-O2",
    shared: bool = True,
    extra: list | None = None,
) -> Path:
    """Compile the core (plus ``extra`` sources) with ES_NN_OPT = ``opt`` into ``out``: a
    shared library, or an executable when ``shared`` is False. ``sanitize`` adds
    -fsanitize=address,undefined -fno-sanitize-recover=all; ``optimize`` is the -O flag (-Os
    selects the size-optimised code paths the device build uses). Raises CalledProcessError."""
    cc = shutil.which("gcc") or shutil.which("cc")
    flags = ["-std=c99", optimize, "-g", "-Wall", "-Wextra", "-Werror", f"-DES_NN_OPT={int(opt)}"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    if shared:
        flags += ["-shared", "-fPIC"]
    cmd = [
        cc,
        *flags,
        f"-I{CORE}",
        "-o",
        str(out),
        *map(str, core_sources()),
        *map(str, extra or []),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out


def declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.es_nn_requantize.restype = ctypes.c_int32
    lib.es_nn_requantize.argtypes = [ctypes.c_int32] * 3
    lib.es_nn_out_len.restype = ctypes.c_size_t
    lib.es_nn_out_len.argtypes = [ctypes.c_size_t] * 3
    for name in ("es_nn_conv", "es_nn_depthwise", "es_nn_pointwise", "es_nn_fully_connected"):
        fn = getattr(lib, name)
        fn.restype = None
        fn.argtypes = [ctypes.POINTER(es_nn_params_t), ctypes.POINTER(es_nn_quant_t)] + [
            ctypes.c_void_p
        ] * 4
    return lib


class Placed:
    """An array copied into a larger byte buffer at a chosen misalignment, with guard bytes
    before and after it."""

    GUARD = 16

    def __init__(self, arr: np.ndarray, misalign: int):
        raw = np.ascontiguousarray(arr).tobytes()
        self.n = len(raw)
        self.buf = np.full(self.n + 2 * self.GUARD + 8, 0x5A, dtype=np.uint8)
        base = self.buf.ctypes.data
        self.start = (-base % 8) + self.GUARD + misalign
        self.buf[self.start : self.start + self.n] = np.frombuffer(raw, np.uint8)
        self.ptr = base + self.start

    def view(self, dtype) -> np.ndarray:
        return self.buf[self.start : self.start + self.n].view(dtype)

    def guards_intact(self) -> bool:
        return bool(
            np.all(self.buf[: self.start] == 0x5A)
            and np.all(self.buf[self.start + self.n :] == 0x5A)
        )


def run_kernel(lib, kind: str, layer: dict, x: np.ndarray, out_shape, misalign: int):
    """Run one es_nn kernel on ``x`` (int8 (in_len, in_ch)) with every int8 buffer at
    ``misalign`` bytes (shifted per buffer) and guard bytes around each. Returns the int8
    output; raises AssertionError if a guard or the input changed."""
    p = es_nn_params_t(
        in_len=x.shape[0],
        in_ch=layer["in_ch"],
        out_ch=layer["out_ch"],
        kernel=layer["kernel"],
        stride=layer["stride"],
        input_offset=-layer["input_zp"],
        output_offset=layer["output_zp"],
        act_min=layer["act_min"],
        act_max=layer["act_max"],
        weight_bits=int(layer.get("weight_bits", 8)),
    )
    mult = Placed(np.asarray(layer["multiplier"], np.int32), 0)
    shift = Placed(np.asarray(layer["shift"], np.int32), 0)
    q = es_nn_quant_t(mult.ptr, shift.ptr)
    inp = Placed(x, misalign)
    w = np.asarray(layer["weights"], np.int8)
    if int(layer.get("weight_bits", 8)) == blob.INT4:
        w = np.frombuffer(blob.pack_int4(w), np.int8)
    filt = Placed(w, (misalign + 2) % 4)
    bias = None if layer["bias"] is None else Placed(np.asarray(layer["bias"], np.int32), 0)
    out = Placed(np.zeros(out_shape, np.int8), (misalign + 1) % 4)
    fn = {
        "conv": lib.es_nn_conv,
        "depthwise": lib.es_nn_depthwise,
        "pointwise": lib.es_nn_pointwise,
        "fc": lib.es_nn_fully_connected,
    }[kind]
    fn(ctypes.byref(p), ctypes.byref(q), inp.ptr, filt.ptr, bias.ptr if bias else None, out.ptr)
    assert out.guards_intact(), f"{kind}: kernel wrote outside its output"
    assert np.array_equal(inp.view(np.int8).reshape(x.shape), x), f"{kind}: input changed"
    return out.view(np.int8).reshape(out_shape).copy()


# ---------------------------------------------------------------------------------------
# single-op .tflite models (TFLite schema object API), for the TFLM interpreter


def _tensor(schema, shape, ttype, buffer, name, scale=None, zp=None, qdim=0):
    t = schema.TensorT()
    t.shape, t.type, t.buffer, t.name = list(shape), ttype, buffer, name
    if scale is not None:
        q = schema.QuantizationParametersT()
        q.scale = [float(v) for v in scale]
        q.zeroPoint = [int(v) for v in zp]
        q.quantizedDimension = qdim
        t.quantization = q
    return t


def _buffer(schema, arr=None):
    b = schema.BufferT()
    if arr is not None:
        b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8)
    return b


def single_op_case(kind: str, shape: tuple, seed: int, relu: bool):
    """One int8 CONV_2D ("conv", "pointwise": kernel 1), DEPTHWISE_CONV_2D or
    FULLY_CONNECTED ("fc") as a .tflite, VALID padding, stride over time, random weights
    (per-channel scales except FC: per tensor), biases, zero points and input.

    ``shape`` = (in_len, in_ch, out_ch, kernel, stride). Returns (flatbuffer bytes, layer
    dict in blob.pack form with multipliers/shifts as TFLM derives them, int8 input
    (in_len, in_ch)). Quantization follows blob.from_tflite (QuantizeMultiplier of
    input_scale * filter_scale / output_scale in double).

    Long because it writes a whole .tflite flatbuffer (tensors, buffers, operator and
    quantisation tables) in the order the schema nests them.
    """
    import flatbuffers

    schema = blob._schema()
    rng = np.random.default_rng(seed)
    in_len, in_ch, out_ch, k, s = shape
    if kind == "pointwise":
        k = s = 1
    if kind == "fc":
        in_len = k = s = 1
    if kind == "depthwise":
        out_ch = in_ch
    per_channel = kind != "fc"
    n_scales = out_ch if per_channel else 1
    in_scale = np.float32(rng.uniform(0.01, 0.1))
    in_zp = int(rng.integers(-128, 128))
    f_scales = rng.uniform(0.004, 0.008, n_scales).astype(np.float32)
    taps = k * (1 if kind == "depthwise" else in_ch)
    # Outputs spread over the int8 range: |acc| is about sqrt(taps) * 74 * 74.
    out_scale = np.float32(in_scale * np.median(f_scales) * np.sqrt(taps) * 74 * 74 / 24)
    out_zp = int(rng.integers(-100, 100))
    w_shape = {
        "conv": (out_ch, k, 1, in_ch),
        "pointwise": (out_ch, 1, 1, in_ch),
        "depthwise": (1, k, 1, in_ch),
        "fc": (out_ch, in_ch),
    }[kind]
    w = rng.integers(-127, 128, size=w_shape).astype(np.int8)
    bias = rng.integers(-20000, 20000, out_ch).astype(np.int32)
    x = rng.integers(-128, 128, size=(in_len, in_ch)).astype(np.int8)
    out_len = (in_len - k) // s + 1
    b_scales = [np.float32(in_scale * f_scales[c if per_channel else 0]) for c in range(n_scales)]
    if kind == "fc":
        in_shape, out_shape = (1, in_ch), (1, out_ch)
    else:
        in_shape, out_shape = (1, in_len, 1, in_ch), (1, out_len, 1, out_ch)
    i8, i32 = schema.TensorType.INT8, schema.TensorType.INT32
    tensors = [
        _tensor(schema, in_shape, i8, 0, "input", [in_scale], [in_zp]),
        _tensor(
            schema,
            w_shape,
            i8,
            1,
            "filter",
            f_scales,
            [0] * n_scales,
            3 if kind == "depthwise" else 0,
        ),
        _tensor(schema, (out_ch,), i32, 2, "bias", b_scales, [0] * n_scales),
        _tensor(schema, out_shape, i8, 0, "output", [out_scale], [out_zp]),
    ]
    act = schema.ActivationFunctionType.RELU if relu else schema.ActivationFunctionType.NONE
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    code = schema.OperatorCodeT()
    if kind in ("conv", "pointwise", "depthwise"):
        dw = kind == "depthwise"
        code.builtinCode = (
            schema.BuiltinOperator.DEPTHWISE_CONV_2D if dw else schema.BuiltinOperator.CONV_2D
        )
        opts = schema.DepthwiseConv2DOptionsT() if dw else schema.Conv2DOptionsT()
        opts.padding, opts.strideW, opts.strideH = schema.Padding.VALID, 1, s
        opts.dilationWFactor = opts.dilationHFactor = 1
        if dw:
            opts.depthMultiplier = 1
        op.builtinOptionsType = (
            schema.BuiltinOptions.DepthwiseConv2DOptions
            if dw
            else schema.BuiltinOptions.Conv2DOptions
        )
    else:
        code.builtinCode = schema.BuiltinOperator.FULLY_CONNECTED
        opts = schema.FullyConnectedOptionsT()
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    opts.fusedActivationFunction = act
    op.builtinOptions = opts
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [3], [op]
    model = schema.ModelT()
    model.version, model.description = 3, "earshot single-op parity case"
    model.operatorCodes, model.subgraphs = [code], [graph]
    model.buffers = [_buffer(schema), _buffer(schema, w), _buffer(schema, bias)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")

    mult, shift = [], []
    for c in range(out_ch):
        fs = f_scales[c if per_channel else 0]
        if per_channel:
            real = float(in_scale) * float(fs) / float(out_scale)
        else:
            real = float(np.float32(in_scale * fs)) / float(out_scale)
        m, sh = blob.quantize_multiplier(real)
        mult.append(m)
        shift.append(sh)
    act_min, act_max = blob.activation_range("relu" if relu else "none", out_scale, out_zp)
    layer = {
        "type": kind,
        "kernel": k,
        "stride": s,
        "in_ch": in_ch,
        "out_ch": out_ch,
        "input_zp": in_zp,
        "output_zp": out_zp,
        "act_min": act_min,
        "act_max": act_max,
        # Kernel layouts: conv [out][kernel][in], depthwise [kernel][ch], FC [out][in].
        "weights": w.reshape(-1),
        "bias": bias,
        "multiplier": np.array(mult, np.int32),
        "shift": np.array(shift, np.int32),
    }
    return bytes(builder.Output()), layer, x


def tflm_run(flat: bytes, x: np.ndarray) -> np.ndarray:
    """Invoke the TFLM interpreter once on int8 ``x``; returns the int8 output (out_len,
    out_ch)."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(flat)
    interp.set_input(x.reshape(interp.get_input_details(0)["shape"]), 0)
    interp.invoke()
    out = interp.get_output(0)
    return out.reshape(-1, out.shape[-1])


def seeded_shapes(n: int, seed: int = 4) -> list[tuple]:
    """A seeded table of (in_len, in_ch, out_ch, kernel, stride): kernels 1..9 and strides
    1..3 each appear, channel counts mostly odd, some of them 1."""
    rng = np.random.default_rng(seed)
    shapes = []
    for i in range(n):
        k = 1 + i % 9
        s = 1 + (i // 9 + i) % 3
        in_ch = int(rng.choice([1, 3, 5, 7, 13, 31, 33, 40, 47]))
        out_ch = int(rng.choice([1, 3, 9, 11, 17, 31, 32, 63]))
        in_len = k + s * int(rng.integers(0, 6))
        shapes.append((in_len, in_ch, out_ch, k, s))
    return shapes
