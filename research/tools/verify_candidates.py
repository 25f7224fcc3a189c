"""Check that research/candidates/*.json, now overrides ("extends"), load to the same training
config as the full copies they replaced (configs/candidates/ at commit 0ec61d1).

    .venv/bin/python research/tools/verify_candidates.py

Compares ``earshot.train.load_config`` of both as sorted JSON, so 2 against 2.0 counts as a
difference too. Exits 1 and names the file when one differs. Needs the git history.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from earshot import train

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "0ec61d1"  # the last commit with configs/candidates/ as full copies


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout


def main() -> int:
    old_files = git("ls-tree", "--name-only", BEFORE, "configs/candidates/").split()
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        for rel in old_files:
            name = Path(rel).name
            old_path = Path(tmp) / name
            old_path.write_text(git("show", f"{BEFORE}:{rel}"))
            old = train.load_config(old_path)
            new = train.load_config(ROOT / "research" / "candidates" / name)
            if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
                bad.append(name)
                print(f"different: {name}")
    print(f"{len(old_files) - len(bad)}/{len(old_files)} candidates load identically")
    return 1 if bad or not old_files else 0


if __name__ == "__main__":
    sys.exit(main())
