# Earshot device configuration (MicroPython): defaults merged with earshot.json on flash.
#
# Keys (JSON object at the top level; nested objects are merged one level deep):
#   model        where the model blob is: a file path on flash; "partition:<label>", a data
#                partition (written by `earshot flash --model`, label "model" in boards/
#                partition tables); when the file is absent and the firmware has a frozen
#                es_model module (`earshot firmware build`), its BLOB. merge() turns the
#                last two into a buffer for earshot.load_model (see model_source).
#   cutoff       posterior cutoff, probability * 255 (null: the blob's default)
#   window       posterior window in model outputs (null: the blob's default)
#   refractory   model outputs ignored after a detection (null: the blob's default)
#   vad          true: gate the model with the VAD
#   source       "i2s" or "file" (see es_audio.make_source)
#   i2s          the microphone, keys of es_audio.I2SSource; empty: the board definition
#                es_board.MIC (boards/<BOARD>/es_board.py, the one place per board)
#   file         {"path": str, "realtime": bool}: a file standing in for the microphone
#   block_hops   hops (10 ms each) read and processed per loop iteration
#   stats_every  hops between two STATS telemetry frames
#   autostart    true: main.py starts the detector loop at boot
#   adapt        on-device adaptation while listening (es_adapt.py, es_loop.py), off by
#                default: {"enabled": true} turns it on; other keys override es_adapt.DEFAULTS
#                (e.g. "slice_macs": MACs of training per loop iteration, "min_pos" /
#                "min_neg": pseudo-labels before training starts) plus "save_to" (where
#                the adapted model goes, "adapted.bin") and "reload" (true: detect with the
#                adapted model as soon as it is saved). At boot the adapted model is used
#                when its file is valid, else the configured model.

import json
import os
import struct

PATH = "earshot.json"

DEFAULTS = {
    "model": "model.bin",
    "cutoff": None,
    "window": None,
    "refractory": None,
    "vad": True,
    "source": "i2s",
    "i2s": {},
    "file": {"path": "mic.raw", "realtime": True},
    "block_hops": 10,
    "stats_every": 100,
    "autostart": False,
    "adapt": {"enabled": False, "save_to": "adapted.bin", "reload": True},
}


# What check() accepts besides DEFAULTS' keys: the microphone keys (es_audio.I2SSource), the
# file source's keys (es_audio.FileSource) and the "adapt" keys es_loop.py handles itself
# (the rest are es_adapt.DEFAULTS keys, checked by es_loop when adaptation starts, and by
# the host's `earshot deploy`, which passes them as `adapt_keys`).
I2S_KEYS = ("kind", "id", "sck", "ws", "sd", "mck", "bits", "shift", "ibuf")
FILE_KEYS = ("path", "realtime")
ADAPT_OWN = {"enabled": bool, "save_to": str, "reload": bool}  # es_loop.ADAPT_KEYS
# Integer keys: (lowest, highest, None allowed): the binding's ranges for the posterior.
INTS = {"cutoff": (1, 255, True), "window": (1, 32, True), "refractory": (0, 65535, True),
        "block_hops": (1, 1 << 20, False), "stats_every": (1, 1 << 20, False)}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _sub(key, value, known, out):
    # Problems of a nested object (i2s, file): unknown keys, non-objects.
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.append("%s must be an object, got %r" % (key, value))
        return {}
    for k in value:
        if known is not None and k not in known:
            out.append("unknown %s key %r (known: %s)" % (key, k, ", ".join(known)))
    return value


def check(overrides, adapt_keys=None):
    """The problems (a list of strings, empty when fine) of a configuration object
    `overrides` (what earshot.json holds): not an object, unknown keys (also inside i2s,
    file and adapt), wrong types, integers out of range (cutoff 1..255 as probability * 255,
    window 1..32, refractory 0..65535, block_hops and stats_every >= 1), source not "i2s" or
    "file". `adapt_keys`: the es_adapt.DEFAULTS keys an "adapt" object may also hold (None:
    not checked here; es_loop checks them when adaptation starts). Touches no file."""
    if not isinstance(overrides, dict):
        return ["top level must be an object, got %s" % type(overrides).__name__]
    out = []
    for k in overrides:
        if k not in DEFAULTS:
            out.append("unknown key %r (known: %s)" % (k, ", ".join(sorted(DEFAULTS))))
    for k, (lo, hi, none_ok) in INTS.items():
        if k in overrides:
            v = overrides[k]
            if not ((v is None and none_ok) or (_is_int(v) and lo <= v <= hi)):
                out.append("%s must be an integer in %d..%d%s, got %r"
                           % (k, lo, hi, " or null" if none_ok else "", v))
    for k in ("vad", "autostart"):
        if k in overrides and not isinstance(overrides[k], bool):
            out.append("%s must be true or false, got %r" % (k, overrides[k]))
    m = overrides.get("model", "model.bin")
    if not ((isinstance(m, str) and m) or isinstance(m, (bytes, bytearray, memoryview))):
        out.append("model must be a file path or \"partition:<label>\", got %r" % (m,))
    if overrides.get("source", "i2s") not in ("i2s", "file"):
        out.append("source must be \"i2s\" or \"file\", got %r" % (overrides["source"],))
    for k, v in _sub("i2s", overrides.get("i2s"), I2S_KEYS, out).items():
        if k in I2S_KEYS and not (_is_int(v) or (k == "kind" and isinstance(v, str))):
            out.append("i2s.%s must be %s, got %r" % (k, "a string" if k == "kind"
                                                      else "an integer", v))
    f = _sub("file", overrides.get("file"), FILE_KEYS, out)
    if "path" in f and not isinstance(f["path"], str):
        out.append("file.path must be a string, got %r" % (f["path"],))
    if "realtime" in f and not isinstance(f["realtime"], bool):
        out.append("file.realtime must be true or false, got %r" % (f["realtime"],))
    known = ("enabled", "save_to", "reload") + tuple(adapt_keys or ())
    for k, v in _sub("adapt", overrides.get("adapt"), known if adapt_keys else None, out).items():
        typ = ADAPT_OWN.get(k)
        if typ is not None and not isinstance(v, typ):
            out.append("adapt.%s must be %s, got %r" % (k, "a string" if typ is str
                                                        else "true or false", v))
        elif typ is None and adapt_keys and (isinstance(v, bool) or
                                             not isinstance(v, (int, float))):
            out.append("adapt.%s must be a number, got %r" % (k, v))
    return out


def merge(overrides):
    """DEFAULTS updated with `overrides` (a dict). Raises ValueError listing the problems
    check() finds (unknown keys, wrong types, out of range)."""
    bad = check(overrides)
    if bad:
        raise ValueError("config: " + "; ".join(bad))
    cfg = {}
    for key, value in DEFAULTS.items():
        if isinstance(value, dict):
            value = dict(value)
            value.update(overrides.get(key) or {})
        elif key in overrides:
            value = overrides[key]
        cfg[key] = value
    cfg["model"] = model_source(cfg["model"])
    return cfg


PARTITION_PREFIX = "partition:"
BLOCK = 4096  # flash sector; esp32.Partition block size


def read_partition(label):
    """The model blob in the data partition `label`, as a bytearray (read once; its size
    is the blob's total_bytes field, offset 12, rounded up to whole blocks). Raises OSError
    when there is no such partition (or no esp32 module), ValueError when it holds no blob
    (bad magic, or a size beyond the partition)."""
    try:
        import esp32
    except ImportError:
        raise OSError("model %s%s: this port has no esp32.Partition" % (PARTITION_PREFIX, label))
    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=label)
    if not found:
        raise OSError("no data partition %r for the model" % label)
    part = found[0]
    head = bytearray(BLOCK)
    part.readblocks(0, head)
    if head[0:4] != b"ESMB":
        raise ValueError("partition %r holds no Earshot model (flash one with earshot flash "
                         "--model)" % label)
    total = struct.unpack_from("<I", head, 12)[0]
    size = part.ioctl(4, 0) * BLOCK  # MP_BLOCKDEV_IOCTL_BLOCK_COUNT
    if total < 16 or total > size:
        raise ValueError("partition %r: model size %d out of range" % (label, total))
    blob = bytearray((total + BLOCK - 1) // BLOCK * BLOCK)
    part.readblocks(0, blob)
    return blob


def model_source(model):
    """What earshot.load_model gets for config value `model`: a buffer for
    "partition:<label>" (read_partition) or for an absent file when a frozen es_model
    module exists (its BLOB, in flash); otherwise `model` unchanged (a path or a buffer)."""
    if not isinstance(model, str):
        return model
    if model.startswith(PARTITION_PREFIX):
        return read_partition(model[len(PARTITION_PREFIX) :])
    try:
        os.stat(model)
        return model
    except OSError:
        pass
    try:
        import es_model
    except ImportError:
        return model  # load_model reports the missing file
    return es_model.BLOB


def load(path=PATH):
    """The configuration: DEFAULTS merged with the JSON file at `path` if it exists.
    Raises ValueError for a file that is not a JSON object or has unknown keys."""
    try:
        f = open(path)
    except OSError:
        return merge({})
    with f:
        try:
            data = json.load(f)
        except ValueError:
            raise ValueError(path + ": not valid JSON")
    if not isinstance(data, dict):
        raise ValueError(path + ": top level must be an object")
    return merge(data)
