# The Earshot C core's sources: the one list every build uses (the ctypes library,
# the natmod Makefile, micropython.mk). micropython.cmake globs the same folder.
EARSHOT_CORE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
EARSHOT_CORE_SRC := $(sort $(wildcard $(EARSHOT_CORE_DIR)/*.c))
EARSHOT_CORE_HDR := $(sort $(wildcard $(EARSHOT_CORE_DIR)/*.h))
# On-device adaptation (es_adapt*.c), and the rest: a detection-only build takes
# EARSHOT_CORE_DETECT_SRC alone (MICROPY_PY_EARSHOT_ADAPT=0, natmod.py --no-adapt).
EARSHOT_CORE_ADAPT_SRC := $(filter $(EARSHOT_CORE_DIR)/es_adapt%.c,$(EARSHOT_CORE_SRC))
EARSHOT_CORE_DETECT_SRC := $(filter-out $(EARSHOT_CORE_ADAPT_SRC),$(EARSHOT_CORE_SRC))
