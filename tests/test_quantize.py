"""earshot.model.quantize: the dequantized .tflite re-exports the shipped blob bit for bit at
8 bits; a mixed int8 / int4 export runs the same logits in the C engine (packed int4 blob)
as in TFLite Micro (its int8 .tflite); the package it writes loads; the verb is registered."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from earshot.model import Engine, Model, blob
from earshot.model import package as modelpkg
from earshot.model import quantize as Q
from earshot.paths import MODELS

ALEXA = MODELS / "alexa"


@pytest.fixture(scope="module")
def alexa():
    man = json.loads((ALEXA / "manifest.json").read_text())
    kw = {"cutoff": man["cutoff"], "window": man["window"], "refractory": man["refractory"],
          "input_norm": man["input_norm"]}
    tflite = (ALEXA / "model.tflite").read_bytes()
    return tflite, Q.float_layers(tflite)[1], kw, man


def test_int8_export_reproduces_the_shipped_blob(alexa):
    tflite, layers, kw, _ = alexa
    bits = [8] * len(layers)
    assert Q.mixed_blob(Q.export(tflite, layers, bits), bits, **kw) == (
        ALEXA / "model.bin").read_bytes()


def _mixed(alexa):
    tflite, layers, kw, _ = alexa
    bits = [8 if lay.name == "depthwise" else 4 for lay in layers]
    flat = Q.export(tflite, layers, bits)
    return flat, Q.mixed_blob(flat, bits, **kw), bits


def test_mixed_blob_is_smaller_and_holds_int4(alexa):
    flat, raw, bits = _mixed(alexa)
    d = blob.describe(raw)
    assert d["format_version"] == blob.VERSION_INT4
    assert [lay["weight_bits"] for lay in d["layers"]] == bits
    for lay, nb in zip(d["layers"], bits):
        if nb == 4:
            assert np.abs(lay["weights"]).max() <= 7
    assert len(raw) < 0.75 * (ALEXA / "model.bin").stat().st_size
    assert Q.weight_bytes(alexa[1], bits) == d["weight_bytes"] - sum(
        4 * lay["out_ch"] * (3 if lay["bias"] is not None else 2) for lay in d["layers"])


def test_mixed_blob_equals_tflm_on_its_tflite(alexa):
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    flat, raw, _ = _mixed(alexa)
    model = Model(raw)
    frames, stride = model.info["input_frames"], model.info["output_stride"]
    rng = np.random.default_rng(5)
    feats = rng.integers(-128, 128, (frames + 20 * stride, 40)).astype(np.int8)
    hops, logits = Engine(model).run(feats)
    interp = runtime.Interpreter.from_bytes(flat)
    want = []
    for n in hops:
        interp.set_input(feats[n - frames + 1 : n + 1][None, :, None, :], 0)
        interp.invoke()
        want.append(int(interp.get_output(0).reshape(-1)[0]))
    np.testing.assert_array_equal(logits, np.array(want, np.int8))
    assert len(np.unique(logits)) > 1


def test_written_package_loads_and_window_probs(alexa, tmp_path):
    _, raw, _ = _mixed(alexa)
    flat, _, _ = _mixed(alexa)
    man = modelpkg.write(tmp_path, "alexa", raw, flat)
    assert man["min_earshot_version"] == modelpkg.MIN_EARSHOT_VERSION_INT4
    loaded, blob_bytes = modelpkg.load(tmp_path)
    assert blob_bytes == raw and loaded["blob_bytes"] == len(raw)
    x = np.random.default_rng(1).integers(-128, 128, (4, 93, 40)).astype(np.int8)
    p = Q.window_probs(raw, x)
    assert p.dtype == np.uint8 and p.shape == (4,)
    y = np.array([1, 0, 1, 0], np.uint8)
    assert 0.0 <= Q.accuracy(raw, x, y) <= 1.0


def test_quantize_verb_is_registered():
    out = subprocess.run([sys.executable, "-m", "earshot", "quantize", "--help"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "--bits" in out.stdout and "--qat-epochs" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "earshot", "quantize", "--bits", "3", "-o", "x"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
