"""`earshot flash` (esptool argument lists, esptool's merge-bin on dummy images),
`earshot firmware build` (what is missing, supported versions, the upstream make command)
and `earshot repl` without hardware."""

import os
import stat
import sys

import pytest

from earshot import cli
from earshot.board import boards, firmware, flash
from earshot.board.deploy import DEFAULT_MODEL
from earshot.cli.repl import command as repl_command


@pytest.fixture
def images(tmp_path):
    fw = tmp_path / "firmware.bin"
    fw.write_bytes(bytes(range(256)) * 64)  # 16 KiB dummy image
    model = tmp_path / "model.bin"
    model.write_bytes(DEFAULT_MODEL.read_bytes())  # a blob alone (checked by the C parser)
    return fw, model


def test_flash_steps_erase_write_verify_at_the_board_offsets(images):
    fw, model = images
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    steps = flash.steps(board, "/dev/ttyACM0", fw, model)
    common = ["--chip", "esp32s3", "--port", "/dev/ttyACM0", "--baud", "460800"]
    regions = ["0x0", str(fw), "0x200000", str(model)]
    assert steps[0] == common + ["--after", "no-reset", "erase-flash"]
    assert steps[1] == common + ["--after", "no-reset", "write-flash", "--flash-mode", "keep",
                                 "--flash-freq", "keep", "--flash-size", "keep", *regions]
    assert steps[2] == common + ["--after", "hard-reset", "verify-flash", *regions]
    box = boards.load("ESP32_S3_BOX_3")
    only = flash.steps(box, "COM3", fw, None, baud=115200, erase=False, verify=False)
    assert len(only) == 1 and only[0][:6] == ["--chip", "esp32s3", "--port", "COM3", "--baud",
                                               "115200"]
    assert only[0][-2:] == ["0x0", str(fw)] and "hard-reset" in only[0]
    assert box.partition("model").offset == 0x300000


def test_flash_refuses_missing_and_oversized_images(images, tmp_path):
    fw, model = images
    board = boards.load("XIAO_ESP32S3_SENSE")
    with pytest.raises(flash.FlashError, match="no firmware image"):
        flash.steps(board, "p", tmp_path / "none.bin")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(0x40000 + 1))
    with pytest.raises(flash.FlashError, match="does not fit the 262144 B 'model' partition"):
        flash.steps(board, "p", fw, big)
    huge = tmp_path / "huge.bin"
    huge.write_bytes(bytes(0x200000 + 1))
    with pytest.raises(flash.FlashError, match="runs past the end of the factory app"):
        flash.steps(board, "p", huge)


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b"", "bad model blob: blob shorter than its header"),
    (lambda b: b[:100], "bad model blob: blob truncated"),
    (lambda b: b[:9000] + bytes([b[9000] ^ 4]) + b[9001:], "bad model blob: payload CRC mismatch"),
], ids=["0B", "100B", "bit-flipped"])  # fmt: skip
def test_flash_refuses_a_bad_model_before_esptool_runs(images, tmp_path, monkeypatch, capsys,
                                                        damage, reason):  # fmt: skip
    fw, model = images
    model.write_bytes(damage(model.read_bytes()))

    def esptool_ran(*args, **kwargs):
        raise AssertionError("esptool ran")

    monkeypatch.setattr(flash, "run", esptool_ran)
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    with pytest.raises(flash.FlashError, match=f"^{model}: {reason}$"):
        flash.steps(board, "/dev/ttyNOPE", fw, model)
    for extra in ([], ["--merge", str(tmp_path / "m.bin")], ["--dry-run"]):
        argv = ["flash", "--port", "/dev/ttyNOPE", "--board", board.name, "--firmware", str(fw),
                "--model", str(model), *extra]  # fmt: skip
        assert cli.main(argv) == 1
        captured = capsys.readouterr()
        assert captured.err == f"earshot flash: {model}: {reason}\n", captured
    assert not (tmp_path / "m.bin").exists()


def test_flash_takes_a_package_folder_checked_against_its_manifest(images, tmp_path):
    fw, _ = images
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    pkg = DEFAULT_MODEL.parent
    assert flash.images(board, fw, pkg)[1] == (0x200000, pkg / "model.bin")
    bad = tmp_path / "pkg"
    bad.mkdir()
    for name in ("manifest.json", "model.bin", "model.tflite"):
        (bad / name).write_bytes((pkg / name).read_bytes())
    (bad / "manifest.json").write_text((pkg / "manifest.json").read_text().replace(
        '"output_stride": 6', '"output_stride": 3'))
    for model in (bad, bad / "model.bin"):
        with pytest.raises(flash.FlashError, match="output_stride 3 disagrees with model.bin"):
            flash.images(board, fw, model)


def test_esptool_merge_bin_places_the_images(images, tmp_path):
    pytest.importorskip("esptool")
    fw, model = images
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    out = tmp_path / "merged.bin"
    flash.run([flash.merge_args(board, fw, model, out)])
    data = out.read_bytes()
    assert data[: fw.stat().st_size] == fw.read_bytes()
    m = model.read_bytes()
    assert data[0x200000 : 0x200000 + len(m)] == m
    assert set(data[fw.stat().st_size : 0x200000]) == {0xFF}  # padding is erased flash
    # The CLI does the same, and a failing esptool step is reported, not raised.
    out2 = tmp_path / "merged2.bin"
    assert cli.main(["flash", "--port", "x", "--board", board.name, "--firmware", str(fw),
                     "--model", str(model), "--merge", str(out2)]) == 0
    assert out2.read_bytes() == data
    with pytest.raises(flash.FlashError, match="esptool --chip esp32s3 merge-bin"):
        flash.run([["--chip", "esp32s3", "merge-bin", "-o", str(out2), "0x0",
                    str(tmp_path / "missing.bin")]])


def test_flash_dry_run_prints_the_commands(images, capsys):
    fw, model = images
    assert cli.main(["flash", "--port", "/dev/ttyUSB0", "--board", "ESP32_S3_BOX_3",
                     "--firmware", str(fw), "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("esptool --chip esp32s3") for line in lines)
    assert lines[0].endswith("erase-flash") and "write-flash" in lines[1]
    assert lines[2].endswith(f"verify-flash 0x0 {fw}")
    assert cli.main(["flash", "--port", "p", "--board", "NOPE", "--dry-run"]) == 1


def _fake_env(tmp_path, idf=(5, 4, 1), mpy=(1, 25, 0)):
    mpy_dir = tmp_path / "micropython"
    (mpy_dir / "ports" / "esp32").mkdir(parents=True)
    (mpy_dir / "ports" / "esp32" / "Makefile").write_text("# stand-in\n")
    (mpy_dir / "py").mkdir()
    (mpy_dir / "py" / "mpconfig.h").write_text(
        "#define MICROPY_VERSION_MAJOR %d\n#define MICROPY_VERSION_MINOR %d\n"
        "#define MICROPY_VERSION_MICRO %d\n" % mpy
    )
    idf_dir = tmp_path / "esp-idf"
    (idf_dir / "tools" / "cmake").mkdir(parents=True)
    (idf_dir / "tools" / "cmake" / "version.cmake").write_text(
        "set(IDF_VERSION_MAJOR %d)\nset(IDF_VERSION_MINOR %d)\nset(IDF_VERSION_PATCH %d)\n" % idf
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "idf.py"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {"MPY_DIR": str(mpy_dir), "IDF_PATH": str(idf_dir), "PATH": str(bin_dir)}


def test_firmware_build_without_tools_says_what_to_install(monkeypatch, capsys):
    for var in ("MPY_DIR", "IDF_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    assert cli.main(["firmware", "build", "--board", "ESP32_S3_DEVKITC_INMP441"]) == 1
    err = capsys.readouterr().err
    for needle in ("MPY_DIR is not set", "IDF_PATH is not set", "idf.py is not on PATH",
                   "v5.2, v5.3, v5.4", "git clone -b v5.4 --recursive",
                   "install.sh esp32s3", "make -C micropython/mpy-cross"):
        assert needle in err, needle


def test_firmware_environment_versions(tmp_path):
    env = _fake_env(tmp_path / "ok")
    checked = firmware.check(env)
    assert checked.idf_version == (5, 4, 1) and checked.mpy_version == (1, 25, 0)
    with pytest.raises(firmware.FirmwareError, match=r"ESP-IDF v4\.4\.7 is not supported"):
        firmware.check(_fake_env(tmp_path / "old_idf", idf=(4, 4, 7)))
    with pytest.raises(firmware.FirmwareError, match=r"ESP-IDF v6\.0\.0 is not supported"):
        firmware.check(_fake_env(tmp_path / "idf6", idf=(6, 0, 0)))
    msg = r"MicroPython 1\.22\.2 at MPY_DIR is too old"
    with pytest.raises(firmware.FirmwareError, match=msg):
        firmware.check(_fake_env(tmp_path / "old_mpy", mpy=(1, 22, 2)))
    env["MPY_DIR"] = str(tmp_path)
    with pytest.raises(firmware.FirmwareError, match="is not a MicroPython checkout"):
        firmware.check(env)


def test_firmware_dry_run_is_upstreams_make_with_the_board_dir(tmp_path, monkeypatch):
    env = _fake_env(tmp_path)
    cmd = firmware.build("XIAO_ESP32S3_SENSE", DEFAULT_MODEL, env=env, dry_run=True)
    board = boards.load("XIAO_ESP32S3_SENSE")
    assert cmd[:3] == ["make", "-C", str(tmp_path / "micropython" / "ports" / "esp32")]
    assert f"BOARD_DIR={board.path}" in cmd and "BOARD=XIAO_ESP32S3_SENSE" in cmd
    assert f"USER_C_MODULES={firmware.USER_C_MODULES}" in cmd
    assert firmware.USER_C_MODULES.is_file()
    frozen = firmware.out_dir("XIAO_ESP32S3_SENSE") / "frozen" / "es_model.py"
    ns = {}
    exec(frozen.read_text(), ns)
    assert ns["BLOB"] == DEFAULT_MODEL.read_bytes()


def test_firmware_cli_no_adapt_builds_detection_only(tmp_path, monkeypatch, capsys):
    """`earshot firmware build --no-adapt` passes MICROPY_PY_EARSHOT_ADAPT=0 to the build;
    without the flag the build keeps adaptation."""
    for var, value in _fake_env(tmp_path).items():
        monkeypatch.setenv(var, value)
    args = ["firmware", "build", "--board", "XIAO_ESP32S3_SENSE", "--dry-run"]
    assert cli.main(args + ["--no-adapt"]) == 0
    assert "MICROPY_PY_EARSHOT_ADAPT=0" in capsys.readouterr().out.split()
    assert cli.main(args) == 0
    assert "MICROPY_PY_EARSHOT_ADAPT=0" not in capsys.readouterr().out.split()


def test_repl_uses_mpremote_without_reset():
    cmd = repl_command("/dev/ttyACM0")
    assert cmd[1:] == ["-m", "mpremote", "connect", "/dev/ttyACM0", "resume", "repl"]


def test_firmware_build_checks_the_model_first(tmp_path, capsys):
    """A bad blob is refused before any build step, naming the file; a package folder works."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(DEFAULT_MODEL.read_bytes()[:100])
    args = ["firmware", "build", "--board", "XIAO_ESP32S3_SENSE", "--dry-run"]
    assert cli.main(args + ["--model", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.bin" in err and "blob truncated" in err
    assert cli.main(args + ["--model", str(tmp_path / "none.bin")]) == 1
    assert "none.bin: model file not found" in capsys.readouterr().err
