# Bad model blobs on MicroPython: each must raise ValueError naming the problem, and the
# interpreter must keep running. Usage: micropython bad_blobs.py BLOB...
import sys

import earshot

for path in sys.argv[1:]:
    try:
        earshot.load_model(path)
    except ValueError as exc:
        print("ValueError", exc)
    else:
        print("accepted", path)
# Still alive: do real work after the errors.
print("alive", len(earshot.features_of(bytes(2 * earshot.HOP_SAMPLES * 3))))
