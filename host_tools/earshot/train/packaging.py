"""From a trained Keras network to a model package: int8 conversion, stage, summary, card.

:func:`to_int8` converts the network (:func:`earshot.train.arch.to_tflite_int8`, calibrated on
training windows); :func:`summarize` gathers the numbers measured during the run;
:func:`save_stage` keeps the network, the .tflite, the summary and the validation
probabilities under the stage folder, so packaging can be redone without training;
:func:`publish` writes the package (:func:`package`: blob by
:func:`earshot.model.tflite.from_tflite`, manifest by :func:`earshot.model.package.write`) and
its model card (:func:`new_card`, :func:`write_card_numbers`).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from earshot.model import package as modelpkg
from earshot.model.tflite import from_tflite
from earshot.paths import BUILD
from earshot.train import arch, augmentation, synth
from earshot.train.calibrate import refractory_outputs, validation_model


def to_int8(model, x: np.ndarray, seed: int) -> bytes:
    """The int8 .tflite of ``model``, its activation ranges calibrated on up to 500 windows of
    ``x`` (int8 (n, frames, 40)) drawn from ``[seed, 11]``; the converter's printing goes to
    stderr. Raises ValueError as :func:`earshot.train.arch.to_tflite_int8` does."""
    rep = x[np.random.default_rng([seed, 11]).choice(len(x), size=min(500, len(x)),
                                                     replace=False)]
    with contextlib.redirect_stdout(sys.stderr):  # the converter prints to stdout
        return arch.to_tflite_int8(model, rep)


def stage_path(stage_dir, wake_word: str) -> Path:
    """``stage_dir``, default ``build/train/<wake word>`` (spaces as underscores)."""
    return Path(stage_dir or BUILD / "train" / wake_word.replace(" ", "_"))


def _students_entries(cfg: dict, best: dict, selection: list) -> dict:
    """Summary entries of the student choice: students, student and student_selection when
    more than the first student was (or could have been) trained; student_epochs and mixup
    when they differ from a plain run."""
    dc, out = cfg["distill"], {}
    if dc["width"] and (int(dc["students"]) > 1 or int(dc["first_student"])):
        out |= {"students": int(dc["students"]), "student": best["student"],
                "student_selection": selection}
    student_epochs = int(dc["student_epochs"] or cfg["epochs"])
    if dc["width"] and student_epochs != cfg["epochs"]:
        out["student_epochs"] = student_epochs
    if dc["mixup"]:
        out["mixup"] = float(dc["mixup"])
    return out


def _augment_entries(aug: dict, n_passages: int, pass_hours: float) -> dict:
    """Summary entries of the augmentation ``aug`` (:class:`earshot.train.windows.Context`'s)
    where it differs from the defaults, and of the TTS passages."""
    out = {}
    if aug["rirs"] or aug["clip_p"]:
        out["room_rirs"] = len(aug["rirs"] or ())
        out["clip_fraction"] = aug["clip_p"]
    if aug["peak_dbfs"] != augmentation.PEAK_DBFS:
        out["peak_dbfs"] = list(aug["peak_dbfs"])
    if aug["hf_shelf"]["p"] > 0:
        hf = aug["hf_shelf"]
        out["hf_shelf"] = {"p": hf["p"], "hz": list(hf["hz"]), "db": list(hf["db"])}
    if aug["noise_alpha"] != augmentation.NOISE_ALPHA:
        out["noise_alpha"] = list(aug["noise_alpha"])
    sp = aug.get("speaker") or augmentation.SPEAKER
    if sp["p"] > 0:
        out["speaker"] = {"p": sp["p"], "formant": list(sp["formant"]),
                          "pitch_st": list(sp["pitch_st"])}
    if n_passages:
        out["synth_passages"] = n_passages
        out["synth_passage_hours"] = round(pass_hours, 3)
    return out


def _fit_entries(cfg: dict, arch_cfg: dict, teacher_info: dict | None) -> dict:
    """Summary entries of how the network was fitted: train_seed, slimming, the teachers'
    entries, qat_epochs, weight_average and spec_augment, each when used."""
    out, sa = {}, cfg["spec_augment"]
    if cfg["train_seed"] is not None:
        out["train_seed"] = int(cfg["train_seed"])
    if arch_cfg.get("slimming"):
        out["slimming"] = float(arch_cfg["slimming"])
    if teacher_info is not None:
        out.update(teacher_info)
    if cfg["qat"]["epochs"]:
        out["qat_epochs"] = int(cfg["qat"]["epochs"])
    if cfg["weight_average"]["momentum"]:
        out["weight_average"] = dict(cfg["weight_average"])
    if int(sa["freq_masks"]) or int(sa["time_masks"]):
        out["spec_augment"] = {k: int(v) for k, v in sa.items()}
    return out


def summarize(cfg: dict, arch_cfg: dict, head: dict, data_stats: dict, best: dict,
              selection: list, aug: dict, passages: tuple[int, float],
              teacher_info: dict | None) -> dict:
    """The run's summary (the manifest's "training"): ``head`` (times, threads), the data
    entries ``data_stats`` (:func:`earshot.train.data.stats` plus windows), the packaged
    run ``best``'s validation numbers and detector settings
    (:func:`earshot.train.calibrate.validate`), then the entries of the students
    (``selection``), the augmentation ``aug``, the TTS ``passages`` (count, hours), the
    synthesis stack and CPU, and the fit (``teacher_info`` from
    :func:`earshot.train.distill.teach`, or None)."""
    det = cfg["detector"]
    summary = {**head, **data_stats}
    summary |= {key: best[key] for key in ("validation_recall", "validation_false_accepts",
                                           "validation_within_budget", "cutoff", "window")}
    summary |= {"refractory": refractory_outputs(det, arch.output_stride(arch_cfg)),
                "input_norm": int(cfg["input_norm"]),
                "channel_dropout": float(arch_cfg.get("channel_dropout", 0.0))}
    if len(best["window_rows"]) > 1:
        summary["window_search"] = best["window_rows"]
    summary["validation_model"] = validation_model(det)
    if best.get("validation_real_recall") is not None:
        summary["validation_real_recall"] = best["validation_real_recall"]
        summary["validation_real_positives"] = best["validation_real_positives"]
    if best["float_window_rows"] is not None:
        summary["float_window_search"] = best["float_window_rows"]
    summary |= _students_entries(cfg, best, selection)
    summary |= _augment_entries(aug, *passages)
    summary["synth_versions"] = synth.stack_versions()
    summary["cpu"] = synth.cpu_info()
    summary |= _fit_entries(cfg, arch_cfg, teacher_info)
    return summary


def save_stage(stage: Path, best: dict, summary: dict, val_hours: float) -> None:
    """Keep the packaged run ``best`` before packaging, so packaging can be redone without
    training: ``stage``/model.tflite, summary.json, model.keras, and validation_probs.npz
    (the validation probabilities that chose the detector: ``pos`` (sum of lengths,) float32
    with ``pos_lengths``, ``hours``, ``neg_<k>`` one float32 array per negative stream)."""
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "model.tflite").write_bytes(best["tflite"])
    (stage / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    best["model"].save(stage / "model.keras")
    pos_probs, neg_probs = best["pos_probs"], best["neg_probs"]
    np.savez_compressed(stage / "validation_probs.npz",
                        pos=np.concatenate(pos_probs).astype(np.float32),
                        pos_lengths=np.array([len(p) for p in pos_probs], np.int64),
                        hours=np.float64(val_hours),
                        **{f"neg_{k}": p.astype(np.float32) for k, p in enumerate(neg_probs)})


FLOAT_CHECKPOINT = "float.keras"  # the float network beside a package (earshot quantize)


def publish(tflite: bytes, summary: dict, out_dir, cfg: dict, float_model=None) -> None:
    """:func:`package` into ``out_dir``, then its model card: started from :func:`new_card`
    for a new wake word, its numbers block rewritten in any case. ``float_model`` (a Keras
    model, or the path of a saved one) is kept beside the package as FLOAT_CHECKPOINT, the
    starting point of ``earshot quantize``."""
    man = package(tflite, summary, out_dir, cfg["wake_word"])
    if float_model is not None:
        dest = Path(out_dir) / FLOAT_CHECKPOINT
        if isinstance(float_model, (str, Path)):
            dest.write_bytes(Path(float_model).read_bytes())
        else:
            float_model.save(dest)
    man = add_validation(out_dir, man, summary)
    card = Path(out_dir) / "README.md"
    if not card.is_file():
        card.write_text(new_card(cfg["wake_word"], cfg))
    write_card_numbers(card, man)


def add_validation(out_dir, man: dict, summary: dict) -> dict:
    """The manifest with a ``validation`` entry, rewritten in ``out_dir``: what the detector
    settings were chosen on, in a place a user looks (``recall``: share of the validation
    positives detected; ``false_accepts`` in ``negative_hours`` of validation negatives;
    ``positives`` clips; ``model``: "int8" or "float"). Unchanged without validation
    numbers in ``summary``."""
    if "validation_recall" not in summary:
        return man
    man = dict(man)
    man["validation"] = {
        "recall": summary["validation_recall"],
        "false_accepts": summary.get("validation_false_accepts"),
        "negative_hours": summary.get("validation_negative_hours"),
        "model": summary.get("validation_model"),
    }
    (Path(out_dir) / modelpkg.MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
    return man


def package(tflite: bytes, summary: dict, out_dir, wake_word: str) -> dict:
    """Blob from ``tflite`` with the detector settings in ``summary`` (cutoff 0..1, window,
    refractory), written with the .tflite and manifest to ``out_dir``. Returns the manifest."""
    model_blob = from_tflite(
        tflite,
        cutoff=summary["cutoff"],
        window=summary["window"],
        refractory=summary["refractory"],
        input_norm=int(summary.get("input_norm", 0)),
    )
    return modelpkg.write(out_dir, wake_word, model_blob, tflite, training=summary)


CARD_BEGIN = "<!-- train:numbers:begin -->"
CARD_END = "<!-- train:numbers:end -->"


def new_card(wake_word: str, cfg: dict) -> str:
    """Markdown model card for a newly trained wake word: what it is, how it was trained, and
    the CARD_BEGIN/CARD_END block that :func:`write_card_numbers` fills with measured numbers.
    Accuracy on real recordings is not claimed: there are none of a new phrase."""
    sc = cfg["synth"]
    tseed_note = "" if cfg["train_seed"] is None else f", train_seed {cfg['train_seed']}"
    n_pass = int(cfg["synth_passages"]["count"])
    passages = (f",\n  {n_pass} TTS passages (`earshot.train.synth.passage_texts`)" if n_pass
                else "")
    aug = cfg["augment"]
    reverb = (f"{aug['room_rirs']} simulated rooms (`synth.room_rirs`)" if aug["room_rirs"]
              else "exponential-decay reverb")
    clip = f", clipping ({100 * aug['clip_fraction']:g} %)" if aug["clip_fraction"] else ""
    hf = aug["hf_shelf"]
    if float(hf["p"]) > 0:
        clip += (f", high band cut by {-float(hf['db'][1]):g}-{-float(hf['db'][0]):g} dB above "
                 f"{float(hf['hz'][0]) / 1000:g}-{float(hf['hz'][1]) / 1000:g} kHz "
                 f"({100 * float(hf['p']):g} %)")
    if tuple(float(v) for v in aug["noise_alpha"]) != augmentation.NOISE_ALPHA:
        lo, hi = (float(v) for v in aug["noise_alpha"])
        clip += f", coloured noise 1/f^{lo:g} to 1/f^{hi:g}"
    sp = aug.get("speaker", augmentation.SPEAKER)
    if float(sp["p"]) > 0:
        clip += (f", another speaker ({100 * float(sp['p']):g} %: formants x "
                 f"{float(sp['formant'][0]):g}-{float(sp['formant'][1]):g}, pitch "
                 f"{float(sp['pitch_st'][0]):+g} to {float(sp['pitch_st'][1]):+g} semitones)")
    kokoro = {"ja": "Kokoro", "en": "Kokoro with the English voice tables of npm kokoro-js",
              "ja+en": "Kokoro with its Japanese and English voice tables"}[
        sc.get("kokoro_tables", "ja")]
    return f"""# Model card: Earshot "{wake_word}"

| | |
|---|---|
| wake word | "{wake_word}" (English) |
| files | `model.bin` (Earshot blob), `model.tflite` (int8), `manifest.json` (schema 1) |
| network | time-only DS-CNN (`earshot.train.arch`), int8 weights per channel, int8 activations |
| input | 40 int8 log-mel bins per 10 ms hop from the Earshot C frontend |
| detector defaults | `cutoff`, `window`, `refractory` in `manifest.json` (training data only) |
| trained by | `earshot train --wake-word "{wake_word}"`, seed {cfg['seed']}{tseed_note} (`earshot.train`) |

## Training data

- Positives: {_real_note(cfg)}{sc['positives']} text-to-speech specs of "{wake_word}"
  (espeak-ng, Festival, Flite, {kokoro}; `earshot.train.synth`), filtered by the phrase-independent
  checks of `earshot.train.synth.check_positive` (level, clipping, duration); microWakeWord's check
  is used for "alexa" only.
- Negatives: {sc['negatives']} synthetic confusable words and sentences, the training part of
  the real negative speech (`earshot.train.dataset.training_negatives`), noise{passages}.
- Augmentation (`earshot.train.synth.augment`): speed, {reverb},
  band-limits, noise and babble, level{clip}.

## Measured sizes and compute

{CARD_BEGIN}
{CARD_END}
"""


def _real_note(cfg: dict) -> str:
    """The card's words on real positives: "synthetic only, " without them, else which
    speaker folds trained and validated and that only the others may be reported on."""
    rc = cfg["real_positives"]
    if not rc["train_folds"] and not rc["validation_folds"]:
        return "synthetic only, "
    src = rc["source"] or f"wake-word-benchmark/{cfg['wake_word']}"
    return (f"real recordings of `{src}` in {rc['folds']} speaker folds "
            f"(`earshot.train.dataset.speaker_folds`): folds {sorted(rc['train_folds'])} "
            f"trained on, {sorted(rc['validation_folds'])} validated on, the rest never used "
            "and the only ones reported on (`manifest.json`, `training.real_positives`); ")


def _real_positive_rows(t: dict) -> list[tuple[str, str]]:
    """Card rows of a run's real positives (manifest ``training``), none without them."""
    rp = t.get("real_positives")
    if not rp:
        return []
    val = (f", validation recall {100 * t['validation_real_recall']:.1f} %"
           if t.get("validation_real_recall") is not None else "")
    return [("real positives (speaker folds of " + rp["source"] + ")",
             f"{rp['folds']} folds: {rp['train_folds']} trained on ({rp['train_clips']} clips), "
             f"{rp['validation_folds']} validated on ({rp['validation_clips']} clips{val}), "
             f"{rp['unused_folds']} never used: report on these only")]


def write_card_numbers(card: Path, man: dict) -> None:
    """Replace the block between CARD_BEGIN and CARD_END of a model card with the measured
    numbers of manifest ``man`` (sizes from the C parser, training times from the run)."""
    t = man.get("training", {})
    rows = [
        ("blob", f"{man['blob_bytes']:,} B (CRC-32 {man['blob_crc32']:#010x})"),
        ("engine RAM (state + scratch)", f"{man['engine_bytes']:,} B"),
        ("receptive field", f"{man['input_frames']} hops ({10 * man['input_frames']} ms)"),
        ("output stride", f"{man['output_stride']} hops ({10 * man['output_stride']} ms)"),
        ("MACs per 30 ms (VAD open)", f"{man['macs_per_30ms']:,}"),
        ("detector defaults", f"cutoff {man['cutoff']:.3f}, window {man['window']} outputs, "
         f"refractory {man['refractory']} outputs"),
    ]
    if t:
        passages = (f"{t['synth_passages']} TTS passages ({t['synth_passage_hours']:.2f} h), "
                    if t.get("synth_passages") else "")
        voices = (f"{t['synthetic_voices']:,} distinct synthetic voices "
                  f"(`earshot.train.voices.count_voices`), {t['synthetic_hours']:.2f} h of "
                  "synthetic audio; " if "synthetic_voices" in t else "")
        rows += [
            ("training time", f"{t['train_seconds']:.0f} s fitting, {t['total_seconds']:.0f} s "
             f"in all (data, fit, mining, conversion), {t['threads']} "
             f"thread{'s' if t['threads'] != 1 else ''}; synthetic audio cached beforehand"),
            ("training data", f"{t['synthetic_positives']} synthetic positives "
             f"({t['synthetic_positives_dropped']} dropped by the sanity filter), "
             f"{t['synthetic_negatives']} synthetic negatives, {passages}{voices}"
             f"{t['real_negative_clips']} real negative clips "
             f"({t['real_negative_hours']:.2f} h), {t['windows']:,} windows"),
            ("validation (synthetic positives; real negatives not fitted, clean + noisy)",
             f"recall {100 * t['validation_recall']:.1f} %, "
             f"{t['validation_false_accepts']} false accepts in "
             f"{t.get('validation_negative_hours', 0):.2f} h"
             + (f", scored on the {t['validation_model']} model" if "validation_model" in t
                else "")),
        ] + _real_positive_rows(t)
    body = "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    text = card.read_text()
    if CARD_BEGIN not in text or CARD_END not in text:
        raise ValueError(f"{card}: markers {CARD_BEGIN} / {CARD_END} not found")
    head, rest = text.split(CARD_BEGIN, 1)
    tail = rest.split(CARD_END, 1)[1]
    card.write_text(f"{head}{CARD_BEGIN}\n{body}\n{CARD_END}{tail}")
