"""Dev-split numbers on held-out speaker folds only (earshot.evaluate, ``earshot eval --folds``,
bench/accuracy.py) and the intervals beside the rates."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot import cli, evaluate
from earshot.paths import MODELS
from earshot.train import dataset

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "accuracy.py")
accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(accuracy)


@pytest.fixture()
def fake_data(tmp_path, monkeypatch):
    """EARSHOT_DATA at a folder whose alexa clips 0..119 are short tones (33 damaged)."""
    root = tmp_path / "data"
    folder = root / dataset.WWB / "alexa"
    folder.mkdir(parents=True)
    (root / "README.md").write_text("fake")
    t = np.arange(4000) / 16000
    for i in range(120):
        sf.write(folder / f"{i}.flac", (3000 * np.sin(2 * np.pi * (300 + i) * t)).astype(np.int16),
                 16000)
    (folder / "33.flac").write_bytes(b"fLaC damaged")
    monkeypatch.setenv("EARSHOT_DATA", str(root))
    return root


def _manifest(train, val, k=5):
    rec = dataset.fold_record({"source": None, "folds": k, "train_folds": train,
                               "validation_folds": val})
    return {"wake_word": "alexa", "training": {"real_positives": rec}}


def test_test_folds_leave_out_every_trained_and_validated_fold(fake_data):
    man = _manifest([0, 1, 2], [3])
    paths, info = evaluate.fold_positives(man, "test")
    assert [int(p.stem) for p in paths] == list(range(96, 120))
    assert info["selected"] == [4] and info["recorded"] and info["left_out"] == 0
    assert evaluate.fold_positives(man, "4")[0] == paths
    for bad in ("all", "3", [2, 4]):
        with pytest.raises(evaluate.UsedFolds, match="trained on"):
            evaluate.fold_positives(man, bad)
    with pytest.raises(ValueError, match="indices 0..4"):
        evaluate.fold_positives(man, "9")
    evaluate.check_not_trained_on(man, paths)
    with pytest.raises(evaluate.UsedFolds, match="trained or validated on"):
        evaluate.check_not_trained_on(man, [fake_data / dataset.WWB / "alexa" / "80.flac"])


def test_a_model_without_a_record_counts_every_fold(fake_data):
    paths, info = evaluate.fold_positives({"wake_word": "alexa", "training": {}}, "test")
    assert len(paths) == 120 and not info["recorded"] and info["selected"] == [0, 1, 2, 3, 4]
    assert evaluate.fold_positives({"wake_word": "alexa"}, "all")[0] == paths
    evaluate.check_not_trained_on({"wake_word": "alexa"}, paths)


def test_files_sharing_a_speaker_with_a_used_file_are_left_out(fake_data):
    """A record made under another grouping (here: blocks of two, folds cut inside today's
    speaker 8-11) loses the files of every group it touched."""
    man = _manifest([0], [])
    rec = man["training"]["real_positives"]
    rec["fold_files"][0] = [f"{i}.flac" for i in range(10)]
    rec["fold_files"][1] = [f"{i}.flac" for i in range(10, 48)]
    paths, info = evaluate.fold_positives(man, "1")
    assert [int(p.stem) for p in paths][:2] == [12, 13] and info["left_out"] == 2


def test_eval_cli_folds_test_measures_only_the_unused_folds(fake_data, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(MODELS / "alexa", model)
    man = json.loads((model / "manifest.json").read_text())
    man["training"]["real_positives"] = _manifest([0, 1, 2], [3])["training"]["real_positives"]
    (model / "manifest.json").write_text(json.dumps(man))
    neg = tmp_path / "neg"
    neg.mkdir()
    sf.write(neg / "n.wav", np.zeros(8000, np.int16), 16000)
    base = ["eval", "--model", str(model), "--negatives", str(neg), "--no-mww"]
    assert cli.main([*base, "--folds", "test", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["positives"] == 24 and res["folds"]["selected"] == [4]
    r = res["engines"]["Earshot"]
    lo, hi = r["recall_ci"]
    assert lo <= r["recall"] <= hi
    assert r["fa_per_hour_ci"][0] == 0.0 and r["fa_per_hour_ci"][1] > 0
    assert cli.main([*base, "--folds", "all"]) == 2
    assert "trained on" in capsys.readouterr().err
    dev = fake_data / dataset.WWB / "alexa"
    assert cli.main([*base, "--positives", str(dev)]) == 2  # the folder holds used folds
    assert "--folds test" in capsys.readouterr().err


def test_intervals():
    lo, hi = evaluate.wilson(115, 117)
    assert (round(lo, 3), round(hi, 3)) == (0.940, 0.995)
    assert evaluate.wilson(0, 0) == (0.0, 1.0)
    assert evaluate.wilson(10, 10)[1] == pytest.approx(1.0)
    assert evaluate.poisson_rate(0, 1.0) == (0.0, pytest.approx(3.689, abs=1e-3))
    lo, hi = evaluate.poisson_rate(1, 3.8)
    assert (round(lo, 4), round(hi, 3)) == (0.0067, 1.466)
    with pytest.raises(ValueError):
        evaluate.poisson_rate(1, 0.0)


def test_bench_table_names_the_folds_and_the_intervals():
    eng = {"settings": "s", "recall": 0.9583, "detected": 23, "recall_ci": [0.798, 0.993],
           "false_accepts": 1, "fa_per_hour": 0.263, "fa_per_hour_ci": [0.007, 1.466],
           "heldout_false_accepts": 0, "heldout_fa_per_hour": 0.0,
           "heldout_fa_per_hour_ci": [0.0, 10.2]}
    res = {"snr_db": 10.0, "positives": 24, "negative_clips": 9, "negative_hours": 3.8,
           "heldout_clips": 3, "heldout_hours": 0.36, "engines": {"Earshot": eng},
           "folds": {"source": "wake-word-benchmark/alexa", "folds": 5, "selected": [4],
                     "train_folds": [0, 1, 2], "validation_folds": [3], "unused_folds": [4],
                     "recorded": True, "left_out": 0}}
    text = accuracy.table(res)
    assert "folds [4] of 5, never trained or validated on" in text
    assert "95.8 % (23/24; 79.8-99.3)" in text and "1 (0.26; 0.01-1.47)" in text
    res["folds"]["recorded"] = False
    assert "records no fold use" in accuracy.table(res)


def test_positives_only_benches_read_only_the_unused_folds(fake_data, tmp_path):
    """bench/noise.py and bench/level.py (evaluate.dev_side_by_side) keep the clips of the
    folds a model neither trained nor validated on, in dev_positives' order, refuse a used
    fold, and keep every clip for a model that never read real positives."""
    model = tmp_path / "model"
    shutil.copytree(MODELS / "alexa", model)
    man = json.loads((model / "manifest.json").read_text())
    man["training"].pop("real_positives", None)
    (model / "manifest.json").write_text(json.dumps(man))
    _, pos, info = evaluate.dev_side_by_side(model)
    assert len(pos) == 119 and info["selected"] == [0, 1, 2, 3, 4]  # 33.flac is damaged
    man["training"]["real_positives"] = _manifest([0, 1, 2], [3])["training"]["real_positives"]
    (model / "manifest.json").write_text(json.dumps(man))
    _, pos, info = evaluate.dev_side_by_side(model)
    assert [int(Path(name).stem) for name, _ in pos] == list(range(96, 120))
    assert info["selected"] == [4]
    with pytest.raises(evaluate.UsedFolds):
        evaluate.dev_side_by_side(model, "3")
