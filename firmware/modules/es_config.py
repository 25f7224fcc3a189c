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


def merge(overrides):
    """DEFAULTS updated with `overrides` (a dict). Raises ValueError naming unknown keys."""
    unknown = [k for k in overrides if k not in DEFAULTS]
    if unknown:
        raise ValueError("unknown config keys: " + ", ".join(sorted(unknown)))
    cfg = {}
    for key, value in DEFAULTS.items():
        if isinstance(value, dict):
            value = dict(value)
            value.update(overrides.get(key) or {})
        elif key in overrides:
            value = overrides[key]
        cfg[key] = value
    for key in ("block_hops", "stats_every"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError("%s must be a positive integer, got %r" % (key, cfg[key]))
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
