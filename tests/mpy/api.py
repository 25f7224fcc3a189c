# Earshot binding API on MicroPython, without data: constants, CRC-32, shapes and errors.
# Run by tests/test_natmod.py with _earshot.mpy and firmware/modules on MICROPYPATH; the
# output must equal api.py.exp.
import array

import earshot


def attempt(what, fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 (the point is to print which)
        print(what, type(exc).__name__, exc)
    else:
        print(what, "ok", result)


print("crc32 check", hex(earshot.crc32(b"123456789")))
print("crc32 chained", hex(earshot.crc32(b"6789", earshot.crc32(b"12345"))))
print("crc32 empty", earshot.crc32(b""))

hop = earshot.HOP_SAMPLES
ramp = array.array("h", [(i * 37) % 2001 - 1000 for i in range(10 * hop + 17)])
print("hops", earshot.hops(ramp), earshot.hops(bytes(ramp)), earshot.hops(b"\0" * (2 * hop - 1)))
feats = earshot.features_of(ramp)
print("features bytes", len(feats))
out = bytearray(len(feats))
print("features hops", earshot.features(ramp, out), out == feats)
print("features of bytes equal", earshot.features_of(bytes(ramp)) == feats)

# Streaming in uneven chunks equals one call.
fe = earshot.Frontend()
chunked = bytearray()
for lo, hi in ((0, 3), (3, 4), (4, 10)):
    part = bytearray((hi - lo) * earshot.MEL_BINS)
    fe.run(ramp[lo * hop : hi * hop], part)
    chunked += part
print("frontend chunked equal", chunked == feats)
fe.reset()
again = bytearray(len(feats))
fe.run(ramp, again)
print("frontend reset equal", again == feats)

# Bad input: clear errors, interpreter keeps going.
attempt("out too small", earshot.features, ramp, bytearray(len(feats) - 1))
attempt("out None", earshot.features, ramp, None)
attempt("out read-only", earshot.features, ramp, bytes(len(feats)))
attempt("float samples", earshot.features, array.array("f", [0.0] * hop), bytearray(40))
attempt("int32 samples", earshot.hops, array.array("i", [0] * hop))
attempt("not a buffer", earshot.hops, 3)
attempt("misaligned samples", earshot.hops, memoryview(b"\0" + bytes(ramp))[1:])
attempt("frontend args", earshot.Frontend, 1, 2)
attempt("model of int", earshot.Model, 5)
attempt("empty blob", earshot.Model, b"")
attempt("short blob", earshot.Model, b"ESMB")
attempt("bad magic", earshot.Model, b"XXXX" + bytes(60))
attempt("engine of str", earshot.Engine, "model")
attempt("detector of None", earshot.Detector, None)
attempt("detector no args", earshot.Detector)
print("alive", earshot.hops(ramp))
