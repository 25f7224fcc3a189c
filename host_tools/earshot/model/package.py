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

:func:`load` is the one place a package is checked (``earshot score``, ``eval``, ``export``,
``adapt`` and ``deploy`` all go through it): the manifest's keys and ranges, the ``blob`` and
``tflite`` paths (inside the package folder), the blob's size and CRC-32, the blob itself
(parsed by the C parser, as the device parses it) and the manifest's numbers against the
blob's header (cutoff, window, refractory, frames, stride, bins, sizes, MACs, input_norm):
**the blob is the truth**, since it is what the device runs. Each problem is one specific
``ValueError`` naming the file, in the spirit of ESPHome's micro_wake_word manifest check.
:func:`load_blob` does the same for a path that is a package folder or a blob file (inside a
package or alone: then only the C parser's checks apply).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

SCHEMA = 1
FEATURE_STEP_MS = 10  # ES_HOP_SAMPLES (160) / ES_SAMPLE_RATE_HZ (16000)
MEL_BINS = 40  # ES_MEL_BINS
MIN_EARSHOT_VERSION = "0.1.0"
MIN_EARSHOT_VERSION_NORM = "0.2.0"  # first release with es_norm and blob format 2
MIN_EARSHOT_VERSION_GATE = "0.3.0"  # first release with ES_NORM_MINSTAT_GATE
# First release reading blob format 3 (packed int4 weights). The int4 blob format lands
# in the 0.3 development line; bump with the release that ships it.
MIN_EARSHOT_VERSION_INT4 = "0.3.0"
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

    Raises ValueError naming the file and the problem: missing folder, manifest or blob
    file; manifest not JSON; a missing key or wrong type; unsupported schema; mel_bins or
    feature_step_ms not the frontend's; cutoff outside 0..1; window outside 1..32;
    min_earshot_version newer than this package; a ``blob``/``tflite`` path leaving the
    folder; blob size or CRC-32 different from the manifest; a blob the C parser refuses
    (``<blob>: bad model blob: <reason>``); a manifest number that disagrees with the blob
    header (see :func:`check_agrees`).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ValueError(f"{model_dir}: model folder not found")
    path = model_dir / MANIFEST
    man = read_manifest(path)
    blob_path = member(model_dir, man["blob"], path, "blob")
    try:  # OSError: e.g. a name longer than the file system allows (found by fuzzing)
        if not blob_path.is_file():
            raise ValueError(f"{blob_path}: blob file missing")
        data = blob_path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the blob {man['blob'][:60]!r} "
                         f"({exc.strerror or exc})") from None
    if len(data) != man["blob_bytes"]:
        raise ValueError(f"{blob_path}: size {len(data)} B, manifest says {man['blob_bytes']} B")
    crc = zlib.crc32(data)
    if crc != man["blob_crc32"]:
        raise ValueError(
            f"{blob_path}: CRC-32 {crc:#010x}, manifest says {man['blob_crc32']:#010x}"
        )
    check_agrees(man, check_blob(data, blob_path), path)
    return man, data


def read_manifest(path) -> dict:
    """The manifest at ``path``, its keys, types and ranges checked (not the blob). Raises
    ValueError naming ``path``: missing, not JSON, not an object, unsupported schema, a
    missing key or wrong type, frontend numbers not this build's, cutoff or window out of
    range, min_earshot_version newer than this package."""
    from earshot import __version__

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: manifest missing")
    try:
        man = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    except RecursionError:  # json's recursive parser on deeply nested input (found by fuzzing)
        raise ValueError(f"{path}: not a manifest (JSON nested too deeply)") from None
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
    # Compared as given: float() of an int over about 10^308 raises OverflowError (found by
    # fuzzing); int and float compare exactly with 0 and 1.
    if not 0 <= man["cutoff"] <= 1:
        raise ValueError(f"{path}: cutoff {man['cutoff']} outside 0..1")
    if not 1 <= man["window"] <= 32:
        raise ValueError(f"{path}: window {man['window']} outside 1..32 (ES_MAX_WINDOW)")
    if _version_tuple(man["min_earshot_version"]) > _version_tuple(__version__):
        raise ValueError(
            f"{path}: needs earshot >= {man['min_earshot_version']}, this is {__version__}"
        )
    return man


def member(model_dir, name: str, manifest_path, key: str) -> Path:
    """``model_dir / name`` for the manifest's ``key`` ("blob", "tflite"): a relative path
    that stays inside the package folder. Raises ValueError naming the manifest when
    ``name`` is empty, absolute, has a drive or a ``..`` part, or resolves outside (through
    a symlinked folder)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if (
        not name
        or pure.is_absolute()
        or PureWindowsPath(name).drive
        or ".." in pure.parts
        or pure == PurePosixPath(".")
    ):
        raise ValueError(
            f"{manifest_path}: {key!r} path {name!r} must stay inside the package "
            "folder (a relative path without '..')"
        )
    root = Path(model_dir).resolve()
    path = Path(model_dir) / pure
    try:
        parent = path.parent.resolve()
    except OSError as exc:  # a name the file system refuses (too long, ...)
        raise ValueError(f"{manifest_path}: {key!r} path {name[:60]!r}... cannot be resolved "
                         f"({exc.strerror or exc})") from None
    if root not in parent.parents and parent != root:
        raise ValueError(f"{manifest_path}: {key!r} path {name!r} leaves the package folder")
    return path


def check_blob(data: bytes, path) -> dict:
    """Parse ``data`` (the bytes of the blob file ``path``) with the C parser, as the
    device does (magic, version, frontend constants, every offset and size, the payload
    CRC-32). Returns its header (``earshot.model.Model.info``). Raises ValueError
    ``"<path>: bad model blob: <reason>"``."""
    from earshot.model import Model

    return Model(data, name=str(path)).info


#: Manifest keys that restate a blob header field: key -> (info key, unit for messages).
AGREES = {
    "window": ("window", "outputs"),
    "refractory": ("refractory", "outputs"),
    "input_frames": ("input_frames", "hops"),
    "output_stride": ("output_stride", "hops"),
    "mel_bins": ("input_bins", "bins"),
    "engine_bytes": ("engine_bytes", "B"),
}


def check_agrees(man: dict, info: dict, path) -> None:
    """Check that the manifest ``man`` (file ``path``) says what its blob's header ``info``
    says: cutoff (the blob's uint8 cutoff / 255, to 4 decimals), window, refractory,
    input_frames, output_stride, mel_bins, engine_bytes, macs_per_30ms, input_norm (0 when
    absent) and a min_earshot_version no older than the blob's format needs. The blob is
    the truth: a mismatch raises ValueError naming the manifest, the key and both values.
    """
    blob = man.get("blob", BLOB_NAME)
    c = info["cutoff"]
    if round(float(man["cutoff"]) * 255) != c:
        raise ValueError(
            f"{path}: cutoff {man['cutoff']} disagrees with {blob} "
            f"({c}/255 = {c / 255:.4f}); the blob is what the device runs"
        )
    for key, (field, unit) in AGREES.items():
        if man[key] != info[field]:
            raise ValueError(
                f"{path}: {key} {man[key]} disagrees with {blob} ({info[field]} {unit})"
            )
    macs = round(info["macs_per_output"] * 3 / info["output_stride"])
    if man["macs_per_30ms"] != macs:
        raise ValueError(
            f"{path}: macs_per_30ms {man['macs_per_30ms']} disagrees with {blob} ({macs})"
        )
    norm = man.get("input_norm", 0)
    if norm != info["input_norm"]:
        raise ValueError(
            f"{path}: input_norm {norm!r} disagrees with {blob} ({info['input_norm']})"
        )
    need = min_version(info)
    if _version_tuple(man["min_earshot_version"]) < _version_tuple(need):
        raise ValueError(
            f"{path}: min_earshot_version {man['min_earshot_version']} is older "
            f"than {blob} needs ({need}: input_norm {info['input_norm']})"
        )


def min_version(info: dict) -> str:
    """The oldest earshot that runs a blob with header ``info`` (its input_norm and format
    version)."""
    norm = info.get("input_norm", 0)
    if info.get("format_version", 1) >= 3:
        return MIN_EARSHOT_VERSION_INT4
    if norm >= 2:
        return MIN_EARSHOT_VERSION_GATE
    return MIN_EARSHOT_VERSION_NORM if norm else MIN_EARSHOT_VERSION


def load_blob(path) -> tuple[dict | None, bytes, Path]:
    """A model to deploy or flash, checked before anything touches a board.

    ``path`` is a package folder (checked by :func:`load`), or a blob file: inside a
    package (a ``manifest.json`` beside it whose ``blob`` names this file: the package is
    checked by :func:`load`), or alone (parsed by the C parser: magic, sizes, offsets,
    payload CRC-32). Returns (manifest or None, blob bytes, blob path). Raises ValueError
    naming the file and the problem (a missing file too).
    """
    path = Path(path)
    if path.is_dir():
        man, data = load(path)
        return man, data, path / man["blob"]
    if not path.is_file():
        raise ValueError(f"{path}: model file not found")
    beside = path.parent / MANIFEST
    if beside.is_file():
        man = read_manifest(beside)
        named = member(path.parent, man["blob"], beside, "blob")
        if named.resolve() == path.resolve():
            man, data = load(path.parent)
            return man, data, path
    data = path.read_bytes()
    check_blob(data, path)
    return None, data, path


def tflite_path(model_dir) -> Path:
    """Path of the package's int8 .tflite (manifest checked with :func:`load`); ValueError if
    the file is missing."""
    man, _ = load(model_dir)
    path = member(model_dir, man["tflite"], Path(model_dir) / MANIFEST, "tflite")
    if not path.is_file():
        raise ValueError(f"{path}: tflite file missing")
    return path


def manifest_for(
    wake_word: str, blob: bytes, info, cutoff: float, window: int, refractory: int
) -> dict:
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
        "min_earshot_version": min_version(info),
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
