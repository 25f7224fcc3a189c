# The binding's sources: the one list both make builds use (micropython.mk for firmware, the
# natmod's Makefile); micropython.cmake lists the same files (tests/test_natmod.py checks).
# Include firmware/core/core.mk first.
#
# MICROPY_PY_EARSHOT_ADAPT (default 1): 0 builds a detection-only `_earshot`, without the
# Adapter type (earshot_adapt.c) and without the core's adaptation (es_adapt*.c).
MICROPY_PY_EARSHOT_ADAPT ?= 1

# The binding's own files (they hold the module's qstrs), and the core's it needs.
EARSHOT_BINDING_SRC := earshot_mod.c earshot_detect.c
EARSHOT_BINDING_CORE_SRC := $(EARSHOT_CORE_DETECT_SRC)
ifeq ($(MICROPY_PY_EARSHOT_ADAPT),1)
EARSHOT_BINDING_SRC += earshot_adapt.c
EARSHOT_BINDING_CORE_SRC += $(EARSHOT_CORE_ADAPT_SRC)
else ifneq ($(MICROPY_PY_EARSHOT_ADAPT),0)
$(error MICROPY_PY_EARSHOT_ADAPT must be 0 or 1, not "$(MICROPY_PY_EARSHOT_ADAPT)")
endif

# The natmod's alone: its entry point (mpy_init) and the libc functions the core calls.
EARSHOT_NATMOD_SRC := earshot_natmod.c natmod_libc.c
