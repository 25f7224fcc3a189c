"""Training with real positives through speaker folds (config ``real_positives``): off by
default without reading a clip, the chosen folds' clips in training and validation, the
record a manifest keeps (earshot.train.data, calibrate, packaging)."""

import numpy as np
import pytest
import soundfile as sf

from earshot.train import calibrate, config, data, dataset, packaging
from earshot.train.windows import Context, positive_windows

T = np.arange(8000) / 16000


def _word(f: float) -> np.ndarray:
    return (6000 * np.sin(2 * np.pi * f * T) * np.hanning(8000)).astype(np.int16)


def _setup(cfg):
    """A tiny run's data without synthesis: three synthetic positives, three synthetic
    negatives, three real negative clips for training and one for validation."""
    rng = np.random.default_rng(0)
    pos = {"audio": [_word(f) for f in (300.0, 500.0, 700.0)], "end": np.array([8000] * 3),
           "dropped": []}
    neg = {"audio": [rng.integers(-2000, 2000, 12000).astype(np.int16) for _ in range(3)]}
    real = [rng.integers(-3000, 3000, 20000).astype(np.int16) for _ in range(4)]
    negs = data.Negatives(real[:3], [], real[3:])
    return data.Speech(pos, neg, []), negs, Context(negs.train, cfg)


def _windows(cfg, negs=None):
    speech, negs0, ctx = _setup(cfg)
    ts = data.training_set(cfg, speech, negs or negs0, ctx, np.array([0, 2]), 93,
                           lambda m: None)
    return ts


def _cfg(**real):
    over = {"noise_windows": 40, "positives": {"copies": 2}}
    if real:
        over["real_positives"] = real
    return config.load_config(overrides=over)


def test_off_gives_the_same_windows_and_reads_no_clip(monkeypatch):
    """With both fold lists empty nothing of the development split is read and the windows
    are those of a config without the key, whatever its other entries say."""
    base = _windows(_cfg())

    def refuse(*a, **k):
        raise AssertionError("the development clips were read")

    monkeypatch.setattr(dataset, "fold_record", refuse)
    monkeypatch.setattr(dataset, "dev_positives", refuse)
    off = _windows(_cfg(folds=7, copies=9, source="/nowhere"))
    for a, b in ((base.x, off.x), (base.y, off.y), (base.w, off.w)):
        assert np.array_equal(a, b)
    assert data.real_positives(_cfg(), print) is None
    assert data.check_real_positives(_cfg()) is False


def test_trained_folds_add_positive_windows_after_the_synthetic_ones():
    cfg = _cfg(train_folds=[0], copies=3)
    clips = [np.concatenate([np.zeros(4000, np.int16), _word(f), np.zeros(8000, np.int16)])
             for f in (400.0, 600.0)]
    train = {"audio": clips, "end": np.array([dataset.word_end(c) for c in clips])}
    assert all(abs(int(e) - 12000) <= 1600 for e in train["end"])
    speech, negs, ctx = _setup(cfg)
    negs.positives = data.RealPositives(train, {"audio": [], "end": np.zeros(0, np.int64)},
                                        {"train_folds": [0]})
    off, on = _windows(_cfg()), _windows(cfg, negs)
    xs, ys = positive_windows(speech.pos, [0, 2], cfg, 93, ctx, int(cfg["seed"]))
    n_syn_all = sum(len(y) for y in ys)  # synthetic positives and their early negatives
    n_syn = int(sum(y.sum() for y in ys))
    n_real = 2 * 3 * 3  # clips x real copies x shifts, no early negative
    assert np.array_equal(on.x[:n_syn_all], off.x[:n_syn_all])
    assert on.y[n_syn_all:n_syn_all + n_real].tolist() == [1] * n_real
    assert np.array_equal(on.x[n_syn_all + n_real:], off.x[n_syn_all:])
    assert int(on.y.sum()) == n_syn + n_real


def test_bad_fold_choices_fail_before_any_work(tmp_path):
    for real, match in (({"train_folds": [0], "validation_folds": [0]}, "in train_folds"),
                        ({"train_folds": [0, 1, 2, 3, 4]}, "every fold"),
                        ({"train_folds": [0], "copies": 0}, "copies"),
                        ({"train_folds": [5]}, "0..4")):
        with pytest.raises(ValueError, match=match):
            data.synthesize(_cfg(**real), tmp_path, lambda m: None)
    cfg = _cfg(train_folds=[0])
    cfg["wake_word"] = "hey earshot"
    with pytest.raises(ValueError, match="no speaker rule"):
        data.synthesize(cfg, tmp_path, lambda m: None)


def _fake_data(tmp_path, monkeypatch):
    """EARSHOT_DATA at a folder whose alexa clips 0..119 are short words (file 33 damaged)."""
    (tmp_path / "README.md").write_text("fake")
    folder = tmp_path / dataset.WWB / "alexa"
    folder.mkdir(parents=True)
    for i in range(120):
        clip = np.concatenate([np.zeros(3200, np.int16), _word(300.0 + i),
                               np.zeros(3200, np.int16)])
        sf.write(folder / f"{i}.flac", clip, 16000)
    (folder / "33.flac").write_bytes(b"fLaC not really")
    monkeypatch.setenv("EARSHOT_DATA", str(tmp_path))
    return folder


def test_real_positives_reads_only_the_chosen_folds_and_records_all(tmp_path, monkeypatch):
    _fake_data(tmp_path, monkeypatch)
    cfg = _cfg(train_folds=[1, 0], validation_folds=[3])
    rp = data.real_positives(cfg, lambda m: None)
    rec = rp.record
    assert (rec["train_folds"], rec["validation_folds"], rec["unused_folds"]) == (
        [0, 1], [3], [2, 4])
    assert (rec["train_clips"], rec["train_unreadable"]) == (47, 1)
    assert (rec["validation_clips"], rec["validation_unreadable"]) == (24, 0)
    assert rec["fold_files"][3][0] == "72.flac" and len(rec["fold_files"][3]) == 24
    assert [len(c) for c in rp.validation["audio"]] == rp.validation["end"].tolist()
    assert all(0 < e <= len(c) for c, e in zip(rp.train["audio"], rp.train["end"]))
    speech, negs, ctx = _setup(cfg)
    negs.positives = rp
    ts = data.training_set(cfg, speech, negs, ctx, np.array([0, 2]), 93, lambda m: None)
    val = data.validation_set(cfg, speech, negs, ctx, np.array([1]))
    assert val.real is rp.validation
    summary = data.stats(cfg, speech, negs, ts, val)
    assert summary["real_positives"]["unused_folds"] == [2, 4]


class _RowScorer:
    """Records the rows validation_probs asks for; probability 1 everywhere."""

    def __init__(self):
        self.rows = []

    def at_rows(self, feats, rows):
        self.rows.append((len(feats), np.asarray(rows)))
        return np.ones(len(rows))


def test_real_validation_positives_are_scored_over_the_whole_clip():
    cfg = _cfg()
    ctx = Context([], cfg)  # silence before each clip
    clip = np.concatenate([_word(400.0), np.zeros(16000, np.int16), _word(500.0)])
    cache = {"audio": [clip], "end": np.array([len(clip)])}
    sc = _RowScorer()
    calibrate.validation_probs(None, cache, [0], 93, 6, ctx, 1, cfg, scorer=sc, whole=True,
                               stream=31)
    n, rows = sc.rows[0]
    assert np.all(np.diff(rows) == 6) and np.all((rows - 92) % 6 == 0)
    pre_rows = n - len(clip) // 160 - 50  # about where the clip starts (context, speed aside)
    assert rows[0] >= 92 and rows[0] <= pre_rows + 60
    assert rows[-1] >= n - 50 - 7  # up to 400 ms past the clip's end (its 8000-sample tail)
    sc2 = _RowScorer()
    calibrate.validation_probs(None, {"audio": [clip], "end": np.array([8000])}, [0], 93, 6,
                               ctx, 1, cfg, scorer=sc2)
    assert len(sc2.rows[0][1]) < len(rows)  # the synthetic rule: -300..+400 ms around the end


def test_recall_at_and_the_card_rows():
    det = {"validation_model": "float"}
    probs = [np.array([0.1, 0.9, 0.95, 0.9]), np.array([0.2, 0.3, 0.2])]
    assert calibrate.recall_at(probs, 0.8, 3, det) == 0.5
    assert calibrate.recall_at([], 0.8, 3, det) == 0.0
    t = {"validation_real_recall": 0.875,
         "real_positives": {"source": "wake-word-benchmark/alexa", "folds": 5,
                            "train_folds": [0, 1, 2], "validation_folds": [3],
                            "unused_folds": [4], "train_clips": 69, "validation_clips": 24}}
    (name, text), = packaging._real_positive_rows(t)
    assert "wake-word-benchmark/alexa" in name and "[4] never used" in text
    assert "87.5 %" in text
    assert packaging._real_positive_rows({}) == []
    assert packaging._real_note(_cfg()) == "synthetic only, "
    assert "[3] validated" in packaging._real_note(_cfg(train_folds=[0], validation_folds=[3]))
