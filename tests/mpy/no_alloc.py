# Frontend.run, Engine.push and Detector.run allocate nothing on the heap: gc.mem_alloc()
# is unchanged across 10,000 hops of each. Usage: micropython no_alloc.py BLOB
import gc
import sys

import earshot

HOPS = 10000
model = earshot.load_model(sys.argv[1])
det = earshot.Detector(model, vad=False)
eng = earshot.Engine(model)
fe = earshot.Frontend()
hop = bytearray(2 * earshot.HOP_SAMPLES)
for i in range(0, len(hop), 2):
    hop[i] = (i * 29) & 0xFF  # a fixed, non-silent hop
row = bytearray(earshot.MEL_BINS)
probs = bytearray(1)
flags = bytearray(1)


def measure(name, fn):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    fn()
    after = gc.mem_alloc()
    gc.enable()
    print(name, "heap delta", after - before)


def run_frontend():
    i = 0
    while i < HOPS:
        fe.run(hop, row)
        i += 1


def run_engine():
    i = 0
    while i < HOPS:
        eng.push(row)
        i += 1


def run_detector():
    i = 0
    while i < HOPS:
        det.run(hop, probs, flags)
        i += 1


measure("frontend", run_frontend)
measure("engine", run_engine)
measure("detector", run_detector)
print("detector model hops", det.stats()[1])
