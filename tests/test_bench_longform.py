"""bench/longform.py: held-out voices and texts only, Poisson intervals, both engines' keys."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from earshot.train import synth, texts, voices

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_longform", ROOT / "bench" / "longform.py")
longform = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(longform)


def test_poisson_ci_is_garwoods():
    lo, hi = longform.poisson_ci(0, 1.0)
    assert lo == 0 and hi == pytest.approx(3.689, abs=1e-3)
    lo, hi = longform.poisson_ci(1, 2.0)
    assert lo == pytest.approx(0.0253 / 2, abs=1e-4) and hi == pytest.approx(5.572 / 2, abs=1e-3)
    lo, hi = longform.poisson_ci(5, 10.0)
    assert lo < 0.5 < hi and lo == pytest.approx(0.1623, abs=1e-3)
    with pytest.raises(ValueError, match="hours"):
        longform.poisson_ci(1, 0.0)


def test_bench_reads_held_out_texts_in_held_out_voices():
    got = longform.bench_specs(0, 60, seed=1)
    assert got == longform.bench_specs(0, 60, 1) and got[10:20] == longform.bench_specs(10, 10, 1)
    held = set(texts.passage_pool(longform.TEXT_SOURCES, "alexa", "heldout"))
    train = set(texts.passage_pool(texts.TEXT_SOURCES, "alexa", "train"))
    assert all(s["text"] in held and s["text"] not in train for s in got)
    assert len({s["text"] for s in got}) == 60  # no text repeats
    assert {s["engine"] for s in got} == {"espeak", "kokoro"}
    for s in got:
        if s["engine"] == "kokoro":
            assert set(s["tables"]) <= set(voices.HELDOUT_TABLES)
        else:
            assert s["voice"].partition("+")[2] in voices.HELDOUT_ESPEAK_VARIANTS


def test_run_counts_both_engines_on_the_same_blocks(tmp_path, monkeypatch):
    # fast: every passage is 2 s of quiet noise instead of speech, 4 passages per block
    def fake_render(spec):
        rng = np.random.default_rng(len(spec["text"]))
        return (rng.standard_normal(32000) * 30).astype(np.int16), 32000

    monkeypatch.setattr(synth, "render", fake_render)
    monkeypatch.setattr(longform, "BLOCK", 4)
    logs = []
    res = longform.run(0.004, ROOT / "models" / "alexa", workers=1, cache=tmp_path,
                       log=logs.append)
    assert res["passages"] == 8 and 0.004 <= res["hours"] < 0.008  # two blocks of 10 s
    assert res["voices"] == voices.count_voices(longform.bench_specs(0, 8, 1))
    for key in ("earshot", "mww"):
        assert res[f"{key}_false_accepts"] == 0 and res[f"{key}_fa_per_hour"] == 0
        lo, hi = res[f"{key}_fa_per_hour_ci95"]
        assert lo == 0 and hi == pytest.approx(3.689 / res["hours"], rel=1e-2)
    assert "cutoff" in res["earshot_settings"] and res["render_seconds_per_hour"] is not None
    again = longform.run(0.004, ROOT / "models" / "alexa", workers=1, cache=tmp_path,
                         log=logs.append)
    assert again["render_seconds"] == 0 and again["render_seconds_per_hour"] is None  # cached
    assert "cached" in logs[-3]
    assert "| Earshot |" in longform.table(res)


def test_false_accepts_name_the_passage_being_read():
    class Fires:
        def detect(self, stream):
            return [1.0, 1.2, 3.5]  # s; the first two merge

    specs = [{"engine": "espeak", "voice": "en-us+m4", "text": "one"},
             {"engine": "espeak", "voice": "en-us+f4", "text": "two"}]
    blocks = {"streams": [np.zeros(16000 * 4, np.int16)], "lengths": [[16000 * 2, 16000 * 2]],
              "specs": [specs]}
    got = longform.false_accepts(Fires(), blocks)
    assert [(f["time_s"], f["text"], f["voice"]) for f in got] == [
        (1.0, "one", "espeak:en-us+m4"), (3.5, "two", "espeak:en-us+f4")]
