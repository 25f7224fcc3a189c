# Model input features (Frontend(input_norm)) of a raw int16 file on MicroPython, streamed in
# uneven chunks. Usage: micropython norm.py SAMPLES.raw INPUT_NORM OUT.bin
import sys

import _earshot as es

with open(sys.argv[1], "rb") as f:
    samples = f.read()
fe = es.Frontend(int(sys.argv[2]))
hop_bytes = 2 * es.HOP_SAMPLES
total = len(samples) // hop_bytes
mv = memoryview(samples)
out = bytearray()
pos, size = 0, 1
while pos < total:
    n = min(size, total - pos)
    part = bytearray(n * es.MEL_BINS)
    fe.run(mv[pos * hop_bytes : (pos + n) * hop_bytes], part)
    out += part
    pos += n
    size += 1
with open(sys.argv[3], "wb") as f:
    f.write(out)
try:
    es.Frontend(3)
except ValueError as e:
    print("refused", e)
