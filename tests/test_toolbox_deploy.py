"""`earshot deploy` on the virtual board: mpremote and ampy, hash-skip on the second deploy,
`--force` writes every file, architecture / ABI mismatches refused before anything is copied,
bad models and configurations refused before the board is even opened."""

import json
import os

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
        src = (
            deploy.mpy_path("x64")
            if name == "_earshot.mpy"
            else (deploy.DEFAULT_MODEL if name == "model.bin" else deploy.MODULES_DIR / name)
        )
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
    assert "unknown board 'NOPE'" in capsys.readouterr().err


@pytest.mark.slow
def test_force_writes_every_file_and_says_so(board, capsys):
    """--force used to report "copied (N)" while mpremote's own cp skipped every file whose
    sha256 matched: now mpremote gets -f, and the board's files are really rewritten."""
    first = deploy.sync(board.port)
    names = first.copied
    for name in names:  # mark the board's copies: a rewrite gives them a new mtime
        os.utime(board.flash_dir / name, (0, 0))
    assert cli.main(["deploy", "--port", board.port, "--force"]) == 0
    out = capsys.readouterr().out
    assert f"copied ({len(names)}, forced)" in out and "unchanged (0," in out
    said = "model.bin: written through model.bin.tmp, checked on the board; previous model kept"
    assert said in out
    rewritten = [n for n in names if (board.flash_dir / n).stat().st_mtime > 0]
    assert sorted(rewritten) == sorted(names)
    assert (board.flash_dir / "model.bin.bak").read_bytes() == deploy.DEFAULT_MODEL.read_bytes()


# -- inputs checked before the board is opened -----------------------------------------------
GOOD = deploy.DEFAULT_MODEL.read_bytes()


def _flipped(data):
    out = bytearray(data)
    out[len(out) // 2] ^= 0x10
    return bytes(out)


@pytest.fixture
def no_board(monkeypatch, tmp_path):
    """A port that does not exist, and a deploy tool that fails the test if it is opened."""

    def opened(*args, **kwargs):
        raise AssertionError("the board was opened")

    monkeypatch.setattr(deploy, "_tool", opened)
    monkeypatch.setattr(deploy, "mpremote", opened)
    return str(tmp_path / "no-such-port")


@pytest.mark.parametrize("data, reason", [
    (b"", "bad model blob: blob shorter than its header"),
    (GOOD[:100], "bad model blob: blob truncated"),
    (_flipped(GOOD), "bad model blob: payload CRC mismatch"),
], ids=["0B", "100B", "bit-flipped"])  # fmt: skip
def test_a_bad_blob_is_refused_before_connecting(no_board, tmp_path, capsys, data, reason):
    model = tmp_path / "model.bin"
    model.write_bytes(data)
    with pytest.raises(deploy.InputError, match=reason):
        deploy.sync(no_board, model=model)
    assert cli.main(["deploy", "--port", no_board, "--model", str(model)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"earshot deploy: {model}: {reason}\n" and captured.out == ""


def test_a_packaged_blob_is_checked_against_its_manifest(no_board, tmp_path, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in ("model.bin", "model.tflite", "manifest.json"):
        (pkg / name).write_bytes((deploy.DEFAULT_MODEL.parent / name).read_bytes())
    (pkg / "model.bin").write_bytes(_flipped(GOOD))  # the manifest's CRC-32 catches it first
    assert cli.main(["deploy", "--port", no_board, "--model", str(pkg / "model.bin")]) == 1
    assert f"{pkg / 'model.bin'}: CRC-32 " in capsys.readouterr().err


@pytest.mark.parametrize("text, problem", [
    ('{"bogus": 1}', "unknown key 'bogus' (known: adapt, autostart,"),
    ("[1, 2]", "top level must be an object, got list"),
    ('"autostart"', "top level must be an object, got str"),
    ('{"autostart": tr', "not valid JSON"),
    ('{"cutoff": 300}', "cutoff must be an integer in 1..255 or null, got 300"),
    ('{"window": 0, "vad": "yes"}', ("window must be an integer in 1..32 or null, got 0; "
                                     "vad must be true or false, got 'yes'")),
    ('{"source": "mic"}', "source must be \"i2s\" or \"file\", got 'mic'"),
    ('{"i2s": {"sck": 5, "pin": 3}}', "unknown i2s key 'pin'"),
    ('{"file": {"path": 3}}', "file.path must be a string, got 3"),
    ('{"adapt": {"enabled": true, "slice_mac": 1}}', "unknown adapt key 'slice_mac'"),
    ('{"adapt": {"lr": "fast"}}', "adapt.lr must be a number, got 'fast'"),
    ('{"block_hops": 0}', "block_hops must be an integer in 1..1048576, got 0"),
])  # fmt: skip
def test_a_bad_config_is_refused_before_connecting(no_board, tmp_path, capsys, text, problem):
    cfg = tmp_path / "earshot.json"
    cfg.write_text(text)
    assert cli.main(["deploy", "--port", no_board, "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"earshot deploy: {cfg}: ") and problem in err, err
    assert err.count("\n") == 1
    if text.startswith("{") and text.endswith("}"):
        with pytest.raises(deploy.InputError, match="^config: "):
            deploy.sync(no_board, config=json.loads(text))


def test_good_configs_pass_and_usage_errors_exit_2(no_board, tmp_path, capsys, monkeypatch):
    ok = {"autostart": True, "cutoff": None, "window": 3, "source": "file",
          "file": {"path": "mic.raw", "realtime": False}, "i2s": {"kind": "i2s", "sck": 5},
          "adapt": {"enabled": True, "slice_macs": 50000, "lr": 0.001,
                    "save_to": "a.bin"}}  # fmt: skip
    assert deploy.check_config(ok) == ok
    missing = tmp_path / "none.json"
    assert cli.main(["deploy", "--port", no_board, "--config", str(missing)]) == 1
    assert f"{missing}: cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["deploy", "--port", no_board, "--tool", "rshell"])
    assert exc.value.code == 2
    capsys.readouterr()
    # No --port, no EARSHOT_PORT, no board plugged in: one line saying what to pass, exit 2.
    from earshot.board import ports

    monkeypatch.delenv(ports.ENV, raising=False)
    monkeypatch.setattr(ports, "usb_ports", lambda: [])
    monkeypatch.setattr(ports, "VBOARD_PORT", tmp_path / "no-board.tty")
    assert cli.main(["deploy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no board found" in err and "--port" in err
    assert cli.main(["deploy", "--port", no_board, "--mpy", str(tmp_path / "x.mpy")]) == 1
    assert "missing: " in capsys.readouterr().err
    bad_mpy = tmp_path / "bad.mpy"
    bad_mpy.write_bytes(b"not an mpy")
    assert cli.main(["deploy", "--port", no_board, "--mpy", str(bad_mpy)]) == 1
    assert f"{bad_mpy}: not a .mpy file" in capsys.readouterr().err


def test_the_host_checks_configs_with_the_boards_own_schema():
    """deploy reads es_config.check from firmware/modules and es_adapt.DEFAULTS' keys."""
    from earshot import adapt

    assert set(deploy.adapt_keys()) == set(adapt.DEFAULTS)
    es_config = deploy._es_module("es_config")
    assert set(es_config.DEFAULTS) == {"model", "cutoff", "window", "refractory", "vad",
                                       "source", "i2s", "file", "block_hops", "stats_every",
                                       "autostart", "adapt"}  # fmt: skip
    assert es_config.check(es_config.DEFAULTS) == []
