"""``earshot export``: the package's int8 .tflite and blob, checked on the way out."""

import json

import pytest

from earshot import cli
from earshot.model import Model, package as modelpkg
from earshot.paths import MODELS


@pytest.mark.parametrize("fmt", ["tflite", "blob"])
def test_export_writes_the_packaged_model(tmp_path, fmt, capsys):
    out = tmp_path / f"alexa.{fmt}"
    assert cli.main(["export", "--format", fmt, "--model", str(MODELS / "alexa"),
                     "--out", str(out)]) == 0  # fmt: skip
    data = out.read_bytes()
    assert f"wrote {out} ({len(data)} B, {fmt})" in capsys.readouterr().out
    if fmt == "blob":
        man, blob = modelpkg.load(MODELS / "alexa")
        assert data == blob
        assert Model(data).info["input_frames"] == man["input_frames"]
    else:
        assert data[4:8] == b"TFL3"  # flatbuffer file identifier of a .tflite


def test_export_refuses_a_damaged_package(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in ("manifest.json", "model.bin", "model.tflite"):
        (pkg / name).write_bytes((MODELS / "alexa" / name).read_bytes())
    man = json.loads((pkg / "manifest.json").read_text())
    (pkg / "model.bin").write_bytes(bytes(man["blob_bytes"]))  # right size, wrong CRC
    assert cli.main(["export", "--format", "blob", "--model", str(pkg),
                     "--out", str(tmp_path / "x.bin")]) == 1  # fmt: skip
    assert "CRC-32" in capsys.readouterr().err
    assert not (tmp_path / "x.bin").exists()
