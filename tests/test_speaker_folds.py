"""Real positives by speaker (earshot.train.dataset): groups, folds, the fold choice of a run."""

import numpy as np
import pytest
import soundfile as sf

from earshot import audio
from earshot.train import dataset


def _fake_dev(tmp_path, n=120):
    """A data folder whose wake-word-benchmark/alexa holds files 0..n-1 (short silence)."""
    folder = tmp_path / dataset.WWB / "alexa"
    folder.mkdir(parents=True)
    for i in range(n):
        sf.write(folder / f"{i}.flac", np.zeros(160, np.int16), 16000)
    return tmp_path


def _rule_blocks(paths):
    """File number -> its block under the rule (four files, merged ranges as one)."""
    rule = dataset.SPEAKER_RULES["alexa"]
    out = {}
    for p in paths:
        n = int(p.stem)
        out[n] = next((lo for lo, hi in rule["merge"] if lo <= n <= hi), n - n % rule["block"])
    return out


def test_groups_follow_the_rule_and_are_deterministic(tmp_path):
    root = _fake_dev(tmp_path)
    groups = dataset.dev_speakers(root)
    assert groups == dataset.dev_speakers(root)
    assert len(groups) == 26
    assert [int(p.stem) for g in groups for p in g] == list(range(120))
    sizes = sorted(len(g) for g in groups)
    assert sizes == [4] * 23 + [8, 8, 12]
    blocks = _rule_blocks(p for g in groups for p in g)
    for g in groups:  # one rule block per group, whole
        assert len({blocks[int(p.stem)] for p in g}) == 1


def test_folds_never_split_a_speaker_and_cover_every_file(tmp_path):
    root = _fake_dev(tmp_path)
    groups = dataset.dev_speakers(root)
    for k in (2, 3, 5, 7, 26):
        folds = dataset.speaker_folds(groups, k)
        assert folds == dataset.speaker_folds(groups, k)
        assert len(folds) == k and all(folds)
        flat = [p for f in folds for p in f]
        assert sorted(flat) == sorted(p for g in groups for p in g)  # disjoint and complete
        fold_of = {p: i for i, f in enumerate(folds) for p in f}
        for g in groups:
            assert len({fold_of[p] for p in g}) == 1
    folds = dataset.speaker_folds(groups, 5)
    assert [(int(f[0].stem), int(f[-1].stem)) for f in folds] == [
        (0, 23), (24, 47), (48, 71), (72, 95), (96, 119)]
    with pytest.raises(ValueError, match="folds must be"):
        dataset.speaker_folds(groups, 27)
    with pytest.raises(ValueError, match="folds must be"):
        dataset.speaker_folds(groups, 1)


def test_folder_speakers(tmp_path):
    for spk, n in (("b", 2), ("a", 3), ("c", 0)):
        (tmp_path / spk).mkdir()
        for i in range(n):
            sf.write(tmp_path / spk / f"{i}.wav", np.zeros(160, np.int16), 16000)
    groups = dataset.folder_speakers(tmp_path)
    assert [[p.parent.name for p in g] for g in groups] == [["a"] * 3, ["b"] * 2]
    sf.write(tmp_path / "loose.wav", np.zeros(160, np.int16), 16000)
    with pytest.raises(ValueError, match="outside a speaker folder"):
        dataset.folder_speakers(tmp_path)
    with pytest.raises(FileNotFoundError):
        dataset.folder_speakers(tmp_path / "missing")
    with pytest.raises(ValueError, match="no speaker rule"):
        dataset.dev_speakers(tmp_path, "hey earshot")


def test_fold_choice_is_checked_and_recorded(tmp_path):
    root = _fake_dev(tmp_path)
    rc = {"source": None, "folds": 5, "train_folds": [2, 0, 1], "validation_folds": [3]}
    rec = dataset.fold_record(rc, root=root)
    assert rec["source"] == "wake-word-benchmark/alexa"
    assert (rec["train_folds"], rec["validation_folds"], rec["unused_folds"]) == (
        [0, 1, 2], [3], [4])
    assert rec["fold_files"][4] == [f"{i}.flac" for i in range(96, 120)]
    for bad, match in (([0], "in train_folds and validation_folds"), ([5], "indices 0..4"),
                       ([3, 4], "every fold")):
        with pytest.raises(ValueError, match=match):
            dataset.check_folds(5, [0, 1, 2], bad)
    with pytest.raises(ValueError, match="repeats"):
        dataset.check_folds(5, [1, 1], [])


def test_word_end_finds_the_word_not_the_click():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(48000) * 30).astype(np.int16)  # 3 s of a quiet floor
    t = np.arange(8000) / 16000
    x[8000:16000] += (8000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)  # the word, 0.5-1 s
    x[40000:40160] += 3000  # a click at 2.5 s, after 1.5 s of floor, softer than the word
    end = dataset.word_end(x)
    assert 16000 <= end <= 16000 + 1600
    with pytest.raises(ValueError):
        dataset.word_end(np.zeros(100, np.int16))


def test_rule_matches_the_audio(data):
    """The evidence of dev_speakers, measured again: blocks of four starting at file 0 separate
    the clips of 8-107 best, every boundary the rule keeps is one (cross distance above both
    sides' own), and the boundaries inside merged groups are not."""
    paths, clips = [], []
    for p in dataset.dev_positives(data):
        try:
            clips.append(audio.load(p))
            paths.append(int(p.stem))
        except audio.AudioError:
            pass
    assert len(clips) == 117
    dist, _ = dataset.speaker_cues(clips)
    at = {n: i for i, n in enumerate(paths)}

    def gap(size, off):
        within, across = [], []
        for a in paths:
            for b in paths:
                if 8 <= a < b < 108 and b - a <= size:
                    same = (a - off) // size == (b - off) // size
                    (within if same else across).append(dist[at[a], at[b]])
        return np.mean(across) - np.mean(within)

    gaps = {(s, o): gap(s, o) for s in range(2, 9) for o in range(s)}
    assert max(gaps, key=gaps.get) == (4, 0)

    def margin(b):
        left = [n for n in range(b - 4, b) if n in at]
        right = [n for n in range(b, b + 4) if n in at]

        def inner(g):
            d = [dist[at[x], at[y]] for x in g for y in g if x < y]
            return np.mean(d) if d else -np.inf

        cross = np.mean([dist[at[x], at[y]] for x in left for y in right])
        return cross - max(inner(left), inner(right))

    groups = dataset.dev_speakers(data)
    kept = [int(g[0].stem) for g in groups[1:]]
    assert all(margin(b) > 0 for b in kept)
    assert all(margin(b) < 0 for b in (4, 112, 116))
