# Earshot: the two commands a user needs are `make demo` and `make test`.
# Everything else here is a step they run.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD := build
CC ?= cc
CORE_CFLAGS ?= -std=c99 -O2 -g -Wall -Wextra -fPIC

include firmware/core/core.mk

.PHONY: all setup build lib natmod dist demo test check clean

all: build

# Create .venv and install the host tools with every extra (TensorFlow, the virtual board,
# the reference engines), plus the Debian packages the tools call (when run as root).
setup: $(VENV)/.installed

# flock: a second setup at the same time (two terminals, CI and a developer) waits for the
# first instead of installing into the same .venv at once.
$(VENV)/.installed: pyproject.toml constraints.txt scripts/setup.sh
	PYTHON=$(PYTHON) VENV=$(VENV) flock $(VENV).lock sh scripts/setup.sh
	touch $@

# The C core as a shared library for CPython (ctypes): training features, scoring, parity tests.
lib: $(BUILD)/libearshot.so

$(BUILD)/libearshot.so: $(EARSHOT_CORE_SRC) $(EARSHOT_CORE_HDR)
	@mkdir -p $(BUILD)
	$(CC) $(CORE_CFLAGS) -shared -o $@ $(EARSHOT_CORE_SRC)

# The binding as an x64 dynamic native module for the virtual board (build/x64/_earshot.mpy).
# MPY_DIR (a MicroPython checkout) takes precedence over the PyPI-sourced 1.23 toolchain.
natmod: setup
	$(PY) -m earshot.board.natmod --arch x64

build: lib natmod

# _earshot.mpy per architecture, as emlearn-micropython ships them, each with a package.json for
# `mpremote mip install`: build/dist/<arch>_<abi>/. x64, armv7m, armv7emsp, armv7emdp and xtensa
# (Debian's gcc-arm-none-eabi, gcc-xtensa-lx106) must build; x86, armv6m, xtensawin and
# rv32imc are built where their compiler and MicroPython tree allow, and skipped otherwise.
# A wheel built afterwards carries them.
dist: setup
	$(PY) -m earshot.board.natmod --dist

demo: setup build
	$(VENV)/bin/earshot demo

# Every test, as CI runs it.
test: setup build
	$(VENV)/bin/pytest -ra

# The fast tier for the edit-test loop: every test not marked slow (training runs, benchmarks,
# end-to-end board sessions); a few minutes on 2 cores.
check: setup build
	$(VENV)/bin/pytest -ra -m "not slow"

clean:
	rm -rf $(BUILD)
