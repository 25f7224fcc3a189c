# Earshot's part of every board's frozen manifest (MicroPython tools/manifestfile.py).
# Included by boards/<BOARD>/manifest.py; paths are relative to this file (manifestfile.py
# runs each manifest with its own folder as the working directory).
import os

# The on-device modules, all but main.py: a frozen main.py would shadow the one on flash
# that `earshot deploy` writes and users edit. A detection-only firmware
# (MICROPY_PY_EARSHOT_ADAPT=0 in the build's environment, as `earshot firmware build` sets
# it; firmware/binding/micropython.cmake) leaves out es_adapt.py, which needs the Adapter.
_MODULES = "../firmware/modules"
_SKIP = {"main.py"}
if os.environ.get("MICROPY_PY_EARSHOT_ADAPT", "1") == "0":
    _SKIP.add("es_adapt.py")
for _name in sorted(os.listdir(_MODULES)):
    if _name.endswith(".py") and _name not in _SKIP:
        module(_name, base_path=_MODULES)

# The model, as a bytes constant that stays in flash (es_model.BLOB), when `earshot firmware
# build` generated one (it sets EARSHOT_FROZEN_DIR); see host_tools/earshot/board/firmware.py.
_FROZEN = os.environ.get("EARSHOT_FROZEN_DIR")
if _FROZEN and os.path.isfile(os.path.join(_FROZEN, "es_model.py")):
    module("es_model.py", base_path=_FROZEN)
