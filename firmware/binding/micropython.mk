# Earshot as a MicroPython user C module, for Make-based ports (unix, esp8266, rp2 via make...):
#   make USER_C_MODULES=<earshot>/firmware ...
#   make USER_C_MODULES=<earshot>/firmware MICROPY_PY_EARSHOT_ADAPT=0 ...   # detection only
# (or MICROPY_PY_EARSHOT_ADAPT ?= 0 in the board's mpconfigboard.mk).
# CMake-based ports (esp32, rp2) use micropython.cmake in this folder instead.
EARSHOT_MOD_DIR := $(USERMOD_DIR)

# The core's sources (EARSHOT_CORE_*, core.mk) and the binding's (EARSHOT_BINDING_*,
# earshot.mk): the lists every build uses.
include $(EARSHOT_MOD_DIR)/../core/core.mk
include $(EARSHOT_MOD_DIR)/earshot.mk

# The binding is scanned for qstrs; the core has none, so it goes in the library list.
SRC_USERMOD_C += $(addprefix $(EARSHOT_MOD_DIR)/,$(EARSHOT_BINDING_SRC))
SRC_USERMOD_LIB_C += $(EARSHOT_BINDING_CORE_SRC)

CFLAGS_USERMOD += -I$(EARSHOT_CORE_DIR) -DMICROPY_PY_EARSHOT_ADAPT=$(MICROPY_PY_EARSHOT_ADAPT)
