# The Earshot C core's sources: the one list every build uses (the ctypes library,
# the natmod Makefile, micropython.mk). micropython.cmake globs the same folder.
EARSHOT_CORE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
EARSHOT_CORE_SRC := $(sort $(wildcard $(EARSHOT_CORE_DIR)/*.c))
EARSHOT_CORE_HDR := $(sort $(wildcard $(EARSHOT_CORE_DIR)/*.h))
