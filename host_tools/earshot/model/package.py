"""Model packages: ``models/<wake_word>/`` with the blob, the int8 .tflite and a manifest.

``manifest.json`` (schema 1)::

    {
      "schema": 1,
      "wake_word": "alexa",
      "blob": "model.bin",            # file names, relative to the package folder
      "tflite": "model.tflite",
      "cutoff": 0.9,                  # default posterior cutoff, probability 0..1
      "window": 3,                    # posterior window, in model outputs
      "refractory": 25,               # model outputs ignored after a detection
      "feature_step_ms": 10,          # frontend hop (ES_HOP_SAMPLES / 16 kHz)
      "mel_bins": 40,                 # ES_MEL_BINS
      "input_frames": 93,             # receptive field, hops
      "output_stride": 6,             # hops between model outputs
      "blob_bytes": 12345,
      "blob_crc32": 305419896,        # zlib.crc32 of the whole blob file
      "engine_bytes": 4096,           # es_engine_mem_size() for this model
      "macs_per_30ms": 8520,          # macs_per_output * 3 / output_stride
      "input_norm": 0,                # 0, or 1: the model's input goes through es_norm
                                      # (the .tflite takes normalised features then)
      "min_earshot_version": "0.1.0", # "0.2.0" when input_norm is 1 (blob format 2), "0.3.0"
                                      # when it is 2 (ES_NORM_MINSTAT_GATE)
      "training": {...}               # optional: measured numbers from the training run
    }

:func:`load` checks a package without the C core (pure Python, usable on any host) and raises
one specific ``ValueError`` per problem, in the spirit of ESPHome's micro_wake_word manifest check.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

SCHEMA = 1
FEATURE_STEP_MS = 10  # ES_HOP_SAMPLES (160) / ES_SAMPLE_RATE_HZ (16000)
MEL_BINS = 40  # ES_MEL_BINS
MIN_EARSHOT_VERSION = "0.1.0"
MIN_EARSHOT_VERSION_NORM = "0.2.0"  # first release with es_norm and blob format 2
MIN_EARSHOT_VERSION_GATE = "0.3.0"  # first release with ES_NORM_MINSTAT_GATE
MANIFEST = "manifest.json"
BLOB_NAME = "model.bin"
TFLITE_NAME = "model.tflite"

#: Keys every schema-1 manifest holds, with their JSON types.
REQUIRED = {
    "schema": int,
    "wake_word": str,
    "blob": str,
    "tflite": str,
    "cutoff": (int, float),
    "window": int,
    "refractory": int,
    "feature_step_ms": int,
    "mel_bins": int,
    "input_frames": int,
    "output_stride": int,
    "blob_bytes": int,
    "blob_crc32": int,
    "engine_bytes": int,
    "macs_per_30ms": int,
    "min_earshot_version": str,
}


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError as exc:
        raise ValueError(f"bad version string {v!r}") from exc


def load(model_dir) -> tuple[dict, bytes]:
    """Read and check a package: returns (manifest dict, blob bytes).

    Raises ValueError naming the problem: missing folder, manifest or blob file; manifest not
    JSON; a missing key or wrong type; unsupported schema; mel_bins or feature_step_ms not the
    frontend's; cutoff outside 0..1; window outside 1..32; blob size or CRC-32 different from
    the manifest; min_earshot_version newer than this package.
    """
    from earshot import __version__

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir}: model folder not found")
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path}: manifest missing")
    try:
        man = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(man, dict):
        raise ValueError(f"{path}: manifest must be a JSON object")
    if "schema" not in man:
        raise ValueError(f"{path}: no 'schema' key")
    if man["schema"] != SCHEMA:
        raise ValueError(f"{path}: schema {man['schema']!r} not supported (expected {SCHEMA})")
    for key, typ in REQUIRED.items():
        if key not in man:
            raise ValueError(f"{path}: missing key {key!r}")
        if not isinstance(man[key], typ) or isinstance(man[key], bool):
            raise ValueError(f"{path}: {key!r} has the wrong type ({type(man[key]).__name__})")
    if man["mel_bins"] != MEL_BINS:
        raise ValueError(
            f"{path}: mel_bins {man['mel_bins']} does not match the frontend ({MEL_BINS})"
        )
    if man["feature_step_ms"] != FEATURE_STEP_MS:
        raise ValueError(
            f"{path}: feature_step_ms {man['feature_step_ms']} does not match the frontend "
            f"({FEATURE_STEP_MS} ms)"
        )
    if not 0.0 <= float(man["cutoff"]) <= 1.0:
        raise ValueError(f"{path}: cutoff {man['cutoff']} outside 0..1")
    if not 1 <= man["window"] <= 32:
        raise ValueError(f"{path}: window {man['window']} outside 1..32 (ES_MAX_WINDOW)")
    if _version_tuple(man["min_earshot_version"]) > _version_tuple(__version__):
        raise ValueError(
            f"{path}: needs earshot >= {man['min_earshot_version']}, this is {__version__}"
        )
    blob_path = model_dir / man["blob"]
    if not blob_path.is_file():
        raise ValueError(f"{blob_path}: blob file missing")
    data = blob_path.read_bytes()
    if len(data) != man["blob_bytes"]:
        raise ValueError(
            f"{blob_path}: size {len(data)} B, manifest says {man['blob_bytes']} B"
        )
    crc = zlib.crc32(data)
    if crc != man["blob_crc32"]:
        raise ValueError(
            f"{blob_path}: CRC-32 {crc:#010x}, manifest says {man['blob_crc32']:#010x}"
        )
    return man, data


def tflite_path(model_dir) -> Path:
    """Path of the package's int8 .tflite (manifest checked with :func:`load`); ValueError if
    the file is missing."""
    man, _ = load(model_dir)
    path = Path(model_dir) / man["tflite"]
    if not path.is_file():
        raise ValueError(f"{path}: tflite file missing")
    return path


def manifest_for(wake_word: str, blob: bytes, info, cutoff: float, window: int,
                 refractory: int) -> dict:
    """The schema-1 manifest of ``blob``; ``info`` is its parsed header, the dict
    ``earshot.model.Model(blob).info`` (input_frames, output_stride, macs_per_output,
    engine_bytes are used)."""
    return {
        "schema": SCHEMA,
        "wake_word": wake_word,
        "blob": BLOB_NAME,
        "tflite": TFLITE_NAME,
        "cutoff": round(float(cutoff), 4),
        "window": int(window),
        "refractory": int(refractory),
        "feature_step_ms": FEATURE_STEP_MS,
        "mel_bins": MEL_BINS,
        "input_frames": int(info["input_frames"]),
        "output_stride": int(info["output_stride"]),
        "blob_bytes": len(blob),
        "blob_crc32": zlib.crc32(blob),
        "engine_bytes": int(info["engine_bytes"]),
        "macs_per_30ms": int(round(info["macs_per_output"] * 3 / info["output_stride"])),
        "input_norm": int(info.get("input_norm", 0)),
        "min_earshot_version": (
            MIN_EARSHOT_VERSION_GATE if info.get("input_norm", 0) >= 2
            else MIN_EARSHOT_VERSION_NORM if info.get("input_norm") else MIN_EARSHOT_VERSION),
    }


def write(model_dir, wake_word: str, blob: bytes, tflite: bytes, training: dict | None = None):
    """Write ``model.bin``, ``model.tflite`` and ``manifest.json`` into ``model_dir``.

    The blob is parsed by the C core (``earshot.model.Model``, raising ValueError for a bad
    blob) for its header numbers; cutoff, window and refractory are the blob's defaults.
    ``training``: optional dict of measured numbers stored under ``"training"``. Returns the
    manifest.
    """
    from earshot.model import Model

    info = Model(blob).info
    man = manifest_for(
        wake_word, blob, info, info["cutoff"] / 255.0, info["window"], info["refractory"]
    )
    if training:
        man["training"] = training
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / BLOB_NAME).write_bytes(blob)
    (model_dir / TFLITE_NAME).write_bytes(tflite)
    (model_dir / MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
    return man
