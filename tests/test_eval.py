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
