"""``make dist`` and mip: ``_earshot.mpy`` for every architecture with a compiler here (at least
x64, armv7m, armv7emsp, armv7emdp and xtensa), each in ``<arch>_<abi>/`` beside a
``package.json``; the x64 one loaded and run on the MicroPython unix port, the others checked
by header and size (nothing here runs ARM or Xtensa code). ``package.json`` at the root
installs the on-device modules with ``mpremote mip install`` on the virtual board.
"""

import json
import os
import shutil
import subprocess
import sys
import zlib

import pytest

from earshot import __version__
from earshot.board import natmod
from earshot.board.deploy import mpremote
from earshot.board.vboard import VirtualBoard, micropython_executable
from earshot.paths import FIRMWARE, ROOT

#: A natmod must fit a board's flash budget for code: the x64 build is the largest here.
MAX_MPY_BYTES = 48 * 1024


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("xtensa-lx106-elf-gcc") is None:
        msg = "cross compilers missing (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
        msg += " gcc-xtensa-lx106 picolibc-xtensa-lx106-elf)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " (CI=true requires them)")
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("dist")
    done = natmod.dist(out=out, work=tmp_path_factory.mktemp("work"), log=lambda m: None)
    return out, done


def test_dist_builds_at_least_four_architectures(dist):
    out, done = dist
    built = {a for a, p in done.items() if not isinstance(p, str)}
    assert set(natmod.DIST_REQUIRED) <= built, done
    assert len(built) >= 4
    for arch in built:
        folder = out / f"{arch}_6.3"
        mpy = folder / "_earshot.mpy"
        assert natmod.mpy_arch(mpy) == arch
        assert natmod.mpy_abi(mpy) == "6.3"
        assert 8 * 1024 < mpy.stat().st_size <= MAX_MPY_BYTES, (arch, mpy.stat().st_size)
        pkg = json.loads((folder / "package.json").read_text())
        assert pkg == {"urls": [["_earshot.mpy", "_earshot.mpy"]], "deps": [],
                       "version": __version__}  # fmt: skip
    for arch, why in done.items():  # a skipped one says why
        assert not isinstance(why, str) or why, arch


def test_x64_dist_module_loads_and_runs_on_micropython(dist, tmp_path):
    out, _ = dist
    shutil.copy(out / "x64_6.3" / "_earshot.mpy", tmp_path)
    code = "import _earshot; print(_earshot.crc32(b'123456789'), _earshot.SAMPLE_RATE)"
    proc = subprocess.run([micropython_executable(), "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(zlib.crc32(b"123456789")), "16000"]


def test_a_required_architecture_left_out_fails_the_dist(tmp_path):
    with pytest.raises(natmod.NatmodError, match="needs x64"):
        natmod.dist([], out=tmp_path, required=["x64"], log=print)


def test_package_json_lists_every_library_module():
    pkg = json.loads((ROOT / "package.json").read_text())
    assert pkg["version"] == __version__
    want = sorted(p.name for p in (FIRMWARE / "modules").glob("*.py") if p.name != "main.py")
    assert sorted(dest for dest, _ in pkg["urls"]) == want
    for dest, src in pkg["urls"]:
        assert (ROOT / src).is_file() and (ROOT / src).name == dest


def test_mip_installs_the_modules_and_the_natmod_on_the_virtual_board(dist, tmp_path):
    out, _ = dist
    with VirtualBoard(tmp_path / "flash") as board:
        args = ["mip", "install", str(ROOT / "package.json"),
                str(out / "x64_6.3" / "package.json")]  # fmt: skip
        log = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.port, *args],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert log.returncode == 0, log.stdout + log.stderr
        lib = tmp_path / "flash" / "lib"
        modules = [d for d, _ in json.loads((ROOT / "package.json").read_text())["urls"]]
        assert sorted(p.name for p in lib.iterdir()) == sorted(["_earshot.mpy", *modules])
        got = mpremote(board.port, "exec", "import earshot, es_loop, es_config\n"
                       "print('ok', earshot.__file__, earshot.crc32(b'123456789'))")  # fmt: skip
        words = got.decode().split()
        assert words[0] == "ok" and words[1].startswith("/lib/"), got
        assert int(words[2]) == zlib.crc32(b"123456789")
