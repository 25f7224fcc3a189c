"""``earshot data synth``: a tiny data set is reproducible from its seed and its index is true."""

import json

import numpy as np
import pytest
import soundfile as sf

from earshot import cli
from earshot.train import synth


def _synth(out, workers, capsys):
    argv = [
        "data",
        "synth",
        "--wake-word",
        "alexa",
        "--out",
        str(out),
        "--positives",
        "3",
        "--negatives",
        "2",
        "--passages",
        "1",
        "--seed",
        "11",
        "--workers",
        str(workers),
    ]
    assert cli.main(argv) == 0
    assert "positives" in capsys.readouterr().out
    return json.loads((out / "index.json").read_text())


@pytest.mark.slow
def test_synth_folder_is_reproducible_and_indexed(tmp_path, capsys):
    a = _synth(tmp_path / "a", 2, capsys)
    b = _synth(tmp_path / "b", 1, capsys)  # the worker count does not change the clips
    assert a == b
    assert a["wake_word"] == "alexa" and a["seed"] == 11 and a["sample_rate_hz"] == 16000
    # 3 positive specs: each one is either written or listed as dropped, with its reason.
    assert len(a["positives"]) + len(a["dropped"]) == 3
    assert len(a["negatives"]) == 2
    kept = [e["spec"] for e in a["positives"]]
    specs = synth.positive_specs(3, 11, "alexa")
    assert kept == [s for s in specs if s in kept]  # in spec order
    assert sorted(map(json.dumps, kept + [d["spec"] for d in a["dropped"]])) == sorted(
        map(json.dumps, specs)
    )
    assert [e["spec"] for e in a["negatives"]] == synth.negative_specs(2, 11)
    assert [e["spec"] for e in a["passages"]] == synth.passage_specs(1, 11, "alexa")
    for kind in ("positives", "negatives", "passages"):
        on_disk = sorted(p.name for p in (tmp_path / "a" / kind).glob("*.wav"))
        assert on_disk == sorted(e["file"].split("/")[1] for e in a[kind])
        for e in a[kind]:
            x, rate = sf.read(tmp_path / "a" / e["file"], dtype="int16")
            y, _ = sf.read(tmp_path / "b" / e["file"], dtype="int16")
            assert rate == 16000 and x.ndim == 1 and len(x) > 1600
            assert np.array_equal(x, y)
            if kind == "positives":
                assert 0 < e["end"] <= len(x)
                assert e["spec"]["text"].strip(" !?.,").lower() == "alexa"


def test_synth_rejects_bad_arguments(tmp_path, capsys):
    argv = [
        "data",
        "synth",
        "--wake-word",
        "alexa",
        "--out",
        str(tmp_path),
        "--positives",
        "0",
        "--negatives",
        "0",
    ]
    assert cli.main(argv) == 2
    assert "--positives, --negatives and --passages" in capsys.readouterr().err
    argv = ["data", "synth", "--wake-word", "  ", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "--wake-word is empty" in capsys.readouterr().err
    assert not (tmp_path / "index.json").exists()


def test_other_wake_words_skip_the_alexa_only_filter():
    # microWakeWord's alexa model rejects "hey earshot": the filter must not use it there,
    # but the phrase-independent checks still apply.
    spec = {
        "engine": "espeak",
        "voice": "en-us",
        "rate": 160,
        "pitch": 50,
        "gap": 0,
        "text": "hey earshot",
    }
    _, x, end, why = synth._render_job((0, spec, True))
    assert why is None and x is not None and 0 < end <= len(x)
    assert synth.check_positive(x, end, use_mww=True).startswith("microWakeWord rejects")
    silent = dict(spec, text="")
    assert synth._render_job((1, silent, True))[1] is None


def test_new_wake_word_gets_a_card_with_measured_numbers(tmp_path):
    from earshot import train
    from earshot.model import package as modelpkg
    from earshot.paths import MODELS

    cfg = train.load_config(None, {"wake_word": "hey earshot"})
    card = tmp_path / "README.md"
    card.write_text(train.new_card("hey earshot", cfg))
    man, _ = modelpkg.load(MODELS / "alexa")  # any package's manifest has the numbers
    train.write_card_numbers(card, man)
    text = card.read_text()
    assert text.startswith('# Model card: Earshot "hey earshot"')
    assert f"| blob | {man['blob_bytes']:,} B" in text
    assert f"| MACs per 30 ms (VAD open) | {man['macs_per_30ms']:,} |" in text
