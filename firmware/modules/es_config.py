# Earshot device configuration (MicroPython): defaults merged with earshot.json on flash.
#
# Keys (JSON object at the top level; nested objects are merged one level deep):
#   model        path of the model blob on flash
#   cutoff       posterior cutoff, probability * 255 (null: the blob's default)
#   window       posterior window in model outputs (null: the blob's default)
#   refractory   model outputs ignored after a detection (null: the blob's default)
#   vad          true: gate the model with the VAD
#   source       "i2s" or "file" (see es_audio.make_source)
#   i2s          {"id", "sck", "ws", "sd", "ibuf"}: the board's microphone (no defaults:
#                pins differ per board, see boards/)
#   file         {"path": str, "realtime": bool}: a file standing in for the microphone
#   block_hops   hops (10 ms each) read and processed per loop iteration
#   stats_every  hops between two STATS telemetry frames
#   autostart    true: main.py starts the detector loop at boot

import json

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
    return cfg


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
