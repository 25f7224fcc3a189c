# Engine on MicroPython: push every feature row of a file, print the outputs.
# Usage: micropython engine.py BLOB FEATURES.bin
# Prints the model info (sorted items), then one "hop logit probability" line per output.
import sys

import earshot

model = earshot.load_model(sys.argv[1])
print("info", sorted(model.info().items()))
with open(sys.argv[2], "rb") as f:
    feats = f.read()
eng = earshot.Engine(model)
mv = memoryview(feats)
bins = earshot.MEL_BINS
for i in range(len(feats) // bins):
    logit = eng.push(mv[i * bins : (i + 1) * bins])
    if logit is not None:
        print(i, logit, model.probability(logit))
