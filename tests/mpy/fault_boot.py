# A test board's boot.py (or a prelude): a power cut at a chosen point of `earshot deploy`
# (tests/test_deploy_powerloss.py). When fault.json exists on the flash, either
#   {"file": NAME, "at": N}: the write that reaches byte N of file NAME (opened for writing,
#                             as mpremote's and ampy's copies do) writes bytes up to N only;
#   {"op": K}:                the K-th os.rename/os.remove (as the deploy's commit program
#                             calls them, through `import os`) is not done;
# then fault.json is removed (the fault fires once), "fault.hit" is created and the
# interpreter waits to be killed: the test SIGKILLs it, a power cut. Names start with _fault_
# (the virtual board runs boot.py in its own namespace and deletes its _os, _sys...).
import builtins
import json
import os
import sys
import time

try:
    with open("fault.json") as _f:
        _fault_spec = json.load(_f)
except OSError:
    _fault_spec = None


def _fault_die():
    os.remove("fault.json")
    open("fault.hit", "w").close()
    while True:
        time.sleep(1)


if _fault_spec and "file" in _fault_spec:
    _fault_real_open = builtins.open

    class _Writer:
        def __init__(self, f):
            self.f = f
            self.n = 0

        def write(self, b):
            left = _fault_spec["at"] - self.n
            if len(b) >= left:
                self.f.write(b[:left])
                self.f.close()
                _fault_die()
            self.n += len(b)
            return self.f.write(b)

        def close(self):
            self.f.close()

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def _fault_open(name, mode="r", *a):
        f = _fault_real_open(name, mode, *a)
        return _Writer(f) if name == _fault_spec["file"] and "w" in mode else f

    builtins.open = _fault_open
elif _fault_spec and "op" in _fault_spec:
    _fault_os = os
    _fault_count = [0]

    class _Os:
        def __getattr__(self, name):
            return getattr(_fault_os, name)

        def _op(self):
            _fault_count[0] += 1
            if _fault_count[0] == _fault_spec["op"]:
                _fault_die()

        def rename(self, a, b):
            self._op()
            _fault_os.rename(a, b)

        def remove(self, p):
            if p != "fault.json":
                self._op()
            _fault_os.remove(p)

    sys.modules["os"] = _Os()
