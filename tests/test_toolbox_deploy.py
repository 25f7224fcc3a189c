"""`earshot deploy` on the virtual board: mpremote and ampy, hash-skip on the second deploy,
architecture / ABI mismatches refused before anything is copied."""

import pytest

from earshot import cli
from earshot.board import deploy
from earshot.board.vboard import VirtualBoard

pytestmark = pytest.mark.skipif(
    not deploy.mpy_path("x64").is_file(), reason="build/x64/_earshot.mpy absent (make build)"
)


def _all():
    """Board paths of a full deploy (the module list is read when a test runs)."""
    return {p.name for p in deploy.MODULES_DIR.glob("*.py")} | {"_earshot.mpy", "model.bin"}


@pytest.fixture
def board(tmp_path):
    with VirtualBoard(tmp_path / "flash") as b:
        yield b


def _flash_files(board):
    return {p.name for p in board.flash_dir.iterdir() if p.is_file()}


@pytest.mark.parametrize("tool", ["mpremote", pytest.param("ampy", marks=pytest.mark.slow)])
def test_deploy_then_skip_unchanged_then_copy_only_the_changed(board, tmp_path, tool):
    first = deploy.sync(board.port, tool=tool, board="ESP32_S3_DEVKITC_INMP441")
    everything = _all()
    assert set(first.copied) == everything | {"es_board.py"} and first.skipped == []
    assert first.device.arch == "x64" and first.device.hash == "sha256"
    for name in everything:
        src = deploy.mpy_path("x64") if name == "_earshot.mpy" else (
            deploy.DEFAULT_MODEL if name == "model.bin" else deploy.MODULES_DIR / name)
        assert (board.flash_dir / name).read_bytes() == src.read_bytes(), name
    # The deployed modules work: the board imports the native module and parses the model.
    code = "import earshot\nprint(earshot.load_model('model.bin').info()['window'] > 0)"
    out = deploy.run_on_board(board.port, code)
    assert out == b"True\n"
    second = deploy.sync(board.port, tool=tool, board="ESP32_S3_DEVKITC_INMP441")
    assert second.copied == [] and set(second.skipped) == set(first.copied)
    # A different model is the only file copied; the board's copy was changed behind our back
    # too, and that is noticed.
    other = tmp_path / "other.bin"
    other.write_bytes(deploy.DEFAULT_MODEL.read_bytes())
    (board.flash_dir / "es_loop.py").write_text("# edited on the board\n")
    third = deploy.sync(board.port, model=other, tool=tool)
    assert sorted(third.copied) == ["es_loop.py"]
    restored = (board.flash_dir / "es_loop.py").read_bytes()
    assert restored == (deploy.MODULES_DIR / "es_loop.py").read_bytes()


@pytest.mark.slow
def test_crc_digests_when_hashlib_is_not_used(board):
    deploy.sync(board.port)
    again = deploy.sync(board.port, force_crc=True)
    assert again.device.hash == "crc32" and again.copied == []
    name = "earshot.py"
    data = (deploy.MODULES_DIR / name).read_bytes()
    assert again.device.files[name] == deploy.digest(deploy.MODULES_DIR / name, "crc32")
    assert again.device.files[name].startswith(f"crc32:{len(data)}:")


def _patched_mpy(tmp_path, byte2=None, version=None):
    data = bytearray(deploy.mpy_path("x64").read_bytes())
    if byte2 is not None:
        data[2] = byte2
    if version is not None:
        data[1] = version
    out = tmp_path / "patched.mpy"
    out.write_bytes(bytes(data))
    return out


def test_arch_and_abi_mismatch_refused_before_copying(board, tmp_path):
    xtensawin = _patched_mpy(tmp_path, byte2=(10 << 2) | 3)
    with pytest.raises(deploy.DeployError, match="built for xtensawin, but the linux board"):
        deploy.sync(board.port, mpy=xtensawin)
    assert _flash_files(board) == set()
    sub = _patched_mpy(tmp_path, byte2=(2 << 2) | 2)
    with pytest.raises(deploy.DeployError, match=r"ABI mismatch: .* v6\.2, .* loads v6\.3"):
        deploy.sync(board.port, mpy=sub, tool="ampy")
    with pytest.raises(deploy.DeployError, match="ABI mismatch"):
        deploy.sync(board.port, mpy=_patched_mpy(tmp_path, version=5))
    assert _flash_files(board) == set()
    # Asking for another architecture than the board runs is refused the same way.
    with pytest.raises(deploy.DeployError, match="missing: .*xtensawin.*xtensa-esp32s3-elf"):
        deploy.sync(board.port, arch="xtensawin")


def test_board_reporting_another_arch_is_refused(monkeypatch, board):
    # The board says it runs xtensawin code (an ESP32-S3); our x64 module is refused.
    real = deploy.parse_probe

    def as_esp32s3(output):
        info = real(output)
        info.mpy = (10 << 10) | (3 << 8) | 6
        info.platform = "esp32"
        return info

    monkeypatch.setattr(deploy, "parse_probe", as_esp32s3)
    msg = "built for x64, but the esp32 board.* runs xtensawin"
    with pytest.raises(deploy.DeployError, match=msg):
        deploy.sync(board.port, mpy=deploy.mpy_path("x64"))
    with pytest.raises(deploy.DeployError, match="did not answer the deploy probe"):
        real(b"Traceback (most recent call last):\r\n")


def test_check_mpy_without_native_support():
    info = deploy.DeviceInfo(mpy=None, platform="rp2", version=(1, 25, 0))
    with pytest.raises(deploy.DeployError, match="reports no native architecture"):
        deploy.check_mpy(deploy.mpy_path("x64"), info)


@pytest.mark.slow
def test_cli_deploy(board, capsys):
    everything = _all()
    assert cli.main(["deploy", "--port", board.port]) == 0
    out = capsys.readouterr().out
    assert "arch x64, .mpy v6.3" in out and f"copied ({len(everything)})" in out
    assert cli.main(["deploy", "--port", board.port, "--tool", "ampy"]) == 0
    assert f"unchanged ({len(everything)}, by sha256)" in capsys.readouterr().out
    assert cli.main(["deploy", "--port", board.port, "--board", "NOPE"]) == 1
    assert "unknown board 'NOPE'" in capsys.readouterr().out
