"""Earshot model blobs: the format, pack from layer dicts, describe, synthetic models.

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

The import of an int8 ``.tflite`` is :func:`earshot.model.tflite.from_tflite`.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from earshot import core
from earshot.train import arch

MAGIC = b"ESMB"
VERSION = 3  # newest format read and written (es_model.h ES_BLOB_VERSION)
VERSION_NORM = 2  # first version with input_norm; a blob without it is written as 1
VERSION_INT4 = 3  # first version with packed int4 weights (ES_BLOB_VERSION_INT4)
INT4 = 4  # a layer's weight_bits for packed int4 (es_nn.h ES_NN_INT4)
MAX_INPUT_NORM = 2  # ES_NORM_MINSTAT (1) or ES_NORM_MINSTAT_GATE (2)
HEADER_BYTES = 48
LAYER_BYTES = 48
CRC_START = 12
MAX_LAYERS = 24  # ES_MODEL_MAX_LAYERS
MAX_WINDOW = core.MAX_WINDOW  # ES_MAX_WINDOW

# Frontend constants (earshot.h); every blob carries them and the parser checks them.
SAMPLE_RATE_HZ = core.SAMPLE_RATE_HZ
WINDOW_SAMPLES = core.WINDOW_SAMPLES
HOP_SAMPLES = core.HOP_SAMPLES
MEL_BINS = core.MEL_BINS

LAYER_TYPES = {"conv": 1, "depthwise": 2, "fc": 3}
LAYER_NAMES = {v: k for k, v in LAYER_TYPES.items()}

_HEADER = struct.Struct("<4sHHII I HHHHHH BBH II H BB")
_LAYER = struct.Struct("<BBBB HH hhhh II II II II")
assert _HEADER.size == HEADER_BYTES and _LAYER.size == LAYER_BYTES
#: Field names of a header and a layer record, in their struct order.
_HEADER_FIELDS = ("magic", "version", "header_bytes", "crc", "total", "rate", "win", "hop",
                  "bins", "frames", "stride", "n_layers", "cutoff", "window", "refractory",
                  "layers_off", "logistic_off", "layer_bytes", "input_norm", "reserved")
_LAYER_FIELDS = ("kind", "kernel", "stride", "weight_bits", "in_ch", "out_ch", "input_zp",
                 "output_zp", "act_min", "act_max", "w_off", "w_size", "b_off", "b_size",
                 "m_off", "m_size", "s_off", "s_size")

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
# Packed int4 weights (es_nn.h): element e is the low nibble of byte e // 2 when e is even,
# the high nibble when odd, two's complement in [-8, 7].


def pack_int4(values) -> bytes:
    """Pack int values in [-8, 7] two per byte (low nibble first); ValueError outside."""
    v = np.asarray(values).reshape(-1).astype(np.int64)
    if v.size and (v.min() < -8 or v.max() > 7):
        raise ValueError(f"int4 weights must lie in [-8, 7], got [{v.min()}, {v.max()}]")
    u = (v & 15).astype(np.uint8)
    if len(u) % 2:
        u = np.append(u, np.uint8(0))
    return bytes(u[0::2] | (u[1::2] << 4))


def unpack_int4(raw: bytes, n: int) -> np.ndarray:
    """The first ``n`` int4 elements of ``raw`` widened to int8 (es_nn_unpack_int4)."""
    b = np.frombuffer(bytes(raw), np.uint8)
    u = np.empty(2 * len(b), np.uint8)
    u[0::2], u[1::2] = b & 15, b >> 4
    return ((u[:n].astype(np.int16) ^ 8) - 8).astype(np.int8)


# ---------------------------------------------------------------------------------------
# Packing.


def input_frames(layers: list[dict]) -> int:
    """Input frames T (hops) of a layer chain: the receptive field, walked back from one
    output row, ``(L - 1) * stride + kernel`` per layer ('valid' convolutions)."""
    frames = 1
    for layer in reversed(layers):
        frames = (frames - 1) * layer["stride"] + layer["kernel"]
    return frames


def _check_pack_args(n_layers: int, logistic: bytes, cutoff: float, window: int,
                     refractory: int, input_norm: int) -> None:
    """ValueError for an argument of :func:`pack` the format cannot encode."""
    if not 0.0 < cutoff <= 1.0:
        raise ValueError(f"cutoff must be a probability in (0, 1], got {cutoff}")
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window must be 1..{MAX_WINDOW} outputs, got {window}")
    if not 0 <= refractory <= 0xFFFF:
        raise ValueError(f"refractory must be 0..65535 outputs, got {refractory}")
    if not 0 <= input_norm <= MAX_INPUT_NORM:
        raise ValueError(f"input_norm must be 0..{MAX_INPUT_NORM}, got {input_norm}")
    if not 1 <= n_layers <= MAX_LAYERS:
        raise ValueError(f"a blob holds 1..{MAX_LAYERS} layers, got {n_layers}")
    if len(logistic) != 256:
        raise ValueError(f"logistic table must have 256 entries, got {len(logistic)}")


def _layer_records(layers: list[dict], data_off: int) -> tuple[bytearray, bytearray]:
    """(layer table, data): one 48-byte record per layer and its arrays (int8 weights, int32
    bias, multiplier, shift), each 4-byte aligned, the data starting at byte ``data_off``."""
    data = bytearray()

    def put(arr: np.ndarray | None, dtype) -> tuple[int, int]:
        if arr is None:
            return 0, 0
        raw = pack_int4(arr) if dtype == INT4 else np.ascontiguousarray(arr, dtype=dtype).tobytes()
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
        bits = int(layer.get("weight_bits", 8))
        if bits not in (8, INT4):
            raise ValueError(f"layer {i}: weight_bits must be 8 or 4, got {bits}")
        w = put(np.asarray(layer["weights"]).reshape(-1), INT4 if bits == INT4 else np.int8)
        b = put(None if layer.get("bias") is None else np.asarray(layer["bias"]), "<i4")
        m = put(np.asarray(layer["multiplier"]), "<i4")
        s = put(np.asarray(layer["shift"]), "<i4")
        records += _LAYER.pack(kind, layer["kernel"], layer["stride"],
                               0 if bits == 8 else bits, layer["in_ch"],
                               layer["out_ch"], layer["input_zp"], layer["output_zp"],
                               layer["act_min"], layer["act_max"], *w, *b, *m, *s)
    return records, data


def pack(
    layers: list[dict],
    *,
    logistic: bytes,
    cutoff: float,
    window: int,
    refractory: int,
    input_norm: int = 0,
) -> bytes:
    """Pack layer dicts into a blob (format version 1; 2 when ``input_norm`` is set; 3 when a
    layer has ``weight_bits`` 4).

    Each layer dict: ``type`` ("conv", "depthwise", "fc"), ``kernel``, ``stride``,
    ``in_ch``, ``out_ch``, ``input_zp``, ``output_zp``, ``act_min``, ``act_max``,
    ``weights`` (int8; conv [out][kernel][in], depthwise [kernel][ch], fc [out][in], any
    shape with that many elements in that order), optional ``weight_bits`` (8, default, or
    4: the weights, values in [-8, 7], are stored packed int4),
    ``bias`` (int32 [out] or None),
    ``multiplier`` and ``shift`` (int32 [out]). ``cutoff``: default probability cutoff in
    (0, 1]; ``window``: outputs averaged, 1..32; ``refractory``: outputs ignored after a
    detection, 0..65535. ``input_norm``: 0 (the model takes the frontend's log-mel), 1
    (ES_NORM_MINSTAT: the detector runs es_norm, minimum statistics, first; earshot.h) or 2
    (ES_NORM_MINSTAT_GATE: the same with each bin's noise gate).
    ``input_frames`` and ``output_stride`` are derived from the layers.
    The C parser (es_model_parse) performs the full validation; this raises ValueError for
    arguments it cannot encode.
    """
    _check_pack_args(len(layers), logistic, cutoff, window, refractory, input_norm)
    data_off = HEADER_BYTES + LAYER_BYTES * len(layers)
    records, data = _layer_records(layers, data_off)
    int4 = any(int(layer.get("weight_bits", 8)) == INT4 for layer in layers)
    version = VERSION_INT4 if int4 else VERSION_NORM if input_norm else 1
    logistic_off = data_off + len(data)
    total = logistic_off + 256
    stride = int(np.prod([layer["stride"] for layer in layers]))
    header = _HEADER.pack(
        MAGIC, version, HEADER_BYTES, 0, total,
        SAMPLE_RATE_HZ, WINDOW_SAMPLES, HOP_SAMPLES, MEL_BINS,
        input_frames(layers), stride, len(layers),
        _round_half_away(cutoff * 255), window, refractory,
        HEADER_BYTES, logistic_off, LAYER_BYTES, input_norm, 0,
    )  # fmt: skip
    body = header + records + data + bytes(logistic)
    assert len(body) == total
    crc = zlib.crc32(body[CRC_START:])
    return body[:8] + struct.pack("<I", crc) + body[CRC_START:]


# ---------------------------------------------------------------------------------------
# Description (pure Python).


def _parse_header(blob: bytes) -> dict:
    """The header fields (_HEADER_FIELDS) of ``blob``, checked as es_model_parse checks them
    before the layers: magic, version, input_norm, total size, CRC, table bounds. Raises
    ValueError naming the first problem."""
    if len(blob) < HEADER_BYTES:
        raise ValueError("blob shorter than its header")
    h = dict(zip(_HEADER_FIELDS, _HEADER.unpack_from(blob)))
    version, input_norm, total = h["version"], h["input_norm"], h["total"]
    if h["magic"] != MAGIC:
        raise ValueError("bad magic")
    if not 1 <= version <= VERSION:
        raise ValueError(f"unsupported format version {version}")
    if input_norm > MAX_INPUT_NORM or (
            version < VERSION_INT4 and bool(input_norm) != (version >= VERSION_NORM)):
        raise ValueError(f"input_norm {input_norm} invalid for format version {version}")
    if total > len(blob) or total < h["header_bytes"]:
        raise ValueError(f"blob truncated or bad total size ({total} bytes, have {len(blob)})")
    if zlib.crc32(blob[CRC_START:total]) != h["crc"]:
        raise ValueError("payload CRC mismatch")
    table_end = h["layers_off"] + h["n_layers"] * h["layer_bytes"]
    if h["layer_bytes"] < LAYER_BYTES or table_end > total:
        raise ValueError("layer table out of bounds")
    if h["logistic_off"] + 256 > total:
        raise ValueError("logistic table out of bounds")
    return h


def _parse_layer(blob: bytes, h: dict, i: int) -> tuple[dict, int]:
    """Layer ``i`` of ``blob`` (header ``h``) as a dict as :func:`pack` takes it (arrays
    copied out of the blob), and the bytes its arrays take. Raises ValueError for an unknown
    type or an array out of bounds or misaligned."""
    r = dict(zip(_LAYER_FIELDS, _LAYER.unpack_from(blob, h["layers_off"] + i * h["layer_bytes"])))
    if r["kind"] not in LAYER_NAMES:
        raise ValueError(f"layer {i}: unknown type {r['kind']}")

    def arr(what, dtype):
        off, size = r[f"{what[0]}_off"], r[f"{what[0]}_size"]
        if off + size > h["total"] or off % 4:
            raise ValueError(f"layer {i}: {what} out of bounds")
        return np.frombuffer(
            blob, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=off
        ).copy()

    layer = {key: r[key] for key in ("kernel", "stride", "in_ch", "out_ch", "input_zp",
                                     "output_zp", "act_min", "act_max")}
    bits = r["weight_bits"] or 8 if h["version"] >= VERSION_INT4 else 8
    if bits not in (8, INT4):
        raise ValueError(f"layer {i}: weight_bits not 8 or 4")
    if bits == INT4:
        off, size = r["w_off"], r["w_size"]
        if off + size > h["total"] or off % 4:
            raise ValueError(f"layer {i}: weights out of bounds")
        weights = unpack_int4(blob[off:off + size],
                              min(r["kernel"] * r["in_ch"] * r["out_ch"], 2 * size))
    else:
        weights = arr("weights", np.int8)
    layer = {"type": LAYER_NAMES[r["kind"]], **layer, "weight_bits": bits, "weights": weights,
             "bias": arr("bias", "<i4") if r["b_size"] else None,
             "multiplier": arr("multiplier", "<i4"), "shift": arr("shift", "<i4")}
    return layer, r["w_size"] + r["b_size"] + r["m_size"] + r["s_size"]


def describe(blob: bytes) -> dict:
    """Parse a blob in Python: header fields, ``layers`` (dicts as ``pack`` takes, with
    numpy arrays), ``logistic`` (uint8 [256]), ``macs_per_output``, ``weight_bytes``,
    ``total_bytes``. Raises ValueError naming the first problem found (bounds, CRC, sizes).
    """
    blob = bytes(blob)
    h = _parse_header(blob)
    layers, macs, weight_bytes, cum = [], 0, 0, 1
    for i in range(h["n_layers"]):
        layer, nbytes = _parse_layer(blob, h, i)
        layers.append(layer)
        cum *= max(layer["stride"], 1)
        per_run = layer["kernel"] * layer["in_ch"] * (
            1 if layer["type"] == "depthwise" else layer["out_ch"])
        macs += per_run * (h["stride"] // cum if cum else 0)
        weight_bytes += nbytes
    return {
        "format_version": h["version"],
        "header_bytes": h["header_bytes"],
        "total_bytes": h["total"],
        "crc32": h["crc"],
        "sample_rate_hz": h["rate"],
        "window_samples": h["win"],
        "hop_samples": h["hop"],
        "mel_bins": h["bins"],
        "input_frames": h["frames"],
        "output_stride": h["stride"],
        "n_layers": h["n_layers"],
        "cutoff": h["cutoff"],
        "window": h["window"],
        "refractory": h["refractory"],
        "input_norm": h["input_norm"],
        "layers": layers,
        "logistic": np.frombuffer(blob, np.uint8, 256, h["logistic_off"]).copy(),
        "macs_per_output": macs,
        "weight_bytes": weight_bytes,
    }


# ---------------------------------------------------------------------------------------
# Synthetic models (tests, benchmarks, boards before a trained model exists).


def _float_accumulators(xi: np.ndarray, w: np.ndarray, kind: str, k: int, s: int) -> np.ndarray:
    """A layer's accumulators in float64 (bias excluded) on inputs ``xi`` (batch, L, in_ch)
    less their zero point: (batch, L_out, out_ch), 'valid' over time with kernel ``k`` and
    stride ``s``; an fc layer flattens its input and gives L_out = 1."""
    wf = w.astype(np.float64)
    if kind == "fc":
        return (xi.reshape(len(xi), -1) @ wf.T)[:, None, :]
    n_out = (xi.shape[1] - k) // s + 1
    win = np.stack([xi[:, t * s : t * s + k] for t in range(n_out)], axis=1)
    if kind == "conv":
        return np.einsum("bnki,oki->bno", win, wf)
    return np.einsum("bnkc,kc->bnc", win, wf)


def random_layers(cfg: dict | None = None, seed: int = 0) -> list[dict]:
    """Layer dicts (as ``pack`` takes) with seeded random int8 weights for an arch config.

    Requantization is calibrated on 32 random int8 input windows (float arithmetic) so that
    every layer's int8 output is spread over its range (std about 40, neither all clamped nor
    constant): a realistic workload for the kernels, without training. ``cfg``: an
    ``earshot.train.arch`` config (default DEFAULT_ARCH).
    """
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
        acc = _float_accumulators((x - in_zp).astype(np.float64), w, kind, k, s) + bias
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


def __getattr__(name: str):
    """``blob.from_tflite`` and ``blob._schema``: moved to :mod:`earshot.model.tflite`
    (``from_tflite``, ``schema``), still found here for code written before the move."""
    if name in ("from_tflite", "_schema"):
        from earshot.model import tflite  # here, not at the top: tflite imports this module

        return tflite.from_tflite if name == "from_tflite" else tflite.schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
