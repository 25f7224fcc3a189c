# Features of a raw int16 file on MicroPython: stateless, and streamed in uneven chunks.
# Usage: micropython features.py SAMPLES.raw OUT.bin
# Writes the stateless features (hops * MEL_BINS bytes) to OUT.bin; prints whether the
# streamed features equal them.
import sys

import earshot

with open(sys.argv[1], "rb") as f:
    samples = f.read()
feats = earshot.features_of(samples)
with open(sys.argv[2], "wb") as f:
    f.write(feats)

# Stream through one Frontend in chunks of 1, 2, 3, ... hops.
hop_bytes = 2 * earshot.HOP_SAMPLES
fe = earshot.Frontend()
streamed = bytearray()
pos, size = 0, 1
mv = memoryview(samples)
while pos < earshot.hops(samples):
    n = min(size, earshot.hops(samples) - pos)
    part = bytearray(n * earshot.MEL_BINS)
    fe.run(mv[pos * hop_bytes : (pos + n) * hop_bytes], part)
    streamed += part
    pos += n
    size += 1
print("hops", earshot.hops(samples))
print("streamed equal", streamed == feats)
