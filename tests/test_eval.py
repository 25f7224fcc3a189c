"""``earshot eval``: JSON consistent with the detections, DET PNG, clear errors for bad input."""

import json

import numpy as np
import pytest
import soundfile as sf

from earshot import cli, evaluate
from earshot.train import synth
from earshot.audio import SAMPLE_RATE_HZ
from earshot.paths import MODELS

MODEL = MODELS / "alexa"
VOICES = ("en-us", "en-gb", "en-us+f2", "en-gb-x-rp+m3")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Synthetic (espeak-ng) positives and negatives, one 8 kHz negative (resampled)."""
    root = tmp_path_factory.mktemp("eval")
    pos, neg = root / "pos", root / "neg"
    pos.mkdir()
    neg.mkdir()
    for k, voice in enumerate(VOICES):
        spec = {"engine": "espeak", "voice": voice, "rate": 150, "pitch": 50, "gap": 0}
        x, _ = synth.render(dict(spec, text="alexa"))
        sf.write(pos / f"a{k}.wav", x, SAMPLE_RATE_HZ)
        y, _ = synth.render(dict(spec, text=synth.SENTENCES[k]))
        sf.write(neg / f"n{k}.wav", y, SAMPLE_RATE_HZ)
    z, _ = synth.render(
        {
            "engine": "espeak",
            "voice": "en",
            "rate": 170,
            "pitch": 40,
            "gap": 0,
            "text": "he drives a lexus to work",
        }
    )
    sf.write(neg / "n8k.flac", z[::2], SAMPLE_RATE_HZ // 2)
    return pos, neg


def _eval(capsys, *argv):
    code = cli.main(["eval", "--model", str(MODEL), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_json_is_consistent_with_detections(folders, tmp_path, capsys):
    pos, neg = folders
    png = tmp_path / "det.png"
    code, out, err = _eval(
        capsys, "--positives", str(pos), "--negatives", str(neg), "--json", "--det", str(png)
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["snr_db"] is None
    assert res["positives"] == len(VOICES) and res["positives_unreadable"] == []
    assert res["negative_clips"] == len(VOICES) + 1 and res["negative_unreadable"] == 0
    # Hours of the stream: every clip at 16 kHz plus a 0.5 s gap after each.
    samples = sum(
        len(evaluate.dataset.load_clips([p])[0][0]) + SAMPLE_RATE_HZ // 2
        for p in sorted(neg.iterdir())
    )
    assert res["negative_hours"] == pytest.approx(samples / SAMPLE_RATE_HZ / 3600, abs=1e-4)
    assert set(res["engines"]) == {"Earshot", "microWakeWord"}
    earshot = evaluate.Earshot(MODEL)
    for r in res["engines"].values():
        assert r["recall"] == pytest.approx(r["detected"] / res["positives"], abs=1e-4)
        assert len(r["missed"]) == res["positives"] - r["detected"]
        assert r["fa_per_hour"] == pytest.approx(
            r["false_accepts"] / res["negative_hours"], rel=0.01
        )
        frr = [d["frr"] for d in r["det"]]
        assert [d["cutoff"] for d in r["det"]] == list(evaluate.DET_CUTOFFS)
        assert frr == sorted(frr)  # a higher cutoff never detects more clips
        assert all(0 <= f <= 1 for f in frr)
    # Earshot's recall is what its detector does on each padded clip, at the model's cutoff.
    mine = [
        bool(earshot.detect(evaluate.pad(evaluate.dataset.load_clips([p])[0][0], 1.0)))
        for p in sorted(pos.iterdir())
    ]
    assert res["engines"]["Earshot"]["detected"] == sum(mine)
    assert res["engines"]["Earshot"]["cutoff"] == pytest.approx(earshot.manifest["cutoff"])
    # microWakeWord's sweep point at its own cutoff is the headline measurement.
    mww = res["engines"]["microWakeWord"]
    at = mww["det"][evaluate.DET_CUTOFFS.index(0.9)]
    assert at["frr"] == pytest.approx(1 - mww["recall"], abs=1e-4)
    assert at["fa_per_hour"] == mww["fa_per_hour"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w = matplotlib.image.imread(png).shape[:2]
    assert (w, h) == (640, 480)


def test_eval_snr_mixes_seeded_noise(folders, capsys):
    pos, neg = folders
    runs = [
        json.loads(
            _eval(
                capsys,
                "--positives",
                str(pos),
                "--negatives",
                str(neg),
                "--json",
                "--snr",
                "10",
                "--no-mww",
            )[1]
        )
        for _ in range(2)
    ]
    assert runs[0] == {
        **runs[1],
        "engines": {
            "Earshot": {
                **runs[1]["engines"]["Earshot"],
                "seconds": runs[0]["engines"]["Earshot"]["seconds"],
            }
        },
    }
    assert runs[0]["snr_db"] == 10 and list(runs[0]["engines"]) == ["Earshot"]
    x = np.full(16000, 1000, np.int16)
    noisy = evaluate.add_noise(x, 10.0, np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(x.astype(float) ** 2) / np.mean((noisy - x.astype(float)) ** 2))
    assert snr == pytest.approx(10.0, abs=0.2)


def test_eval_reports_bad_input(folders, tmp_path, capsys):
    pos, neg = folders
    code, _, err = _eval(capsys, "--positives", str(tmp_path / "nope"), "--negatives", str(neg))
    assert code == 2 and "nope: no such folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _eval(capsys, "--positives", str(pos), "--negatives", str(empty))
    assert code == 2 and "no audio files" in err
    # A damaged file is reported by name and skipped; the rest is measured.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in pos.iterdir():
        (mixed / p.name).write_bytes(p.read_bytes())
    (mixed / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code, out, err = _eval(
        capsys, "--positives", str(mixed), "--negatives", str(neg), "--json", "--no-mww"
    )
    assert code == 0 and "broken.wav" in err
    res = json.loads(out)
    assert res["positives_unreadable"] == ["broken.wav"] and res["positives"] == len(VOICES)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.flac").write_bytes(b"fLaC garbage")
    code, _, err = _eval(capsys, "--positives", str(only_bad), "--negatives", str(neg))
    assert code == 2 and "no readable audio file" in err


@pytest.mark.parametrize("snr", ["nan", "inf", "-inf", "ten"])
def test_snr_must_be_a_finite_number(snr, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", f"--snr={snr}", "--no-mww"])
    assert exc.value.code == 2 and "number of dB" in capsys.readouterr().err


#: Tiny blocks for the streaming tests: 5925 samples, neither a whole number of 10 ms hops nor
#: of microWakeWord's 320-byte chunks, so partial hops are carried across every block.
TINY_BLOCK_S = 0.3703


@pytest.fixture(scope="module")
def long_negatives(folders, tmp_path_factory):
    """Minutes of negatives: the synthetic clips ("alexa" included, so that both engines fire)
    tiled at random gains with faint-noise gaps into long files at 16 kHz, 44.1 kHz stereo and
    8 kHz, plus one short clip and one damaged file."""
    pos, neg = folders
    clips = [evaluate.audio.load(p) for p in sorted(pos.iterdir()) + sorted(neg.iterdir())]
    rng = np.random.default_rng(5)
    root = tmp_path_factory.mktemp("longneg")

    def tiled(seconds):
        parts, n = [], 0
        while n < seconds * SAMPLE_RATE_HZ:
            x = clips[rng.integers(len(clips))] * rng.uniform(0.3, 1.0)
            gap = rng.normal(0, 30, int(rng.uniform(0.2, 1.5) * SAMPLE_RATE_HZ))
            parts += [x, gap]
            n += len(x) + len(gap)
        return np.concatenate(parts) / 32768

    sf.write(root / "long16.wav", tiled(100), SAMPLE_RATE_HZ, subtype="PCM_16")
    x44 = evaluate.audio.resample(tiled(70), SAMPLE_RATE_HZ, 44100)
    sf.write(root / "long44.flac", np.stack([x44, 0.5 * x44], axis=1), 44100)
    sf.write(root / "long8.wav", evaluate.audio.resample(tiled(60), SAMPLE_RATE_HZ, 8000), 8000)
    sf.write(root / "short.wav", clips[-1] / 32768, SAMPLE_RATE_HZ)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return root


@pytest.mark.parametrize("snr", [None, 10.0])
def test_negative_stream_in_blocks_is_the_whole_stream(long_negatives, snr):
    paths = evaluate.audio_files(long_negatives)
    rng_whole, rng_blocks = np.random.default_rng(7), np.random.default_rng(7)
    whole, n, failed = evaluate.negative_stream(paths, snr, rng_whole)
    stream = evaluate.NegativeStream(paths, snr, rng_blocks, block_s=TINY_BLOCK_S)
    blocks = list(stream)
    assert max(len(b) for b in blocks) == round(TINY_BLOCK_S * SAMPLE_RATE_HZ)
    assert (n, failed) == (stream.clips, stream.failed) == (4, 1)
    assert np.array_equal(np.concatenate(blocks), whole)  # noise included, bit for bit
    assert stream.samples == len(whole) > 200 * SAMPLE_RATE_HZ
    assert rng_whole.standard_normal(4).tolist() == rng_blocks.standard_normal(4).tolist()
    with pytest.raises(RuntimeError, match="read once"):
        list(stream)


def test_negative_stream_memory_is_one_block(long_negatives):
    """Reading a 100 s file in 1 s blocks, noise included, never holds the file: the peak
    of traced allocations stays under a fifth of its samples as float64 (12.8 MB)."""
    import tracemalloc

    stream = evaluate.NegativeStream(
        [long_negatives / "long16.wav"], 10.0, np.random.default_rng(1), block_s=1.0
    )
    tracemalloc.start()
    try:
        n = sum(len(b) for b in stream)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == stream.samples > 100 * SAMPLE_RATE_HZ
    assert peak < 8 * n // 5


def test_engines_detect_the_same_in_tiny_blocks(long_negatives):
    """Detections, at stream times, on the whole stream at once and fed in tiny blocks (a
    long 44.1 kHz stereo file, a short one, a damaged one: 80 s)."""
    paths = [long_negatives / n for n in ("long44.flac", "short.wav", "broken.wav")]
    whole, _, _ = evaluate.negative_stream(paths, 10.0, np.random.default_rng(1))
    engines = [evaluate.Earshot(MODEL), evaluate.MicroWakeWord()]
    cutoffs = [None, 0.3]
    stream = evaluate.NegativeStream(paths, 10.0, np.random.default_rng(1), block_s=TINY_BLOCK_S)
    in_blocks, spent = evaluate.scan_negatives(engines, stream, cutoffs)
    for eng, got in zip(engines, in_blocks):
        assert got == eng.sweep(whole, cutoffs)
        assert len(got[1]) >= len(got[0]) > 0 and max(got[1]) <= len(whole) / SAMPLE_RATE_HZ
        with pytest.raises(ValueError, match="int16"):
            eng.detect(whole[:16000].astype(np.float32))
    assert all(s > 0 for s in spent)


@pytest.mark.slow
def test_eval_results_do_not_depend_on_the_block_size(folders, long_negatives):
    pos, _ = folders

    def run(block_s):
        res = evaluate.evaluate(
            pos,
            long_negatives,
            MODEL,
            snr_db=10.0,
            det=True,
            cutoffs=(0.3, 0.9),
            log=lambda m: None,
            block_s=block_s,
        )
        for r in res["engines"].values():
            r.pop("seconds")
        return res

    whole = run(None)
    assert whole == run(TINY_BLOCK_S) == run(evaluate.BLOCK_S)
    assert whole["negative_clips"] == 4 and whole["negative_unreadable"] == 1
    assert all(r["false_accepts"] > 0 for r in whole["engines"].values())
