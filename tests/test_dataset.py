"""The negative-speech sources and their train / validation split (earshot.train.dataset)."""

import numpy as np
import pytest
import soundfile as sf
from earshot.train import dataset


def _fake_debian(tmp_path, monkeypatch, n=40):
    """DEBIAN_SPEECH pointed at temporary folders holding ``n`` short WAV files each."""
    table = {}
    for k, pkg in enumerate(dataset.DEBIAN_SPEECH):
        folder = tmp_path / pkg / "sub"
        folder.mkdir(parents=True)
        for i in range(n):
            sf.write(folder / f"{i}.wav", np.zeros(800, np.int16), 8000)
        (folder / "notes.txt").write_text("not audio")
        table[pkg] = (str(tmp_path / pkg), (".wav",))
    monkeypatch.setattr(dataset, "DEBIAN_SPEECH", table)
    return table


def test_debian_speech_is_split_like_the_shared_sources(tmp_path, monkeypatch):
    """Every audio file (and only audio) lands in exactly one part; the split is a function of
    the path, about VALIDATION_FRACTION of it validation; the root argument does not matter."""
    _fake_debian(tmp_path, monkeypatch)
    every = dataset.debian_negatives()
    assert len(every) == len(dataset.DEBIAN_SPEECH) * 40 and all(p.suffix == ".wav" for p in every)
    train = dataset.training_negatives(tmp_path, "train", sources=("debian",))
    val = dataset.training_negatives(tmp_path, "validation", sources=("debian",))
    assert list(train) == ["debian"] and list(val) == ["debian"]
    assert sorted(train["debian"] + val["debian"]) == every
    assert not set(train["debian"]) & set(val["debian"])
    assert 0.05 < len(val["debian"]) / len(every) < 0.3
    again = dataset.training_negatives(tmp_path / "elsewhere", "validation", sources=("debian",))
    assert again == val
    clips, failed = dataset.load_clips(val["debian"][:2])
    assert failed == [] and all(c.dtype == np.int16 and len(c) == 1600 for c in clips)


def test_missing_debian_package_is_named(tmp_path, monkeypatch):
    table = _fake_debian(tmp_path, monkeypatch)
    gone = "klettres-data"
    table[gone] = (str(tmp_path / "not-installed"), (".ogg",))
    with pytest.raises(FileNotFoundError, match=f"apt-get install {gone}"):
        dataset.training_negatives(tmp_path, sources=("debian",))


def test_unknown_source_and_part_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown negative sources"):
        dataset.training_negatives(tmp_path, sources=("wwb", "radio"))
    with pytest.raises(ValueError, match="part must be"):
        dataset.training_negatives(tmp_path, part="test")


def test_shared_sources_by_default(data):
    """Without ``sources`` the three shared sources come back, as before the Debian source."""
    parts = dataset.training_negatives(data)
    assert list(parts) == list(dataset.SHARED_SOURCES)
    assert all(parts[s] for s in dataset.SHARED_SOURCES)


def test_train_validation_and_heldout_negatives_are_disjoint(data):
    """The three negative sets never share a clip: training fits ``train``, chooses its cutoff
    on ``validation``, and the benches' false accepts come from the held-out clips and (for
    adaptation, bench/adapt.py) ``validation``, so a shared clip would leak into a measure."""
    train = {p for ps in dataset.training_negatives(data, "train").values() for p in ps}
    val = {p for ps in dataset.training_negatives(data, "validation").values() for p in ps}
    held = set(dataset.heldout_negatives(data))
    assert train and val and held
    assert not train & val
    assert not train & held
    assert not val & held
