"""Setup waits for locks instead of failing: every apt-get call in scripts/setup.sh waits for
dpkg's lock, and `make setup` serialises two setups on the same .venv with flock."""

import re
import shutil

import pytest

from earshot.paths import ROOT


def test_every_apt_get_call_waits_for_the_dpkg_lock():
    text = (ROOT / "scripts" / "setup.sh").read_text()
    assert 'APT="apt-get -o DPkg::Lock::Timeout=600"' in text
    # Commands only: comments and echo lines (messages that name the command) left out.
    code = [line.split("#")[0] for line in text.splitlines() if "echo " not in line]
    calls = [line for line in code if re.search(r"\$APT\b|apt-get\s+(update|install)", line)]
    assert len(calls) >= 3
    for line in calls:
        assert "apt-get " not in line.replace('APT="apt-get', ""), line


def test_make_setup_takes_a_lock_and_flock_exists():
    rule = (ROOT / "Makefile").read_text().split("$(VENV)/.installed:", 1)[1].split("\n\n")[0]
    assert "flock $(VENV).lock sh scripts/setup.sh" in rule
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is missing: make setup needs it")
