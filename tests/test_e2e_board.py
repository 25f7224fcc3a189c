"""End to end on the virtual board: real recordings through mpremote, the on-device modules
and the x64 native module, compared with the C core through ctypes.

One board session runs every clip (``es_loop.run_files``, fed as fast as possible); the
telemetry it prints through ``mpremote exec`` is decoded on the host. Clips are padded with
1 s of silence on both sides (and zeros to a whole hop), as in the shared reference
measurement. The model is ``models/alexa/model.bin``; while it is absent, the parity test
runs on a random blob (``earshot.model.blob.random_model``) with a low cutoff so that detections
occur, and the accuracy test is skipped naming the missing file.
"""

import random

import numpy as np
import pytest

from earshot import audio
from earshot.model import blob
from earshot.train import dataset
from earshot.board import deploy, natmod
from earshot.core import Detector
from earshot.model import Model
from earshot.score import score_samples
from earshot.board.telemetry import DETECT, END, HELLO, Decoder
from earshot.board.vboard import VirtualBoard

pytestmark = [pytest.mark.slow, pytest.mark.data]

N_POSITIVE = 20
N_NEGATIVE = 50
MIN_DETECTED = 17
MAX_FALSE = 1
NEGATIVE_SEED = 20240
PAD_S = 1.0
RANDOM_CUTOFF = 0.5  # for the stand-in random blob: low enough that detections occur


def _clips(data):
    """(positives, negatives): lists of (name, int16 samples), padded; unreadable skipped."""
    pos_paths = dataset.dev_positives(data)
    # Negatives from the held-out part of computer/jarvis/snowboy: training never saw them.
    neg_paths = dataset.heldout_negatives(data)
    random.Random(NEGATIVE_SEED).shuffle(neg_paths)
    pad = np.zeros(int(PAD_S * audio.SAMPLE_RATE_HZ), np.int16)

    def take(paths, n):
        out = []
        for p in paths:
            try:
                x = audio.load(p)
            except audio.AudioError:
                continue
            x = np.concatenate([pad, x, pad])
            x = np.concatenate([x, np.zeros((-len(x)) % 160, np.int16)])
            out.append((f"{p.parent.name}/{p.name}", x))
            if len(out) == n:
                break
        return out

    return take(pos_paths, N_POSITIVE), take(neg_paths, N_NEGATIVE)


@pytest.fixture(scope="module")
def model_blob(tmp_path_factory):
    """(path, trained): the trained blob if present, else a random stand-in."""
    if deploy.DEFAULT_MODEL.is_file():
        return deploy.DEFAULT_MODEL, True
    path = tmp_path_factory.mktemp("model") / "random.bin"
    path.write_bytes(blob.random_model(seed=1, cutoff=RANDOM_CUTOFF, window=3))
    return path, False


@pytest.fixture(scope="module")
def board_run(data, model_blob, tmp_path_factory):
    """Run all clips on the virtual board. Returns (clips, per-clip detection hops, decoder)."""
    positives, negatives = _clips(data)
    assert len(positives) == N_POSITIVE and len(negatives) == N_NEGATIVE
    clips = positives + negatives
    natmod.build("x64")
    flash = tmp_path_factory.mktemp("e2e") / "flash"
    flash.mkdir()
    names = []
    for i, (_, x) in enumerate(clips):
        name = f"clip{i:03d}.raw"
        (flash / name).write_bytes(x.astype("<i2").tobytes())
        names.append(name)
    with VirtualBoard(flash) as board:
        deploy.deploy(board.port, model=model_blob[0])
        code = f"import es_loop\nes_loop.run_files({names!r})\nprint('e2e done')\n"
        out = deploy.run_on_board(board.port, code, timeout=600)
    dec = Decoder()
    frames = dec.feed(out)
    per_clip = {}
    stream = None
    for f in frames:
        if f.kind == HELLO:
            stream = f["stream"]
            per_clip[stream] = []
        elif f.kind == DETECT:
            per_clip[stream].append(f["hop"])
        elif f.kind == END:
            assert f["hops"] * 160 == len(clips[f["stream"]][1])
    assert "e2e done" in dec.take_text()
    assert dec.corrupt == 0 and dec.dropped == 0
    assert sorted(per_clip) == list(range(len(clips)))
    return clips, [per_clip[i] for i in range(len(clips))]


def test_board_detections_equal_ctypes_core(board_run, model_blob):
    clips, board_dets = board_run
    model = Model(model_blob[0].read_bytes())
    det = Detector(model)
    host_dets = []
    for _, x in clips:
        det.reset()
        host_dets.append(det.run(x).detections)
    assert board_dets == host_dets
    if model_blob[1]:
        # `earshot score` (the shipped package; seconds at the end of the firing hop) agrees
        # with the board on the positives and the first negatives.
        for (_, x), hops in list(zip(clips, board_dets))[: N_POSITIVE + 5]:
            assert score_samples(x)["detections"] == [round((h + 1) * 0.01, 2) for h in hops]
    if not model_blob[1]:
        # The stand-in blob must exercise detections, or parity would be vacuous.
        assert sum(map(len, host_dets)) > 0


def test_accuracy_on_real_recordings(board_run, model_blob):
    if not model_blob[1]:
        pytest.skip(f"trained model {deploy.DEFAULT_MODEL} absent (engineer 'train')")
    clips, board_dets = board_run
    detected = [bool(d) for d in board_dets[:N_POSITIVE]]
    false = sum(len(d) for d in board_dets[N_POSITIVE:])
    missed = [clips[i][0] for i, hit in enumerate(detected) if not hit]
    assert sum(detected) >= MIN_DETECTED, f"missed: {missed}"
    assert false <= MAX_FALSE, f"{false} detections on {N_NEGATIVE} negative clips"
