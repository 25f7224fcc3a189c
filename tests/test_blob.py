"""Model blobs: pack / describe round trip, the C parser's validation (specific reasons for
specific corruptions), fuzzing with truncation and bit flips (never a crash, always a
ValueError or a valid model), and from_tflite's (earshot.model.tflite) refusal of unsupported graphs."""

import struct
import zlib

import numpy as np
import pytest
from earshot.model import Engine, Model, blob
from earshot.model.tflite import from_tflite
from earshot.train import arch


@pytest.fixture(scope="module")
def good():
    return blob.random_model(seed=5, cutoff=0.8, window=7, refractory=12)


def _recrc(b: bytes) -> bytes:
    """Fix the CRC so that corruption reaches the structural checks behind it."""
    return b[:8] + struct.pack("<I", zlib.crc32(b[blob.CRC_START :])) + b[blob.CRC_START :]


def _patch(b: bytes, off: int, fmt: str, value) -> bytes:
    out = bytearray(b)
    struct.pack_into(fmt, out, off, value)
    return _recrc(bytes(out))


def test_describe_round_trip(good):
    d = blob.describe(good)
    layers = blob.random_layers(seed=5)
    assert d["total_bytes"] == len(good)
    assert d["input_frames"] == arch.receptive_field(arch.DEFAULT_ARCH)
    assert d["output_stride"] == arch.output_stride(arch.DEFAULT_ARCH)
    assert (d["cutoff"], d["window"], d["refractory"]) == (round(0.8 * 255), 7, 12)
    assert d["macs_per_output"] == arch.macs_per_output(arch.DEFAULT_ARCH)
    assert len(d["layers"]) == len(layers)
    for got, want in zip(d["layers"], layers):
        for key in ("type", "kernel", "stride", "in_ch", "out_ch", "input_zp", "output_zp"):
            assert got[key] == want[key]
        np.testing.assert_array_equal(got["weights"], np.asarray(want["weights"]).reshape(-1))
        np.testing.assert_array_equal(got["multiplier"], want["multiplier"])
        np.testing.assert_array_equal(got["shift"], want["shift"])
    np.testing.assert_array_equal(
        d["logistic"], np.frombuffer(blob.logistic_table(1 / 16, 0), np.uint8)
    )


def test_model_info(good):
    m = Model(good)
    d = blob.describe(good)
    info = m.info
    assert info["format_version"] == 1
    assert info["n_layers"] == d["n_layers"]
    assert info["input_bins"] == 40
    assert (info["input_frames"], info["output_stride"]) == (d["input_frames"], d["output_stride"])
    assert (info["cutoff"], info["window"], info["refractory"]) == (204, 7, 12)
    assert info["macs_per_output"] == d["macs_per_output"]
    assert info["payload_bytes"] == len(good) - blob.HEADER_BYTES
    assert 0 < info["engine_bytes"] <= 12 * 1024
    # The logistic table maps logits to probabilities: 0 -> 128 (sigmoid(0) = 0.5).
    assert m.probability(0) == 128 and m.probability(-128) < m.probability(127)
    with pytest.raises(ValueError, match="int8"):
        m.probability(200)


def test_logistic_table_and_quantize_multiplier():
    t = np.frombuffer(blob.logistic_table(0.05, -10), np.uint8)
    q = np.arange(-128, 128)
    np.testing.assert_array_equal(t, np.floor(255 / (1 + np.exp(-0.05 * (q + 10))) + 0.5))
    assert np.all(np.diff(t.astype(int)) >= 0)
    # QuantizeMultiplier: real = m * 2^(shift - 31), m in [2^30, 2^31).
    for real in (1e-6, 0.0123, 0.5, 0.75, 0.999999999, 1.7, 3.0):
        m, s = blob.quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= 2.0 ** (s - 32)
    assert blob.quantize_multiplier(0.0) == (0, 0)
    assert blob.quantize_multiplier(1.0) == (1 << 30, 1)
    assert blob.quantize_multiplier(2.0**-40) == (0, 0)  # shift below -31 flushes to 0
    with pytest.raises(ValueError):
        blob.quantize_multiplier(-1.0)


# (description, corruption, reason expected in the ValueError)
LAYER0 = blob.HEADER_BYTES


def _cases(good):
    return [
        ("empty", b"", "shorter than its header"),
        ("magic", b"XSMB" + good[4:], "bad magic"),
        ("version", _patch(good, 4, "<H", 2), "format version"),
        ("crc", good[:-1] + bytes([good[-1] ^ 1]), "CRC mismatch"),
        ("truncated", good[:-4], "truncated"),
        ("rate", _patch(good, 16, "<I", 8000), "sample rate"),
        ("bins", _patch(good, 24, "<H", 32), "mel bins"),
        ("frames", _patch(good, 26, "<H", 92), "input_frames"),
        ("stride", _patch(good, 28, "<H", 3), "output_stride"),
        ("n_layers", _patch(good, 30, "<H", 0), "layer count"),
        ("too many layers", _patch(good, 30, "<H", 200), "layer count"),
        ("window", _patch(good, 33, "<B", 0), "window"),
        ("layer table", _patch(good, 36, "<I", len(good) - 8), "layer table out of bounds"),
        ("logistic", _patch(good, 40, "<I", len(good) - 100), "logistic table out of bounds"),
        ("type", _patch(good, LAYER0, "<B", 9), "unknown type"),
        ("kernel 0", _patch(good, LAYER0 + 1, "<B", 0), "kernel or stride is 0"),
        ("chain", _patch(good, LAYER0 + 6, "<H", 31), "wrong size"),
        ("zp", _patch(good, LAYER0 + 10, "<h", 300), "zero point"),
        ("act", _patch(good, LAYER0 + 12, "<h", -200), "activation range"),
        ("weights off", _patch(good, LAYER0 + 16, "<I", len(good)), "weights out of bounds"),
        ("weights size", _patch(good, LAYER0 + 20, "<I", 7), "weights out of bounds"),
        ("bias align", _patch(good, LAYER0 + 24, "<I", 50), "bias out of bounds"),
        ("multiplier", _patch(good, LAYER0 + 36, "<I", 4), "multiplier out of bounds"),
        ("shift size", _patch(good, LAYER0 + 44, "<I", 0xFFFFFFFC), "shift out of bounds"),
        (
            "layer 1 zp",
            _patch(good, LAYER0 + blob.LAYER_BYTES + 8, "<h", 5),
            "input zero point differs",
        ),
        ("first zp", _patch(good, LAYER0 + 8, "<h", 3), "layer 0: input zero point"),
    ]


def test_specific_reasons(good):
    Model(good)  # the unmodified blob parses
    for name, bad, reason in _cases(good):
        with pytest.raises(ValueError, match=reason):
            Model(bad)
        if name not in ("crc", "truncated"):
            # describe() checks the framing too and never crashes on these
            try:
                blob.describe(bad)
            except ValueError:
                pass


def test_bad_values_inside_arrays(good):
    d = blob.describe(good)
    layer = d["layers"][2]
    m_off = struct.unpack_from("<I", good, LAYER0 + 2 * blob.LAYER_BYTES + 32)[0]
    s_off = struct.unpack_from("<I", good, LAYER0 + 2 * blob.LAYER_BYTES + 40)[0]
    b_off = struct.unpack_from("<I", good, LAYER0 + 2 * blob.LAYER_BYTES + 24)[0]
    assert layer["multiplier"][0] == struct.unpack_from("<i", good, m_off)[0]
    with pytest.raises(ValueError, match="multiplier not 0"):
        Model(_patch(good, m_off, "<i", 12345))
    with pytest.raises(ValueError, match="shift outside"):
        Model(_patch(good, s_off + 4, "<i", 31))
    with pytest.raises(ValueError, match="bias beyond"):
        Model(_patch(good, b_off, "<i", -(1 << 30) - 1))


def test_not_bytes():
    with pytest.raises(TypeError, match="bytes-like"):
        Model(12)


def test_fuzz_truncation_and_bit_flips(good):
    """Random damage never crashes the parser or the engine: ValueError, or a model the
    engine runs (when the damage hit only weights/bias values, with a fixed CRC)."""
    rng = np.random.default_rng(2024)
    feats = rng.integers(-128, 128, size=(120, 40)).astype(np.int8)
    parsed = rejected = 0
    for i in range(1500):
        b = bytearray(good)
        mode = i % 3
        if mode == 0:
            b = b[: int(rng.integers(0, len(good)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                pos = (
                    int(rng.integers(0, len(b)))
                    if rng.random() < 0.5
                    else int(rng.integers(0, blob.HEADER_BYTES + 10 * blob.LAYER_BYTES))
                )
                b[pos] ^= 1 << int(rng.integers(0, 8))
        b = bytes(b)
        if mode == 2 and len(b) >= blob.HEADER_BYTES:
            b = _recrc(b)
        try:
            m = Model(b)
        except ValueError as exc:
            assert str(exc).startswith("bad model blob: ") and len(str(exc)) > 17
            rejected += 1
            continue
        parsed += 1
        assert m.info["engine_bytes"] < 1 << 24
        Engine(m).run(feats[: min(len(feats), 2 * m.info["input_frames"])])
    assert rejected > 1000 and parsed > 0


def test_pack_rejects_bad_arguments():
    layers = blob.random_layers(seed=1)
    lt = blob.logistic_table(0.1, 0)
    with pytest.raises(ValueError, match="cutoff"):
        blob.pack(layers, logistic=lt, cutoff=0.0, window=3, refractory=0)
    with pytest.raises(ValueError, match="window"):
        blob.pack(layers, logistic=lt, cutoff=0.5, window=33, refractory=0)
    with pytest.raises(ValueError, match="logistic"):
        blob.pack(layers, logistic=lt[:10], cutoff=0.5, window=3, refractory=0)
    with pytest.raises(ValueError, match="unknown type"):
        blob.pack([dict(layers[0], type="pool")], logistic=lt, cutoff=0.5, window=3, refractory=0)


# ---------------------------------------------------------------------------------------
# from_tflite on graphs it must refuse (needs TensorFlow, the `train` extra)


def _tiny(build):
    pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(9, 1, 40))
    model = keras.Model(inputs, build(inputs, keras.layers))
    rng = np.random.default_rng(0)
    rep = rng.integers(-100, 100, size=(8, 9, 40)).astype(np.int8)
    return arch.to_tflite_int8(model, rep)


def test_from_tflite_refuses_unsupported_graphs():
    same = _tiny(lambda x, L: L.Dense(1)(L.Flatten()(L.Conv2D(4, (3, 1), padding="same")(x))))
    with pytest.raises(ValueError, match="padding must be VALID"):
        from_tflite(same, cutoff=0.5, window=3, refractory=0)
    pool = _tiny(
        lambda x, L: L.Dense(1)(L.Flatten()(L.AveragePooling2D((3, 1))(L.Conv2D(4, (3, 1))(x))))
    )
    with pytest.raises(ValueError, match="unsupported operator AVERAGE_POOL_2D"):
        from_tflite(pool, cutoff=0.5, window=3, refractory=0)
    long = _tiny(lambda x, L: L.Dense(1)(L.Flatten()(L.Conv2D(4, (3, 1), strides=(3, 1))(x))))
    with pytest.raises(ValueError, match="one flattened row|receptive field|flatten"):
        from_tflite(long, cutoff=0.5, window=3, refractory=0)
    with pytest.raises(ValueError, match="not a .tflite"):
        from_tflite(b"\x00" * 16, cutoff=0.5, window=3, refractory=0)


def test_channel_dropout_drops_whole_channels_in_training_only():
    pytest.importorskip("tensorflow")
    import keras

    keras.utils.set_random_seed(0)
    cfg = dict(arch.DEFAULT_ARCH, channel_dropout=0.5)
    model = arch.build_model(cfg)
    drops = [layer for layer in model.layers if layer.name.endswith("_chdrop")]
    assert [d.name for d in drops] == ["conv0_chdrop"] + [
        f"block{i}_pw_chdrop" for i in range(1, len(cfg["blocks"]) + 1)
    ]
    ones = np.ones((1, 7, 1, 32), np.float32)
    out = np.asarray(drops[0](ones, training=True))[0, :, 0, :]
    assert set(np.unique(out)) == {0.0, 2.0}  # rate 0.5: kept channels scaled by 2
    assert np.all(out == out[:1])  # each channel dropped or kept over all time steps
    x = np.random.default_rng(0).integers(-128, 128, (4, arch.receptive_field(cfg), 40))
    x = arch.features_to_input(x.astype(np.int8))
    assert np.array_equal(model(x, training=False), model(x, training=False))
    rep = np.random.default_rng(1).integers(-100, 100, (16, arch.receptive_field(cfg), 40))
    tfl = arch.to_tflite_int8(model, rep.astype(np.int8))
    d = blob.describe(from_tflite(tfl, cutoff=0.5, window=3, refractory=0))
    assert d["macs_per_output"] == arch.macs_per_output(arch.DEFAULT_ARCH)  # no trace left
    with pytest.raises(ValueError, match="channel_dropout"):
        arch.build_model(dict(arch.DEFAULT_ARCH, channel_dropout=1.0))
