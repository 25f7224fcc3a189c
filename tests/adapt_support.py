"""Shared by the adaptation tests (test_adapt*.py): the factory model, seeded speech-like
audio, a board flash folder with the x64 natmod and the on-device modules, and helpers to run
MicroPython there."""

import os
import subprocess

import numpy as np
import pytest
from earshot import core
from earshot.board import natmod
from earshot.board.vboard import micropython_executable
from earshot.model import Engine, Model, blob
from earshot.paths import FIRMWARE, MODELS

FACTORY = MODELS / "alexa" / "model.bin"
MODULES = FIRMWARE / "modules"


@pytest.fixture(scope="module")
def factory():
    if FACTORY.is_file():
        return FACTORY.read_bytes()
    return blob.random_model(seed=3)


def _speechlike(seed: int, seconds: float = 3.0) -> np.ndarray:
    """Seeded int16 audio with a few loud syllable-like bursts (opens the VAD gate)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    x = rng.normal(0, 30, n)
    t = np.arange(n) / 16000
    for start in rng.uniform(0.3, seconds - 0.6, 4):
        m = (t >= start) & (t < start + 0.35)
        f0 = rng.uniform(120, 300)
        x[m] += 4000 * np.sin(2 * np.pi * f0 * t[m]) * np.hanning(m.sum())
        x[m] += 1500 * np.sin(2 * np.pi * 3.1 * f0 * t[m]) * np.hanning(m.sum())
    return np.clip(x, -32768, 32767).astype(np.int16)


def _windows(model, feats):
    """(hops, logits) of the streaming engine and the windows that produced them."""
    hops, logits = Engine(model).run(feats)
    frames = model.info["input_frames"]
    return hops, logits, [feats[h + 1 - frames : h + 1] for h in hops]


@pytest.fixture(scope="module")
def feats():
    return core.features(np.concatenate([_speechlike(s) for s in range(3)]))


@pytest.fixture(scope="module")
def flash(tmp_path_factory, factory):
    """A board flash folder: modules, x64 natmod, factory model, three raw streams."""
    try:
        mp = micropython_executable()
    except Exception as exc:  # noqa: BLE001 - the board's own error names the fix
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    d = tmp_path_factory.mktemp("flash")
    natmod.build("x64", out=d, clean=True)
    for p in MODULES.glob("*.py"):
        (d / p.name).write_bytes(p.read_bytes())
    (d / "model.bin").write_bytes(factory)
    streams = [_speechlike(s, 4.0) for s in range(10, 16)]
    for i, s in enumerate(streams):
        (d / f"s{i}.raw").write_bytes(s.astype("<i2").tobytes())
    return d, mp, streams


def _mpy(flash, code, **kw):
    d, mp, _ = flash
    return subprocess.run(
        [mp, "-X", "heapsize=8M", "-c", code],
        check=False,
        cwd=d,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def _cfg_for(factory_blob, streams):
    """A configuration whose cutoffs give both classes on these synthetic streams (their
    probabilities' upper and lower quartiles), so the test does not depend on the model."""
    m = Model(factory_blob)
    ps = []
    for s in streams:
        r = core.Detector(m).run(s)
        want = core.FLAG_OUTPUT | core.FLAG_VAD
        ps += list(r.probs[(r.flags & want) == want])
    ps = np.array(ps)
    hi, lo = int(np.percentile(ps, 80)), int(np.percentile(ps, 30))
    return {
        "pos_cutoff": max(hi, lo + 1),
        "neg_cutoff": lo,
        "neg_every": 2,
        "min_pos": 1,
        "min_neg": 1,
        "epochs": 3,
        "check_every": 0,  # compared on its own in test_board_acceptance_check_equals_host
    }
