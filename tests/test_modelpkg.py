"""Model package manifests: every mismatch gets its own ValueError."""

import json
import zlib

import pytest

from earshot.model import package as modelpkg

BLOB = bytes(range(256)) * 8
INFO = {"input_frames": 93, "output_stride": 6, "macs_per_output": 17040, "engine_bytes": 4000}


def make(tmp_path, **changes):
    man = modelpkg.manifest_for("alexa", BLOB, INFO, cutoff=0.8, window=3, refractory=25)
    man.update(changes)
    (tmp_path / "model.bin").write_bytes(BLOB)
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    return man


def test_good_package_loads(tmp_path):
    man = make(tmp_path)
    loaded, blob = modelpkg.load(tmp_path)
    assert loaded == man and blob == BLOB
    assert man["macs_per_30ms"] == 17040 * 3 // 6
    assert man["blob_crc32"] == zlib.crc32(BLOB)
    assert modelpkg.tflite_path(tmp_path).name == "model.tflite"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"schema": 2}, "schema 2 not supported"),
        ({"mel_bins": 32}, "mel_bins 32 does not match"),
        ({"feature_step_ms": 20}, "feature_step_ms 20 does not match"),
        ({"blob_crc32": 1}, "CRC-32"),
        ({"blob_bytes": 10}, "size 2048 B, manifest says 10 B"),
        ({"cutoff": 1.5}, "cutoff 1.5 outside 0..1"),
        ({"window": 0}, "window 0 outside"),
        ({"window": "3"}, "'window' has the wrong type"),
        ({"min_earshot_version": "99.0.0"}, "needs earshot >= 99.0.0"),
        ({"blob": "missing.bin"}, "blob file missing"),
    ],
)
def test_mismatch_errors(tmp_path, changes, message):
    make(tmp_path, **changes)
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("'", ".")):
        modelpkg.load(tmp_path)


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
