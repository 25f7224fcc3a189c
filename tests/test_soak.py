"""A short soak (bench/soak.py, 0.05 h of audio, about 18,000 hops) on the virtual board:
detector, VAD gate, adaptation and telemetry on. Every hop of the audio is run, no telemetry
frame is lost or corrupt, the free heap after collection stays within 1 % once the
adaptation has ended, and the detector's time per hop at the end is that of the start."""

import json
import subprocess
import sys

import pytest
from earshot.paths import ROOT, data_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def soak():
    proc = subprocess.run(
        [sys.executable, ROOT / "bench" / "soak.py", "--hours", "0.05", "--json"],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_soak_runs_all_audio_and_loses_no_frame(soak):
    rc, r = soak
    assert r["hops"] == 18_000 and r["hops_run"] == r["hops"]
    assert r["frames_sent"] > r["hops"] // 10  # a STATS frame per 10-hop block, at least
    assert r["frames_received"] == r["frames_sent"]
    assert r["frames_dropped"] == 0 and r["frames_corrupt"] == 0
    assert r["vboard_dropped_bytes"] == 0
    assert rc == 0 and all(r["ok"].values()), r["ok"]


def test_soak_heap_steady_and_time_per_hop_stable(soak):
    _, r = soak
    heap = r["heap"]
    assert heap["readings"] >= 15  # one per 10 s of audio
    assert heap["max_steady_change"] <= 0.01
    first, last = r["first_10pct"], r["last_10pct"]
    assert first["blocks"] >= 150 and last["blocks"] >= 150
    assert 0 < last["detector_us_p50"] <= 2 * first["detector_us_p50"] + 20
    assert 0 < last["loop_wall_us_p50"]


def test_soak_adapts_and_detects_on_real_clips(soak):
    if data_dir(required=False) is None:
        pytest.skip("shared recordings absent: the soak audio has no real wake words")
    _, r = soak
    assert r["detections"] >= 1
    assert r["adaptation"] is not None and r["adaptation"]["ended_at_hop"] < r["hops"]
