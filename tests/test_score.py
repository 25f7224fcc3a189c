"""``earshot score``: the offline scorer through the C core (ctypes) and its CLI."""

import json

import numpy as np
import pytest
import soundfile as sf

from earshot import audio, cli, core
from earshot.model import Model, blob, package as modelpkg
from earshot.score import score_samples


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A model package around a seeded random blob with a low cutoff, so it fires on speech."""
    d = tmp_path_factory.mktemp("pkg")
    modelpkg.write(d, "test", blob.random_model(seed=1, cutoff=0.5, window=2), b"")
    return d


def _speech_like(seconds=4.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000.0
    env = (np.sin(2 * np.pi * 1.5 * t) > 0.2).astype(np.float32)
    x = 0.3 * env * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * 3 * t)) * t)
    return (x + 0.003 * rng.standard_normal(len(t))).astype(np.float32)


def test_json_keys_units_and_detections_match_the_core(package, tmp_path, capsys):
    x = _speech_like()
    # 48 kHz stereo: the scorer must convert and say so.
    path = tmp_path / "clip.wav"
    sf.write(path, np.stack([np.repeat(x, 3), np.repeat(x, 3)], axis=1), 48000)
    assert cli.main(["score", "--json", "--pad", "0", "--model", str(package), str(path)]) == 0
    out, err = capsys.readouterr()
    assert "48000 Hz -> 16000 Hz" in err and "2 channels -> mono" in err
    res = json.loads(out.strip())
    assert set(res) == {
        "file", "duration_s", "pad_s", "step_s", "scores", "cutoff", "detections", "vad_duty"
    }  # fmt: skip
    assert res["pad_s"] == 0
    samples = audio.load(path)
    assert res["duration_s"] == pytest.approx(len(samples) / 16000, abs=1e-3)
    model = Model(modelpkg.load(package)[1])
    stride = model.info["output_stride"]
    assert res["step_s"] == pytest.approx(stride * 0.01)
    assert len(res["scores"]) == (len(samples) // 160) // stride
    assert all(0.0 <= s <= 1.0 for s in res["scores"])
    assert res["cutoff"] == pytest.approx(model.info["cutoff"] / 255, abs=1e-3)
    # Detections are the C core's, converted to seconds at the end of the firing hop.
    ref = core.Detector(model).run(samples).detections
    assert res["detections"] == [round((i + 1) * 0.01, 2) for i in ref]
    assert 0.0 < res["vad_duty"] < 1.0


def test_files_are_padded_with_a_second_of_silence_by_default(package, tmp_path, capsys):
    """As eval pads its clips: the scores and detections are those of the file followed by 1 s
    of digital silence; duration_s stays the file's."""
    path = tmp_path / "clip.wav"
    sf.write(path, _speech_like(2.0, seed=3), 16000)
    assert cli.main(["score", "--json", "--model", str(package), str(path)]) == 0
    res = json.loads(capsys.readouterr().out)
    samples = audio.load(path)
    padded = np.concatenate([samples, np.zeros(16000, np.int16)])
    assert res["pad_s"] == 1.0
    assert res["duration_s"] == pytest.approx(len(samples) / 16000, abs=1e-3)
    assert res == {**score_samples(padded, package), "file": str(path), "pad_s": 1.0,
                   "duration_s": res["duration_s"]}  # fmt: skip
    assert cli.main(["score", "--pad", "-1", "--model", str(package), str(path)]) == 2


def test_model_is_a_package_or_a_blob(package, tmp_path, capsys):
    """--model takes the package folder, its blob, or a blob alone (cutoff from its header)."""
    path = tmp_path / "clip.wav"
    sf.write(path, _speech_like(2.0, seed=4), 16000)
    alone = tmp_path / "alone.bin"
    alone.write_bytes(modelpkg.load(package)[1])
    results = []
    for model in (package, package / "model.bin", alone):
        assert cli.main(["score", "--json", "--model", str(model), str(path)]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0] == results[1]
    assert results[2]["scores"] == results[0]["scores"]
    assert results[2]["cutoff"] == pytest.approx(results[0]["cutoff"], abs=1 / 255)


def test_no_vad_runs_the_model_on_every_hop(package):
    res = score_samples(audio.to_int16(_speech_like(2.0)), package, vad=False)
    assert res["vad_duty"] == 1.0


def test_damaged_file_and_bad_model_are_reported(package, tmp_path, capsys):
    bad = tmp_path / "broken.flac"
    good = tmp_path / "good.flac"
    sf.write(good, _speech_like(1.0), 16000)
    bad.write_bytes(good.read_bytes()[:40] + b"\x00garbage" * 50)
    assert cli.main(["score", "--model", str(package), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert "broken.flac" in err and "cannot read audio" in err
    assert "good.flac" in out  # the good file after the bad one is still scored
    (tmp_path / "pkg").mkdir()
    assert cli.main(["score", "--model", str(tmp_path / "pkg"), str(good)]) == 1
    assert "manifest missing" in capsys.readouterr().err


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (48000, 1), (8000, 2)])
def test_blocks_equal_the_whole_file_bit_for_bit(tmp_path, rate, channels):
    """Resampling block by block (with the filter's context) gives the whole-file samples."""
    rng = np.random.default_rng(rate + channels)
    x = rng.normal(0, 0.2, (int(rate * 3.7), channels)).clip(-1, 1).astype(np.float32)
    path = tmp_path / f"x{rate}.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    from math import gcd

    from scipy.signal import resample_poly

    mono = x.mean(axis=1)
    if rate != 16000:
        g = gcd(rate, 16000)
        mono = resample_poly(mono, 16000 // g, rate // g).astype(np.float32)
    whole = audio.to_int16(mono)
    assert np.array_equal(audio.load(path), whole)
    for block_s in (1.0, 0.29):
        parts = list(audio.blocks(path, block_s=block_s))
        assert len(parts) > 3 and np.array_equal(np.concatenate(parts), whole)


def test_scoring_block_by_block_equals_scoring_at_once(package):
    x = audio.to_int16(np.concatenate([_speech_like(3.0, s) for s in range(4)]))
    whole = score_samples(x, package)
    assert whole["detections"]
    from earshot.score import score_blocks

    for cut in (997, 4800, 16000 + 37):
        parts = [x[i : i + cut] for i in range(0, len(x), cut)]
        assert score_blocks(parts, package) == whole


def test_nan_samples_and_a_fifo_are_refused_naming_the_file(tmp_path, capsys):
    x = np.zeros((1600, 2), np.float32)
    x[1234, 1] = np.nan
    nan = tmp_path / "nan.wav"
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(audio.AudioError, match=r"nan\.wav: sample 1234 .*NaN or infinite"):
        audio.load(nan)
    x[1234, 1] = np.inf
    sf.write(nan, x, 16000, subtype="FLOAT")
    assert cli.main(["score", str(nan)]) == 1
    assert "nan.wav: sample 1234" in capsys.readouterr().err
    import os

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # no writer: opening it for reading would block for ever
    with pytest.raises(audio.AudioError, match=r"pipe\.wav: a FIFO"):
        audio.load(fifo)
    with pytest.raises(audio.AudioError, match=r"missing\.wav: cannot read audio"):
        audio.load(tmp_path / "missing.wav")
