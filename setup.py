"""Package data for the wheel: what the CLI reads besides Python code.

pyproject.toml holds the metadata; this file only extends ``build_py`` to copy the C core
and binding sources, the on-device modules, the default models, the board definitions, the
shipped training configs (``earshot train --preset``), the on-device examples, the
Makefile that builds the host library, ``package.json`` and the prebuilt ``.mpy`` files of
``make dist`` (when built) into ``earshot/_share/`` of the build, where
:mod:`earshot.paths` finds them once installed. An editable install copies nothing: it runs
from the clone, where :mod:`earshot.paths` finds the same files in place.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: (glob under the source root) copied to earshot/_share/ with the same relative path.
SHARE = [
    "Makefile", "LICENSE", "package.json",
    "firmware/core/*.c", "firmware/core/*.h", "firmware/core/*.mk",
    "firmware/binding/*", "firmware/modules/*.py",
    "models/*/*", "boards/*", "boards/*/*", "configs/*.json", "examples/*",
    "build/dist/*/_earshot.mpy",
]  # fmt: skip


class BuildPyWithShare(build_py):
    """build_py, then the package data of :data:`SHARE` under earshot/_share/."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "earshot" / "_share"
        shutil.rmtree(dest, ignore_errors=True)  # no file left over from an earlier build
        for pattern in SHARE:
            for src in sorted(HERE.glob(pattern)):
                if not src.is_file() or "__pycache__" in src.parts:
                    continue
                rel = src.relative_to(HERE)
                if rel.parts[0] == "build":  # build/dist/<arch>/ -> dist/<arch>/
                    rel = rel.relative_to("build")
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)


# setuptools' own scratch space, apart from the build outputs of the Makefile in build/.
setup(
    cmdclass={"build_py": BuildPyWithShare},
    options={"build": {"build_base": "build/setuptools"}},
)
