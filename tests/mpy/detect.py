# Detector on MicroPython over a raw int16 file, in blocks (state carries across calls).
# Usage: micropython detect.py BLOB SAMPLES.raw OUT.bin BLOCK_HOPS [key=value ...]
# keys: cutoff, window, refractory (ints), vad, gate (0/1). Writes probs then flags (hops
# bytes each) to OUT.bin; prints the detection count, stats(), gate_stats() and the last
# feature row (rows()).
import sys

import earshot

model = earshot.load_model(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    samples = f.read()
block = int(sys.argv[4])
kwargs = {}
for arg in sys.argv[5:]:
    key, value = arg.split("=")
    kwargs[key] = bool(int(value)) if key in ("vad", "gate") else int(value)
det = earshot.Detector(model, **kwargs)

n = earshot.hops(samples)
hop_bytes = 2 * earshot.HOP_SAMPLES
probs = bytearray(n)
flags = bytearray(n)
mv = memoryview(samples)
pmv = memoryview(probs)
fmv = memoryview(flags)
detections = 0
pos = 0
while pos < n:
    k = min(block, n - pos)
    detections += det.run(
        mv[pos * hop_bytes : (pos + k) * hop_bytes], pmv[pos : pos + k], fmv[pos : pos + k]
    )
    pos += k
with open(sys.argv[3], "wb") as f:
    f.write(probs)
    f.write(flags)
print("detections", detections)
print("stats", det.stats())
gate = det.gate_stats()
print("gate_stats", gate)
row = bytearray(earshot.MEL_BINS)
print("rows", det.rows(gate[2] - 1, row), list(row))
det.reset()
print("stats after reset", det.stats())
