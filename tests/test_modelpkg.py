"""Model package manifests: every mismatch gets its own ValueError naming the file; the
manifest must say what the blob says (the blob is the truth); paths stay inside the package;
every user of a package (score, eval, export, adapt, deploy) goes through package.load."""

import json
import zlib

import pytest

from earshot import cli
from earshot.model import Model, blob as blobfmt, package as modelpkg

BLOB = blobfmt.random_model(seed=7, cutoff=0.8, window=3, refractory=25)
INFO = Model(BLOB).info


def make(tmp_path, **changes):
    man = modelpkg.manifest_for("alexa", BLOB, INFO, cutoff=0.8, window=3, refractory=25)
    man.update(changes)
    (tmp_path / "model.bin").write_bytes(BLOB)
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    return man


def _escape(text):
    return text.replace(".", r"\.").replace("'", ".").replace("(", r"\(").replace(")", r"\)")


def test_good_package_loads(tmp_path):
    man = make(tmp_path)
    loaded, blob = modelpkg.load(tmp_path)
    assert loaded == man and blob == BLOB
    assert man["macs_per_30ms"] == round(INFO["macs_per_output"] * 3 / INFO["output_stride"])
    assert man["blob_crc32"] == zlib.crc32(BLOB)
    assert modelpkg.tflite_path(tmp_path).name == "model.tflite"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"schema": 2}, "schema 2 not supported"),
        ({"mel_bins": 32}, "mel_bins 32 does not match"),
        ({"feature_step_ms": 20}, "feature_step_ms 20 does not match"),
        ({"blob_crc32": 1}, "CRC-32"),
        ({"blob_bytes": 10}, f"size {len(BLOB)} B, manifest says 10 B"),
        ({"cutoff": 1.5}, "cutoff 1.5 outside 0..1"),
        ({"window": 0}, "window 0 outside"),
        ({"window": "3"}, "'window' has the wrong type"),
        ({"min_earshot_version": "99.0.0"}, "needs earshot >= 99.0.0"),
        ({"blob": "missing.bin"}, "blob file missing"),
    ],
)
def test_mismatch_errors(tmp_path, changes, message):
    make(tmp_path, **changes)
    with pytest.raises(ValueError, match=_escape(message)):
        modelpkg.load(tmp_path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cutoff": 0.1}, "cutoff 0.1 disagrees with model.bin (204/255 = 0.8000)"),
        ({"window": 5}, "window 5 disagrees with model.bin (3 outputs)"),
        ({"refractory": 9}, "refractory 9 disagrees with model.bin (25 outputs)"),
        (
            {"input_frames": 50},
            f"input_frames 50 disagrees with model.bin ({INFO['input_frames']} hops)",
        ),
        (
            {"output_stride": 3},
            f"output_stride 3 disagrees with model.bin ({INFO['output_stride']} hops)",
        ),
        (
            {"engine_bytes": 1},
            f"engine_bytes 1 disagrees with model.bin ({INFO['engine_bytes']} B)",
        ),
        ({"macs_per_30ms": 2}, "macs_per_30ms 2 disagrees with model.bin"),
        ({"input_norm": 1}, "input_norm 1 disagrees with model.bin (0)"),
    ],
)
def test_manifest_must_say_what_the_blob_says(tmp_path, changes, message):
    """The issue's case: a manifest cutoff of 0.1 was reported by `score` while the C
    detector used the blob's; now every user of the package is refused up front."""
    make(tmp_path, **changes)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'manifest.json'}: " + _escape(message)):
        modelpkg.load(tmp_path)


def test_min_version_must_cover_the_blob_format(tmp_path):
    normed = blobfmt.random_model(seed=7, cutoff=0.8, window=3, refractory=25, input_norm=1)
    info = Model(normed).info
    man = modelpkg.manifest_for("w", normed, info, 0.8, 3, 25)
    assert man["min_earshot_version"] == modelpkg.MIN_EARSHOT_VERSION_NORM
    man["min_earshot_version"] = "0.1.0"
    (tmp_path / "model.bin").write_bytes(normed)
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match=r"min_earshot_version 0\.1\.0 is older than model\.bin"):
        modelpkg.load(tmp_path)


@pytest.mark.parametrize("blob", ["../outside.bin", "/etc/passwd", "sub/../../outside.bin",
                                  "C:\\model.bin", "", "."])  # fmt: skip
def test_blob_path_stays_inside_the_package(tmp_path, blob):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "outside.bin").write_bytes(BLOB)  # a valid blob, but not the package's
    make(pkg, blob=blob)
    escape = r"manifest\.json: 'blob' path .* (must stay inside|leaves)"
    with pytest.raises(ValueError, match=escape):
        modelpkg.load(pkg)


def test_blob_path_through_a_symlinked_folder_is_refused(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "model.bin").write_bytes(BLOB)
    (pkg / "link").symlink_to(tmp_path / "elsewhere")
    make(pkg, blob="link/model.bin")
    with pytest.raises(ValueError, match="leaves the package folder"):
        modelpkg.load(pkg)
    make(pkg, tflite="../x.tflite")
    with pytest.raises(ValueError, match="'tflite' path '../x.tflite' must stay inside"):
        modelpkg.tflite_path(pkg)


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b"", "blob shorter than its header"),
    (lambda b: b[:100], "blob truncated"),
    (lambda b: b[:40] + bytes([b[40] ^ 1]) + b[41:], "payload CRC mismatch"),
], ids=["0B", "100B", "bit-flipped"])  # fmt: skip
def test_a_bad_blob_is_named_with_the_parsers_reason(tmp_path, damage, reason):
    bad = damage(BLOB)
    make(tmp_path, blob_bytes=len(bad), blob_crc32=zlib.crc32(bad))  # the manifest agrees
    (tmp_path / "model.bin").write_bytes(bad)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'model.bin'}: bad model blob: {reason}"):
        modelpkg.load(tmp_path)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'model.bin'}: bad model blob: {reason}"):
        Model.from_file(tmp_path / "model.bin")
    with pytest.raises(ValueError, match=f"^bad model blob: {reason}"):
        Model(bad)


def test_load_blob_takes_a_folder_a_packaged_blob_or_a_lone_blob(tmp_path):
    make(tmp_path)
    for path in (tmp_path, tmp_path / "model.bin"):
        man, data, where = modelpkg.load_blob(path)
        assert man is not None and data == BLOB and where == tmp_path / "model.bin"
    lone = tmp_path / "other.bin"  # beside a manifest that names another file
    lone.write_bytes(BLOB)
    assert modelpkg.load_blob(lone) == (None, BLOB, lone)
    # A blob inside a package is checked against its manifest.
    make(tmp_path, cutoff=0.5)
    with pytest.raises(ValueError, match="cutoff 0.5 disagrees"):
        modelpkg.load_blob(tmp_path / "model.bin")
    with pytest.raises(ValueError, match="model file not found"):
        modelpkg.load_blob(tmp_path / "nope.bin")


def test_missing_pieces(tmp_path):
    with pytest.raises(ValueError, match="model folder not found"):
        modelpkg.load(tmp_path / "nope")
    with pytest.raises(ValueError, match="manifest missing"):
        modelpkg.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        modelpkg.load(tmp_path)
    man = make(tmp_path)
    del man["engine_bytes"]
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="missing key 'engine_bytes'"):
        modelpkg.load(tmp_path)
    make(tmp_path)
    (tmp_path / "model.tflite").unlink()
    with pytest.raises(ValueError, match="tflite file missing"):
        modelpkg.tflite_path(tmp_path)


@pytest.mark.parametrize("argv", [
    ["score", "{wav}", "--model", "{pkg}"],
    ["export", "--format", "blob", "--model", "{pkg}", "--out", "{out}"],
    ["adapt", "{wav}", "--model", "{pkg}", "--out", "{out}"],
    ["deploy", "--port", "{nope}", "--model", "{pkg}"],
])  # fmt: skip
def test_every_command_refuses_the_mismatched_package(tmp_path, capsys, argv):
    """score, export, adapt and deploy all go through package.load: a manifest cutoff the
    blob does not have is refused, naming the manifest (before any board is touched)."""
    import numpy as np
    import soundfile

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    make(pkg, cutoff=0.1)
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(1600, np.int16), 16000)
    values = {"wav": wav, "pkg": pkg, "out": tmp_path / "out.bin", "nope": tmp_path / "no-port"}
    assert cli.main([a.format(**values) for a in argv]) != 0
    err = capsys.readouterr().err
    assert f"{pkg / 'manifest.json'}: cutoff 0.1 disagrees with model.bin" in err
    assert not (tmp_path / "out.bin").exists()
