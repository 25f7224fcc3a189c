"""A custom wake word anywhere: confusables per phrase, negatives that never say the phrase,
training without the shared recordings, the quick preset's loud failure and short summary,
`data synth` folders that `train` reads."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from earshot import cli
from earshot.paths import ROOT, DataMissing
from earshot.train import (config, confusables, data, dataset, packaging, pipeline, specs,
                           synth, texts)


def _said(phrase: str) -> re.Pattern:
    return confusables.text_rule(phrase)


def test_edit_distance_and_phonemes():
    assert confusables.edit_distance("kitten", "sitting") == 3
    assert confusables.edit_distance(("n", "oʊ"), ("n", "oʊ", "v", "ə")) == 2
    assert confusables.edit_distance("abcdef", "a", limit=2) == 3
    assert confusables.phonemes("hey nova") == ("h", "eɪ", "n", "oʊ", "v", "ə")
    assert confusables.homophone("hey", "hay") and not confusables.homophone("hey", "he")


def test_confusables_are_phoneme_neighbours_of_the_phrase():
    got = confusables.confusables("hey nova")
    assert got == confusables.confusables("Hey  Nova")  # deterministic, case and space free
    assert got[:2] == ("hey", "nova")  # partial phrases first
    assert 20 <= len(got) <= confusables.MAX_CONFUSABLES
    assert "hay nova" not in got  # sounds exactly like the wake word: never a negative
    target = confusables.phonemes("hey nova")
    swaps = got[2:]
    assert any(p.startswith("hey ") for p in swaps) and any(p.endswith(" nova") for p in swaps)
    for phrase in swaps:
        d = confusables.edit_distance(confusables.phonemes(phrase), target)
        assert 1 <= d <= 2, (phrase, d)
    near = confusables.near_confusables("hey nova")
    assert near and set(near) <= set(got) and "hey" not in near
    assert "computers" in confusables.confusables("computer")
    # alexa keeps its hand-made list
    assert confusables.confusables("alexa") == specs.CONFUSABLES


def test_negatives_never_say_the_phrase():
    conf, sentences = specs.negative_texts("computer")
    rule = _said("computer")
    assert "computer, open the pod bay doors" in specs.SENTENCES
    assert sentences and not any(rule.search(s.lower()) for s in sentences)
    assert not any(rule.search(c.lower()) for c in conf)
    jarvis = specs.negative_texts("hey jarvis")[1]
    assert "jarvis, what is the status" in jarvis  # "jarvis" alone is not "hey jarvis"
    assert not any(_said("okay nabu").search(s) for s in specs.negative_texts("okay nabu")[1])
    for s in specs.negative_specs(200, 3, wake_word="computer"):
        assert not rule.search(s["text"].lower()), s["text"]
    assert {s["text"] for s in specs.negative_specs(200, 3, wake_word="computer")} & set(conf)
    # alexa: the lists (and specs) of earlier versions
    assert specs.negative_texts("alexa") == (specs.CONFUSABLES, specs.SENTENCES)
    assert specs.negative_specs(50, 1) == specs.negative_specs(50, 1, wake_word="alexa")


def test_passages_leave_out_the_phrase_and_its_near_confusables():
    rule = texts.forbidden("hey nova")
    assert rule.search("so i said, hey, nova! and left")
    assert rule.search("they nova") and not rule.search("a nova exploded")
    pool = texts.passage_pool(("fortunes",), "computer", "all")
    assert pool and not any(re.search(r"\bcomputers?\b", p.lower()) for p in pool)
    assert len(pool) < len(texts.passage_pool(("fortunes",), "hey nova", "all"))
    # a config of another phrase reads its passages through that filter
    cfg = config.load_config(None, {"wake_word": "computer"})
    assert texts.for_config(cfg) == pool
    assert texts.for_config(config.load_config(None)) is None  # alexa: as before


def test_real_negative_folders_that_say_the_phrase_are_left_out():
    assert dataset.clashing_folders("alexa") == []
    assert dataset.clashing_folders("computer") == [
        "wwb/computer", "precise/computer", "precise/heycomputer"]
    assert "wwb/jarvis" in dataset.clashing_folders("hey jarvis")
    assert dataset.clashing_folders("wildfire") == ["wuw"]
    assert dataset.clashing_folders("hey nova") == []


def test_training_negatives_without_a_folder(data):
    every = dataset.training_negatives()
    assert every == dataset.training_negatives(without=dataset.clashing_folders("alexa"))
    cut = dataset.training_negatives(without=dataset.clashing_folders("computer"))
    assert cut["wuw"] == every["wuw"] and len(cut["wwb"]) < len(every["wwb"])
    assert not any("computer" in p.parts for s in cut.values() for p in s)
    assert any("jarvis" in p.parts for p in cut["wwb"])


def test_without_shared_recordings_the_sources_fall_back_before_rendering(monkeypatch):
    monkeypatch.setenv("EARSHOT_DATA", "/nonexistent")
    lines = []
    cfg = config.load_config(None, {"wake_word": "hey nova",
                                    "synth_passages": {"count": 10}})
    names, fallback = data.negative_sources(cfg, lines.append)
    assert fallback and "wwb" not in names
    assert names == (["debian"] if dataset.debian_negatives(installed_only=True) else [])
    assert "shared recordings not found" in lines[0]
    with pytest.raises(DataMissing):  # real positives need the recordings: fails first
        data.negative_sources(config.load_config(None, {"real_positives": {
            "train_folds": [0]}}), lines.append)
    monkeypatch.setattr(dataset, "DEBIAN_SPEECH", {})
    monkeypatch.setenv("EARSHOT_CORPORA", "/nonexistent")
    assert data.negative_sources(cfg, lines.append) == ([], True)
    with pytest.raises(DataMissing, match="no negative speech"):
        data.negative_sources(config.load_config(None, {"wake_word": "hey nova"}), lines.append)


def test_without_real_negatives_passages_validate():
    cfg = config.load_config(None, {"synth_passages": {"count": 10}})
    clips = [np.full(100, k, np.int16) for k in range(10)]
    speech = data.Speech({}, {}, list(clips))
    negs = data.Negatives([], [], [])
    data.split_passages(cfg, speech, negs, lambda m: None)
    assert len(negs.validation) == 2 and len(speech.passages) == 8
    assert {int(c[0]) for c in negs.validation + speech.passages} == set(range(10))
    real = data.Negatives([], [], [clips[0]])
    kept = data.Speech({}, {}, list(clips))
    data.split_passages(cfg, kept, real, lambda m: None)
    assert len(kept.passages) == 10  # real validation clips: the passages stay
    with pytest.raises(ValueError, match="no validation negatives"):
        data.split_passages(cfg, data.Speech({}, {}, []), data.Negatives([], [], []),
                            lambda m: None)


def _folder(tmp_path, wake_word="hey nova"):
    """A folder as `earshot data synth` writes it, with noise for audio."""
    rng = np.random.default_rng(0)
    index = {"wake_word": wake_word, "seed": 1, "sample_rate_hz": 16000, "positives": [],
             "negatives": [], "passages": [], "dropped": []}
    for kind, n in (("positives", 3), ("negatives", 2), ("passages", 1)):
        (tmp_path / kind).mkdir(exist_ok=True)
        for k in range(n):
            name = f"{kind}/{kind[:3]}_{k:05d}.wav"
            sf.write(tmp_path / name, (rng.standard_normal(8000) * 1000).astype(np.int16),
                     16000, subtype="PCM_16")
            entry = {"file": name, "spec": {"engine": "espeak", "voice": f"v{k}",
                                            "text": wake_word}}
            if kind == "positives":
                entry["end"] = 6000
            index[kind].append(entry)
    (tmp_path / "index.json").write_text(json.dumps(index))
    return tmp_path


def test_train_reads_a_data_synth_folder(tmp_path):
    folder = _folder(tmp_path)
    cfg = config.load_config(None, {"wake_word": "Hey Nova"})
    speech = data.from_folder(folder, cfg, lambda m: None)
    assert len(speech.pos["audio"]) == 3 and list(speech.pos["end"]) == [6000] * 3
    assert len(speech.neg["audio"]) == 2 and len(speech.passages) == 1
    assert speech.pos["audio"][0].dtype == np.int16 and speech.voices == 3
    with pytest.raises(ValueError, match="clips of 'hey nova', but the wake word is 'alexa'"):
        data.from_folder(folder, config.load_config(), lambda m: None)
    with pytest.raises(ValueError, match="no readable index.json"):
        data.from_folder(tmp_path / "positives", cfg, lambda m: None)


def test_progress_is_logged_without_a_terminal(tmp_path):
    spec = {"engine": "flite", "voice": "slt", "stretch": 1.0, "f0": 120, "text": "hey nova"}
    lines = []
    synth.generate([spec] * 3, tmp_path / "p", check=False, progress="positives",
                   log=lines.append)
    assert "positives: 3/3 rendered" in lines


def test_quick_preset_and_the_recall_floor():
    cfg = config.load_config(ROOT / "configs" / "quick.json", {"wake_word": "hey nova"})
    assert cfg["min_validation_recall"] == 0.9 and cfg["distill"]["width"] == 0
    assert config.DEFAULT_CONFIG["min_validation_recall"] is None
    assert pipeline.recall_problem({"validation_recall": 0.95}, cfg) is None
    assert "0.500 is below 0.9" in pipeline.recall_problem({"validation_recall": 0.5}, cfg)
    assert pipeline.recall_problem({"validation_recall": 0.0}, config.DEFAULT_CONFIG) is None


def _fake_train(recall):
    def fake(cfg, out, log=print, synth_dir=None, **kw):
        log("training")
        return {"validation_recall": recall, "validation_false_accepts": 0,
                "validation_negative_hours": 0.5, "cutoff": 0.9, "window": 4,
                "synthetic_positives": 10, "total_seconds": 60.0,
                "wake_word": cfg["wake_word"], "min": cfg["min_validation_recall"]}
    return fake


def test_cli_fails_loudly_when_recall_is_low(monkeypatch, tmp_path, capsys):
    from earshot import train

    monkeypatch.setattr(train, "train", _fake_train(0.4))
    argv = ["train", "--preset", "quick", "--wake-word", "hey  nova", "--out", str(tmp_path)]
    assert cli.main(argv) == 3
    out, err = capsys.readouterr()
    assert "validation: recall 0.400" in out and len(out.splitlines()) <= 6
    assert "not usable: validation recall 0.400 is below 0.9" in err
    monkeypatch.setattr(train, "train", _fake_train(0.95))
    assert cli.main(argv + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["wake_word"] == "hey nova" and summary["min"] == 0.9
    assert cli.main(["train", "--preset", "nope"]) == 2
    assert "no preset 'nope': choose one of" in capsys.readouterr().err


def test_manifest_carries_the_validation_numbers(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    summary = {"validation_recall": 0.93, "validation_false_accepts": 1,
               "validation_negative_hours": 0.7, "validation_model": "int8"}
    man = packaging.add_validation(tmp_path, {"schema": 1}, summary)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert man == on_disk and on_disk["validation"]["recall"] == 0.93
    assert packaging.add_validation(tmp_path, {"schema": 1}, {}) == {"schema": 1}


@pytest.mark.slow
def test_train_a_new_phrase_without_shared_recordings(tmp_path):
    """The smoke config for "hey nova" with EARSHOT_DATA pointing nowhere, through the CLI
    without a terminal: it trains on synthetic and Debian speech, logs its progress, writes
    the validation numbers, and its negatives never say the phrase."""
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"extends": str(ROOT / "configs" / "smoke.json"),
                               "distill": {"width": 0, "clean_targets": False,
                                           "students": 1, "student_mining": 0},
                               "qat": {"epochs": 0}}))
    env = {**os.environ, "EARSHOT_DATA": "/nonexistent", "EARSHOT_BUILD": str(tmp_path / "b")}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "earshot"), "train", "--config", str(cfg),
         "--wake-word", "hey nova", "--out", str(tmp_path / "pkg")],
        capture_output=True, text=True, env=env, timeout=1500, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "shared recordings not found" in res.stderr
    assert re.search(r"positives: \d+/\d+ rendered", res.stderr)
    man = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert 0.0 <= man["validation"]["recall"] <= 1.0 and man["wake_word"] == "hey nova"
    assert man["training"]["real_negative_sources"] == ["debian"]
    assert len(res.stdout.splitlines()) <= 6 and "validation: recall" in res.stdout
    neg = list((tmp_path / "b" / "synth").glob("hey_nova-neg-s1*.npz"))
    assert neg and not any(_said("hey nova").search(s["text"].lower())
                           for f in neg for s in synth.load_cache(f)["specs"])
