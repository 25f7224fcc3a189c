"""Smoke training: a tiny config end to end; the blob, the .tflite and the C engine agree;
teacher caching, later students and seed selection on the same run; the config files."""

import json
from pathlib import Path

import numpy as np
import pytest
from earshot import core, train
from earshot.model import package as modelpkg
from earshot.train import arch, pipeline, synth


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, data):
    """Train configs/smoke.json (a few clips, one epoch) into a temporary package."""
    from earshot.paths import ROOT

    tmp = tmp_path_factory.mktemp("smoke")
    cfg = train.load_config(ROOT / "configs" / "smoke.json")
    summary = train.train(cfg, tmp / "pkg", log=lambda m: None, cache_dir=tmp / "cache",
                          stage_dir=tmp / "stage")
    return tmp, summary


@pytest.mark.slow
def test_package_is_complete(smoke):
    """Every file of a trained package and every manifest field against the blob and the
    summary: one checklist, long because the package has that many parts."""
    from earshot.model import Model

    tmp, summary = smoke
    man, blob = modelpkg.load(tmp / "pkg")
    info = Model(blob).info
    assert man["input_frames"] == info["input_frames"] == arch.receptive_field()
    assert man["output_stride"] == arch.output_stride()
    assert man["engine_bytes"] == info["engine_bytes"] > 0
    assert man["macs_per_30ms"] == arch.macs_per_output() * 3 // arch.output_stride()
    assert abs(man["cutoff"] - summary["cutoff"]) <= 0.5 / 255 + 1e-9
    assert man["window"] == summary["window"] and man["refractory"] == summary["refractory"]
    assert summary["synthetic_positives"] >= 2 and summary["windows"] > 100
    assert json.loads((tmp / "stage" / "summary.json").read_text()) == summary
    # The default detector windows were each tried on validation; the chosen one is packaged.
    rows = summary["window_search"]
    assert [r["window"] for r in rows] == train.DEFAULT_CONFIG["detector"]["window"]
    assert {"window": summary["window"], "cutoff": summary["cutoff"]} in [
        {"window": r["window"], "cutoff": r["cutoff"]} for r in rows]
    val = np.load(tmp / "stage" / "validation_probs.npz")
    assert val["pos"].size == val["pos_lengths"].sum() and float(val["hours"]) > 0
    probs = [k for k in val.files if k == "pos" or k.startswith("neg_")]
    assert probs and all(np.all((val[k] >= 0) & (val[k] <= 1)) for k in probs)
    # configs/smoke.json asks for normalised input (es_norm) and a 1.5x-wide distillation teacher.
    assert man["input_norm"] == info["input_norm"] == summary["input_norm"] == 1
    assert info["format_version"] == 2 and man["min_earshot_version"] == "0.2.0"
    t_arch = train.teacher_arch(arch.DEFAULT_ARCH, 1.5)
    assert summary["teacher_macs_per_30ms"] == (
        arch.macs_per_output(t_arch) * 3 // arch.output_stride()) > man["macs_per_30ms"]
    assert 0.0 <= summary["teacher_train_accuracy"] <= 1.0  # one epoch: any value
    assert summary["qat_epochs"] == 1
    assert summary["channel_dropout"] == 0.1  # the student's; the teacher's is 0.0
    # ... and the Debian speech source, two noisy copies of the real negatives, a train seed
    assert summary["real_negative_sources"] == ["debian", "precise", "wuw", "wwb"]
    # clean + 2 noisy (no augmented copy), then the TTS passages: augmented + 1 noisy
    assert summary["negative_streams"] == 5
    assert summary["synth_passages"] == 3 and summary["synth_passage_hours"] > 0
    # ... with the versions of what rendered the synthetic audio (TTS engines ran: installed)
    assert set(summary["synth_versions"]) == set(synth.SYNTH_DEBS + synth.SYNTH_DISTS)
    assert summary["synth_versions"]["numpy"] == np.__version__
    assert summary["cpu"] == synth.cpu_info()  # ... and the CPU (its kernels change results)
    assert summary["room_rirs"] == 3 and summary["clip_fraction"] == 0.2
    assert summary["peak_dbfs"] == [-35.0, 0.0]  # training clips up to full scale
    assert summary["train_seed"] == 7
    assert summary["teachers"] == 2  # an ensemble of two teachers
    # ... clean targets for the noisy half of the positive copies, SpecAugment masks
    n_pos_windows = summary["synthetic_positives"] * 0.9 * 3  # (2 shifts + 1 early) per copy
    assert 0 < summary["clean_target_windows"] < n_pos_windows
    assert summary["student_mining"] == 1
    assert summary["weight_average"] == {"momentum": 0.9, "bn_batches": 3}
    assert summary["teacher_cache"] == "saved"  # train_seed is set: the teachers are kept
    # ... and two students of the same teachers: the one validation ranks first is packaged,
    # with the validation probabilities that chose its detector settings.
    from earshot.paths import ROOT

    sel = summary["student_selection"]
    assert summary["students"] == 2 and [r["student"] for r in sel] == [0, 1]
    best = max(sel, key=train.validation_rank)
    assert summary["student"] == best["student"]
    assert [summary[k] for k in ("validation_recall", "validation_false_accepts", "cutoff",
                                 "window")] == [best[k] for k in ("validation_recall",
                                 "validation_false_accepts", "cutoff", "window")]
    pos = np.split(val["pos"], np.cumsum(val["pos_lengths"])[:-1])
    neg = [val[k] for k in val.files if k.startswith("neg_")]
    again = train.choose_detector(pos, neg, float(val["hours"]),
                                  train.load_config(ROOT / "configs" / "smoke.json")["detector"],
                                  arch.output_stride(), lambda m: None)
    assert (again[0], again[1], round(again[2], 4), again[3]) == (
        summary["window"], summary["cutoff"], summary["validation_recall"],
        summary["validation_false_accepts"])
    assert summary["spec_augment"] == {"freq_masks": 1, "freq_max_bins": 4, "time_masks": 1,
                                       "time_max_frames": 5}
    # Validation scored the int8 model through the C core (the default): uint8 probabilities;
    # the float model's choice is kept beside it for comparison.
    assert summary["validation_model"] == "int8"
    assert all(np.array_equal(val[k] * 255, np.round(val[k] * 255)) for k in probs)
    assert [r["window"] for r in summary["float_window_search"]] == [r["window"] for r in rows]
    # The new model card names what the config used, and its numbers block the measured data.
    card = (tmp / "pkg" / "README.md").read_text()
    assert "3 TTS passages" in card and "3 simulated rooms" in card and "clipping (20 %)" in card
    assert f"{summary['synth_passages']} TTS passages ({summary['synth_passage_hours']:.2f} h)" \
        in card


@pytest.mark.slow
def test_tflm_equals_c_engine(smoke):
    """The int8 .tflite in TFLite Micro and the Earshot engine give identical logits."""
    from earshot.model import Engine, Model
    from tflite_micro.python.tflite_micro import runtime

    tmp, _ = smoke
    man, blob = modelpkg.load(tmp / "pkg")
    tflm = runtime.Interpreter.from_bytes((tmp / "pkg" / "model.tflite").read_bytes())
    engine = Engine(Model(blob))
    frames = man["input_frames"]
    x, end = synth.render({"engine": "espeak", "voice": "en-gb", "rate": 150, "pitch": 40,
                           "gap": 0, "text": "alexa, play some music"})
    feats = core.model_features(np.concatenate([np.zeros(16000, np.int16), x]),
                                man["input_norm"])
    rows = list(range(frames - 1, len(feats), 7))
    assert len(rows) >= 10
    c_out, tflm_out = [], []
    for r in rows:
        window = feats[r - frames + 1 : r + 1]
        engine.reset()
        _, logits = engine.run(window)
        c_out.append(int(logits[-1]))
        tflm.set_input(window[None, :, None, :], 0)
        tflm.invoke()
        tflm_out.append(int(tflm.get_output(0).ravel()[0]))
    assert c_out == tflm_out
    assert len(set(c_out)) > 1  # not a constant output


@pytest.mark.slow
def test_int8_validation_scores_are_the_device_detectors(smoke):
    """Int8Scorer gives, at every model output, the probability the C detector (VAD off)
    reports for the same audio, and at chosen rows the same as on the whole stream."""
    from earshot.core import Detector
    from earshot.model import Engine, Model

    tmp, _ = smoke
    man, blob = modelpkg.load(tmp / "pkg")
    cfg = train.load_config(overrides={"input_norm": man["input_norm"]})
    frames, stride = man["input_frames"], man["output_stride"]
    scorer = train.Int8Scorer((tmp / "pkg" / "model.tflite").read_bytes(), cfg, frames, stride)
    x, _ = synth.render({"engine": "espeak", "voice": "en-us", "rate": 160, "pitch": 50,
                         "gap": 0, "text": "alexa, what time is it"})
    audio = np.concatenate([np.zeros(8000, np.int16), x, np.zeros(8000, np.int16)])
    p = scorer.stream(train.inputs(audio, cfg))
    device = Detector(Model(blob), vad=False).run(audio).probs
    hops = np.arange(frames - 1, len(device), stride)
    assert len(p) == len(hops) > 10
    assert np.array_equal(np.round(p * 255).astype(np.uint8), device[hops])
    # ... from the engine's int8 logits, which vary (the one-epoch smoke model's uint8
    # probabilities may all round to one value)
    _, logits = Engine(Model(blob)).run(train.inputs(audio, cfg))
    assert len(set(logits.tolist())) > 1
    assert np.array_equal(p, scorer.table[logits.astype(np.int16) + 128])
    rows = hops[3:9:2]
    assert np.array_equal(scorer.at_rows(train.inputs(audio, cfg), rows), p[3:9:2])
    with pytest.raises(ValueError, match="rows must be"):
        scorer.at_rows(train.inputs(audio, cfg), [frames])
    with pytest.raises(ValueError, match="frames"):
        train.Int8Scorer((tmp / "pkg" / "model.tflite").read_bytes(), cfg, frames + 1, stride)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'epochz'"):
        train.load_config(overrides={"epochz": 3})
    with pytest.raises(ValueError, match=r"unknown key mining\.'topk'"):
        train.load_config(overrides={"mining": {"topk": 3}})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="cannot read config"):
        train.load_config(bad)


def test_config_extends(tmp_path):
    """A candidate is a few keys on top of another config file, followed to any depth."""
    (tmp_path / "base.json").write_text('{"epochs": 3, "mining": {"top_k": 7}}')
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "mid.json").write_text('{"extends": "../base.json", "mining": {"epochs": 2}}')
    (sub / "top.json").write_text('{"extends": "mid.json", "comment": "x", "epochs": 4}')
    cfg = train.load_config(sub / "top.json")
    assert cfg["epochs"] == 4
    assert (cfg["mining"]["top_k"], cfg["mining"]["epochs"]) == (7, 2)
    assert cfg["seed"] == train.DEFAULT_CONFIG["seed"]
    (sub / "loop.json").write_text('{"extends": "loop.json"}')
    with pytest.raises(ValueError, match="extends itself"):
        train.load_config(sub / "loop.json")
    (sub / "typo.json").write_text('{"extends": "../base.json", "epochz": 1}')
    with pytest.raises(ValueError, match=r"typo\.json: config: unknown key 'epochz'"):
        train.load_config(sub / "typo.json")
    (sub / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="a config is a JSON object"):
        train.load_config(sub / "list.json")
    cfg = train.load_config(overrides={"epochs": 2, "mining": {"rounds": 0}})
    assert cfg["epochs"] == 2 and cfg["mining"]["top_k"] == train.DEFAULT_CONFIG["mining"]["top_k"]
    for distill in ({"students": 2}, {"width": 2, "students": 0}, {"width": 2, "students": 1.5}):
        with pytest.raises(ValueError, match=r"distill\.students"):
            train.train(train.load_config(overrides={"distill": distill}), tmp_path / "out",
                        log=lambda m: None, cache_dir=tmp_path / "cache")
    for key, bad in (("first_student", -1), ("first_student", 1.0), ("student_epochs", 0),
                     ("student_epochs", True), ("student_epochs", "30")):
        with pytest.raises(ValueError, match=rf"distill\.{key} must be an int"):
            train.train(train.load_config(overrides={"distill": {"width": 2, key: bad}}),
                        tmp_path / "out", log=lambda m: None, cache_dir=tmp_path / "cache")
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"distill\.mixup must be a number in \[0, 1\]"):
            train.train(train.load_config(overrides={"distill": {"width": 2, "mixup": bad}}),
                        tmp_path / "out", log=lambda m: None, cache_dir=tmp_path / "cache")
    for key, v in (("first_student", 2), ("student_epochs", 30), ("mixup", 0.5)):
        # students of no teacher
        with pytest.raises(ValueError, match=rf"distill\.{key} .*needs a teacher"):
            train.train(train.load_config(overrides={"distill": {key: v}}),
                        tmp_path / "out", log=lambda m: None, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before any synthesis
    with pytest.raises(ValueError, match="detector.validation_model"):
        train.train(train.load_config(overrides={"detector": {"validation_model": "int4"}}),
                    tmp_path / "out", log=lambda m: None, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    for wa in ({"momentum": 1.0}, {"momentum": -0.1}, {"momentum": "0.9"},
               {"momentum": 0.9, "bn_batches": 0}, {"bn_batches": 2.5}):
        with pytest.raises(ValueError, match=r"weight_average\."):
            train.train(train.load_config(overrides={"weight_average": wa}), tmp_path / "out",
                        log=lambda m: None, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    for aug in ({"room_rirs": -1}, {"clip_fraction": 1.5}):
        with pytest.raises(ValueError, match="augment.room_rirs"):
            train.Context([], train.load_config(overrides={"augment": aug}))
    for peak in ([-6, -35], [-10, 2], "loud"):
        with pytest.raises(ValueError, match=r"config: augment\.peak_dbfs"):
            train.Context([], train.load_config(overrides={"augment": {"peak_dbfs": peak}}))
    for alpha in ([2, 0], [-5, 0], "blue"):
        with pytest.raises(ValueError, match=r"config: augment\.noise_alpha"):
            train.Context([], train.load_config(overrides={"augment": {"noise_alpha": alpha}}))
    for hf in ({"p": -0.1}, {"db": [-3, 3]}, {"hz": [0, 4000]}):
        with pytest.raises(ValueError, match=r"config: augment\.hf_shelf"):
            train.Context([], train.load_config(overrides={"augment": {"hf_shelf": hf}}))


@pytest.mark.slow
def test_a_run_with_the_same_teachers_loads_them_and_trains_the_same_students(smoke):
    """The smoke config again on the same cache: the teachers and their mined windows come
    from the cache instead of training, and every student, the package included, is the
    same to the byte (the students' seeds do not depend on the teachers' training)."""
    from earshot.paths import ROOT

    tmp, first = smoke
    lines = []
    cfg = train.load_config(ROOT / "configs" / "smoke.json")
    again = train.train(cfg, tmp / "pkg-again", log=lines.append, cache_dir=tmp / "cache",
                        stage_dir=tmp / "stage-again")
    assert again["teacher_cache"] == "loaded"
    assert any(line.startswith("teachers: 2 loaded from ") for line in lines)
    assert not any(line.startswith("teacher 1/2") for line in lines)  # no teacher trained
    assert again["student_selection"] == first["student_selection"]
    assert again["windows"] == first["windows"]
    assert (tmp / "stage-again" / "model.tflite").read_bytes() == \
        (tmp / "stage" / "model.tflite").read_bytes()


@pytest.mark.slow
def test_first_student_draws_the_later_students_alone(smoke):
    """``distill.first_student`` 1 with one student, on the smoke run's cache: the teachers
    load, and the one student trained is the smoke run's student 1 (its seeds follow its
    index), with the same validation numbers; ``student_epochs`` 2 then trains that student
    for two epochs (the smoke config's ``epochs`` is 1), a new student."""
    from earshot.paths import ROOT

    tmp, first = smoke
    lines = []
    cfg = train.load_config(ROOT / "configs" / "smoke.json",
                            overrides={"distill": {"first_student": 1, "students": 1}})
    later = train.train(cfg, tmp / "pkg-later", log=lines.append, cache_dir=tmp / "cache",
                        stage_dir=tmp / "stage-later")
    assert later["teacher_cache"] == "loaded" and later["student"] == 1
    assert later["student_selection"] == [first["student_selection"][1]]
    assert "student 2 (1 of 1):" in lines and "student_epochs" not in later
    lines.clear()
    cfg["distill"]["student_epochs"] = 2
    longer = train.train(cfg, tmp / "pkg-longer", log=lines.append, cache_dir=tmp / "cache",
                         stage_dir=tmp / "stage-longer")
    assert longer["teacher_cache"] == "loaded" and longer["student_epochs"] == 2
    assert any(line.startswith("student: training 2 epochs on ") for line in lines)
    assert sum(line.startswith("  epoch 2/2:") for line in lines) == 1  # the student's fit
    lines.clear()
    cfg["distill"]["mixup"] = 0.5  # function matching: a new student, same teachers
    mixed = train.train(cfg, tmp / "pkg-mixed", log=lines.append, cache_dir=tmp / "cache",
                        stage_dir=tmp / "stage-mixed")
    assert mixed["teacher_cache"] == "loaded" and mixed["mixup"] == 0.5
    assert (tmp / "stage-mixed" / "model.tflite").read_bytes() != \
        (tmp / "stage-longer" / "model.tflite").read_bytes()


@pytest.mark.slow
def test_train_seeds_keeps_the_best_run_on_validation(smoke, tmp_path, monkeypatch):
    """train_seeds trains once per seed (train_seed set, same config otherwise) and packages
    the run validation ranks first; the manifest lists every run. The runs are stand-ins
    that reuse the smoke run's int8 model with other validation numbers."""
    from earshot.paths import ROOT

    stage_tmp, base = smoke
    tflite = (stage_tmp / "stage" / "model.tflite").read_bytes()
    keras = (stage_tmp / "stage" / "model.keras").read_bytes()
    # seed 8 has the best recall, but its false accepts stay over the budget at the 0.99 cap
    numbers = {4: (0.80, 0, 0.99), 5: (0.91, 1, 0.95), 6: (0.91, 0, 0.97), 7: (0.91, 0, 0.99),
               8: (0.95, 2, 0.99)}
    calls = []

    def fake_train(cfg, out_dir, log=print, cache_dir=None, stage_dir=None):
        k = cfg["train_seed"]
        calls.append((k, cfg["seed"]))
        Path(stage_dir).mkdir(parents=True)
        (Path(stage_dir) / "model.tflite").write_bytes(tflite)
        (Path(stage_dir) / "model.keras").write_bytes(keras)  # as save_stage keeps it
        rec, fa, cut = numbers[k]
        return {**base, "train_seed": k, "validation_recall": rec,
                "validation_false_accepts": fa, "cutoff": cut, "validation_within_budget": k != 8}

    monkeypatch.setattr(pipeline, "train", fake_train)  # what train_seeds calls
    cfg = train.load_config(ROOT / "configs" / "smoke.json")
    summary = train.train_seeds(cfg, tmp_path / "pkg", [4, 5, 6, 7, 8], log=lambda m: None,
                                stage_dir=tmp_path / "stage")
    assert calls == [(k, cfg["seed"]) for k in (4, 5, 6, 7, 8)]
    # within the false-accept budget, then best recall, fewer false accepts, lower cutoff
    assert summary["train_seed"] == 6
    man, _ = modelpkg.load(tmp_path / "pkg")
    assert abs(man["cutoff"] - 0.97) <= 0.5 / 255 + 1e-9
    sel = man["training"]["seed_selection"]
    assert [r["train_seed"] for r in sel] == [4, 5, 6, 7, 8]
    assert [r["validation_within_budget"] for r in sel] == [True] * 4 + [False]
    assert (tmp_path / "stage" / "seed-6" / "summary.json").is_file()
    assert (tmp_path / "pkg" / "float.keras").read_bytes() == keras  # earshot quantize's start
    with pytest.raises(ValueError, match="at least one seed"):
        train.train_seeds(cfg, tmp_path / "none", [], log=lambda m: None)


def test_every_shipped_config_loads():
    """Each JSON under configs/ is a valid training config (no unknown key, arch accepted)."""
    from earshot.paths import ROOT

    paths = sorted((ROOT / "configs").rglob("*.json"))
    assert len(paths) >= 3
    for p in paths:
        cfg = train.load_config(p)
        if cfg["arch"] is not None:
            arch.receptive_field(cfg["arch"])
        assert cfg["wake_word"], p
