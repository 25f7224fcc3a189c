# Earshot on MicroPython: the `_earshot` C module plus a few conveniences.
#
# `import earshot` works on firmware built with the user C module (firmware/binding) and with
# the dynamic native module `_earshot.mpy` on sys.path. Everything `_earshot` exports is
# re-exported here (firmware/binding/earshot_mod.c documents it):
#   SAMPLE_RATE, HOP_SAMPLES, WINDOW_SAMPLES, MEL_BINS, MAX_WINDOW, FLAG_VAD, FLAG_RAN,
#   FLAG_OUTPUT, FLAG_DETECT, VERSION_MAJOR, VERSION_MINOR,
#   crc32(data, crc=0), hops(samples), features(samples, out),
#   Frontend(), Model(blob), Engine(model), Detector(model, cutoff, window, refractory, vad).

import os

import _earshot
from _earshot import *


def load_model(source):
    """Parse a model blob; return an `earshot.Model`.

    source: a buffer (bytes, bytearray, memoryview) used in place, without a copy; e.g. a
    bytes constant in a frozen module, which stays in flash. Or a path (str): the file is
    read once into a bytearray of exactly its size (the Model keeps it; do not modify it).
    Raises OSError when the file cannot be read in full, ValueError naming the problem when
    the blob is invalid (bad magic, CRC mismatch, an offset out of bounds, ...).
    """
    if isinstance(source, str):
        size = os.stat(source)[6]
        blob = bytearray(size)
        with open(source, "rb") as f:
            got = f.readinto(blob)
        if got != size:
            raise OSError(f"model file {source}: read {got or 0} of {size} bytes")
        source = blob
    return _earshot.Model(source)


def features_of(samples):
    """Stateless int8 log-mel features of int16 samples, as a new bytearray.

    samples: bytes, bytearray or array('h') of int16 PCM at SAMPLE_RATE Hz; whole hops of
    HOP_SAMPLES samples are used. Returns hops(samples) * MEL_BINS bytes, row-major (hop,
    bin), each an int8 stored in a byte. Raises TypeError/ValueError as `features`.
    """
    out = bytearray(_earshot.hops(samples) * _earshot.MEL_BINS)
    _earshot.features(samples, out)
    return out
