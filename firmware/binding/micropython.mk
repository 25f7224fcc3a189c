# Earshot as a MicroPython user C module, for Make-based ports (unix, esp8266, rp2 via make...):
#   make USER_C_MODULES=<earshot>/firmware/binding ...
# CMake-based ports (esp32, rp2) use micropython.cmake in this folder instead.
EARSHOT_MOD_DIR := $(USERMOD_DIR)

# The core's sources (EARSHOT_CORE_SRC, EARSHOT_CORE_DIR): the one list every build uses.
include $(EARSHOT_MOD_DIR)/../core/core.mk

# The binding is scanned for qstrs; the core has none, so it goes in the library list.
SRC_USERMOD_C += $(EARSHOT_MOD_DIR)/earshot_mod.c
SRC_USERMOD_LIB_C += $(EARSHOT_CORE_SRC)

CFLAGS_USERMOD += -I$(EARSHOT_CORE_DIR)
