"""A mixed int8 / packed int4 model on the virtual board: the x64 native module built from
the same core runs it with the detections of the C core through ctypes and of
``earshot score``. The model is the shipped alexa re-exported with every non-depthwise layer
at 4 bits (``earshot.model.quantize``, no fine-tuning: no data or TensorFlow needed)."""

import json

import numpy as np
import pytest

from earshot.board import deploy, natmod
from earshot.board.telemetry import DETECT, END, HELLO, Decoder
from earshot.board.vboard import VirtualBoard
from earshot.core import Detector
from earshot.model import Model
from earshot.model import package as modelpkg
from earshot.model import quantize
from earshot.paths import MODELS
from earshot.score import score_samples

from test_e2e_board import _clips

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def mixed_pkg(tmp_path_factory):
    src = MODELS / "alexa"
    man = json.loads((src / "manifest.json").read_text())
    tflite = (src / "model.tflite").read_bytes()
    layers = quantize.float_layers(tflite)[1]
    bits = [8 if lay.name == "depthwise" else 4 for lay in layers]
    flat = quantize.export(tflite, layers, bits)
    raw = quantize.mixed_blob(flat, bits, cutoff=man["cutoff"], window=man["window"],
                              refractory=man["refractory"], input_norm=man["input_norm"])
    out = tmp_path_factory.mktemp("mixed") / "pkg"
    modelpkg.write(out, "alexa", raw, flat)
    return out


def test_mixed_model_on_the_board_equals_score(data, mixed_pkg, tmp_path):
    positives, negatives = _clips(data)
    clips = positives[:12] + negatives[:12]
    natmod.build("x64")
    flash = tmp_path / "flash"
    flash.mkdir()
    names = []
    for i, (_, x) in enumerate(clips):
        names.append(f"clip{i:03d}.raw")
        (flash / names[-1]).write_bytes(x.astype("<i2").tobytes())
    with VirtualBoard(flash) as board:
        deploy.deploy(board.port, model=mixed_pkg / "model.bin")
        code = f"import es_loop\nes_loop.run_files({names!r})\nprint('int4 done')\n"
        out = deploy.run_on_board(board.port, code, timeout=600)
    dec = Decoder()
    per_clip, stream = {}, None
    for f in dec.feed(out):
        if f.kind == HELLO:
            stream = f["stream"]
            per_clip[stream] = []
        elif f.kind == DETECT:
            per_clip[stream].append(f["hop"])
        elif f.kind == END:
            assert f["hops"] * 160 == len(clips[f["stream"]][1])
    assert "int4 done" in dec.take_text() and dec.corrupt == 0
    board = [per_clip[i] for i in range(len(clips))]
    det = Detector(Model((mixed_pkg / "model.bin").read_bytes()))
    for (_, x), hops in zip(clips, board):
        det.reset()
        assert det.run(x).detections == hops
        assert score_samples(x, mixed_pkg)["detections"] == [round((h + 1) * 0.01, 2)
                                                              for h in hops]
    assert sum(map(bool, board[:12])) >= 8  # the positives are detected: not vacuous
    assert np.all([isinstance(h, list) for h in board])
