"""Board folders (boards/): upstream conventions, partition tables, frozen manifests through
MicroPython's own manifestfile.py, and the on-device side that reads them (es_audio with a
stub machine.I2S, es_config's frozen and partition model sources) on the unix port."""

import subprocess
import sys
from pathlib import Path

import pytest

from earshot.board import boards, deploy, firmware, natmod
from earshot.paths import FIRMWARE, MODELS

MICROPYTHON = Path(sys.executable).with_name("micropython")
MODULES = FIRMWARE / "modules"
EXPECTED = {"ESP32_S3_DEVKITC_INMP441": "i2s", "XIAO_ESP32S3_SENSE": "pdm",
            "ESP32_S3_BOX_3": "es7210"}  # fmt: skip


def test_the_three_boards_exist_with_upstream_files():
    assert set(EXPECTED) <= set(boards.names())
    for name, kind in EXPECTED.items():
        b = boards.load(name)
        assert b.mic["kind"] == kind
        assert b.chip == "esp32s3" and b.firmware_offset == 0
        cmake = (b.path / "mpconfigboard.cmake").read_text()
        assert "set(IDF_TARGET esp32s3)" in cmake
        assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
        assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in cmake
        # The partition CSV named in the cmake file is the one board.json names.
        assert b.partitions_csv.name in cmake
        assert "MICROPY_HW_BOARD_NAME" in (b.path / "mpconfigboard.h").read_text()
        size = b.flash_size
        assert f"CONFIG_ESPTOOLPY_FLASHSIZE_{size}=y" in (b.path / "sdkconfig.board").read_text()


def test_partition_tables_fill_the_flash_and_hold_the_model():
    model_size = (MODELS / "alexa" / "model.bin").stat().st_size
    for name in EXPECTED:
        b = boards.load(name)
        parts = b.partitions()
        last = max(parts, key=lambda p: p.offset)
        assert last.offset + last.size == boards.FLASH_BYTES[b.flash_size], name
        model = b.partition("model")
        assert model.type == "data" and model.size >= 4 * model_size
        assert b.partition("factory").type == "app"
        assert b.partition("vfs").subtype == "fat"


def test_partition_parser_rejects_overlap_and_misalignment(tmp_path):
    bad = tmp_path / "p.csv"
    bad.write_text("nvs, data, nvs, 0x9000, 0x6000\nfactory, app, factory, 0x18000, 0x1000\n")
    with pytest.raises(boards.BoardError, match="not aligned"):
        boards.read_partitions(bad)
    bad.write_text("a, data, nvs, 0x9000, 0x6000\nb, data, nvs, 0xa000, 0x1000\n")
    with pytest.raises(boards.BoardError, match="overlaps"):
        boards.read_partitions(bad)
    bad.write_text("a, data, nvs, 0x9000\n")
    with pytest.raises(boards.BoardError, match=":1: need name"):
        boards.read_partitions(bad)


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(boards.BoardError, match="unknown board 'NOPE'; known boards: .*XIAO"):
        boards.load("NOPE")


def _manifest_files(board, frozen_dir=None, monkeypatch=None, tmp_path=None):
    tree = natmod.find_mpy_dir()
    sys.path.insert(0, str(tree / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    port = tmp_path / "port"
    (port / "boards").mkdir(parents=True, exist_ok=True)
    (port / "boards" / "manifest.py").write_text("# the port's own frozen modules\n")
    if frozen_dir is not None:
        monkeypatch.setenv("EARSHOT_FROZEN_DIR", str(frozen_dir))
    else:
        monkeypatch.delenv("EARSHOT_FROZEN_DIR", raising=False)
    m = manifestfile.ManifestFile(
        manifestfile.MODE_FREEZE,
        {"MPY_DIR": str(tree), "MPY_LIB_DIR": None, "PORT_DIR": str(port),
         "BOARD_DIR": str(board.path)},
    )  # fmt: skip
    m.execute(str(board.path / "manifest.py"))
    return {f.target_path for f in m.files()}


def test_frozen_manifest_through_micropythons_manifestfile(tmp_path, monkeypatch):
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    targets = _manifest_files(board, None, monkeypatch, tmp_path)
    on_device = {p.name for p in MODULES.glob("*.py")} - {"main.py"}
    assert targets == on_device | {"es_board.py"}
    model = firmware.write_frozen_model(MODELS / "alexa" / "model.bin", tmp_path / "frozen")
    targets = _manifest_files(board, model.parent, monkeypatch, tmp_path)
    assert "es_model.py" in targets and "main.py" not in targets


# -- on the device (unix port) -----------------------------------------------------------
STUB_MACHINE = '''
class Pin:
    def __init__(self, n):
        self.n = n
    def __repr__(self):
        return "Pin(%d)" % self.n
class I2S:
    RX = 0
    MONO = 0
    CALLS = []
    def __init__(self, id, **kw):
        I2S.CALLS.append((id, kw))
        self.kw = kw
    def readinto(self, buf):
        # a ramp of int32 samples (bits=32) or int16 samples (bits=16)
        import struct
        step = 4 if self.kw["bits"] == 32 else 2
        fmt = "<i" if step == 4 else "<h"
        for i in range(len(buf) // step):
            struct.pack_into(fmt, buf, i * step, (i - 3) * (65536 if step == 4 else 1))
        return len(buf)
    def deinit(self):
        pass
'''


def _mp(tmp_path, code, files=()):
    if not MICROPYTHON.is_file():
        pytest.skip("micropython (unix port) not installed")
    for name, text in files:
        (tmp_path / name).write_text(text)
    script = tmp_path / "t.py"
    script.write_text(f"import sys\nsys.path[:0] = [{str(tmp_path)!r}, {str(MODULES)!r}]\n" + code)
    proc = subprocess.run([str(MICROPYTHON), str(script)], capture_output=True, timeout=60,
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()
    return proc.stdout.decode()


def test_audio_reads_the_board_definition(tmp_path):
    board = boards.load("ESP32_S3_DEVKITC_INMP441")
    out = _mp(tmp_path, """
import es_audio, machine, struct
src = es_audio.make_source({"source": "i2s", "i2s": {}})
call = machine.I2S.CALLS[-1]
print(call[0], call[1]["sck"], call[1]["ws"], call[1]["sd"], call[1]["bits"])
buf = bytearray(8)
print(src.readinto(buf), struct.unpack("<4h", buf))
src.close()
""", [("machine.py", STUB_MACHINE), ("es_board.py", (board.path / "es_board.py").read_text())])
    mic = board.mic
    lines = out.split("\n")
    assert lines[0] == f"{mic['id']} Pin({mic['sck']}) Pin({mic['ws']}) Pin({mic['sd']}) 32"
    # 32-bit slots (i - 3) << 16 narrowed by shift 16 -> i - 3
    assert lines[1] == "8 (-3, -2, -1, 0)"


def test_audio_config_overrides_and_errors(tmp_path):
    xiao = boards.load("XIAO_ESP32S3_SENSE")
    box = boards.load("ESP32_S3_BOX_3")
    out = _mp(tmp_path, f"""
import es_audio, machine
def err(f):
    try:
        f()
    except (OSError, ValueError) as e:
        print(type(e).__name__, e)
err(lambda: es_audio.make_source({{"source": "i2s", "i2s": {{}}}}))
mic = {{"id": 1, "sck": 1, "ws": 2, "sd": 3, "ibuf": 64}}
es_audio.make_source({{"source": "i2s", "i2s": mic}})
print(machine.I2S.CALLS[-1][0], machine.I2S.CALLS[-1][1]["bits"])
err(lambda: es_audio.I2SSource({xiao.mic!r}))
machine.I2S.PDM_RX = 7
es_audio.I2SSource({xiao.mic!r})
print("pdm", machine.I2S.CALLS[-1][1]["sck"], machine.I2S.CALLS[-1][1]["sd"])
err(lambda: es_audio.I2SSource({box.mic!r}))
err(lambda: es_audio.I2SSource({{"kind": "i2s", "id": 0}}))
""", [("machine.py", STUB_MACHINE)])
    lines = out.strip().split("\n")
    assert lines[0].startswith("ValueError no microphone configured")
    assert lines[1] == "1 16"
    assert lines[2].startswith("OSError this firmware's machine.I2S has no PDM mode")
    assert lines[3] == "pdm Pin(42) Pin(41)"
    assert lines[4].startswith("OSError ES7210 microphone ADC")
    assert lines[5] == "ValueError microphone config lacks sck, ws, sd, ibuf"


def test_frozen_model_and_model_partition(tmp_path):
    if not deploy.mpy_path("x64").is_file():
        pytest.skip("build/x64/_earshot.mpy absent (make build)")
    blob = (MODELS / "alexa" / "model.bin").read_bytes()
    firmware.write_frozen_model(MODELS / "alexa" / "model.bin", tmp_path)
    (tmp_path / "_earshot.mpy").write_bytes(deploy.mpy_path("x64").read_bytes())
    part = tmp_path / "part.bin"
    part.write_bytes(blob + b"\xff" * (0x40000 - len(blob)))  # an erased flash tail
    stub_esp32 = f'''
class Partition:
    TYPE_DATA = 1
    @staticmethod
    def find(type, label=None):
        return [Partition()] if label == "model" else []
    def readblocks(self, block, buf):
        with open({str(part)!r}, "rb") as f:
            f.seek(block * 4096)
            f.readinto(buf)
    def ioctl(self, op, arg):
        return {0x40000 // 4096} if op == 4 else None
'''
    out = _mp(tmp_path, f"""
import es_config, es_model, earshot
cfg = es_config.merge({{"model": "no-such-file.bin"}})
print(cfg["model"] is es_model.BLOB, len(es_model.BLOB))
m = earshot.load_model(cfg["model"])
cfg = es_config.merge({{"model": "partition:model"}})
print(len(cfg["model"]), earshot.load_model(cfg["model"]).info() == m.info())
try:
    es_config.merge({{"model": "partition:other"}})
except OSError as e:
    print("OSError", e)
""", [("esp32.py", stub_esp32)])
    lines = out.strip().split("\n")
    assert lines[0] == f"True {len(blob)}"
    assert lines[1] == f"{(len(blob) + 4095) // 4096 * 4096} True"
    assert lines[2] == "OSError no data partition 'other' for the model"
