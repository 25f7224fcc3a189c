"""Atheris harnesses for the host's parsers, and the seed inputs of every fuzz target.

``bench/fuzz.py`` runs each Python target in a child process::

    python bench/fuzz_targets.py TARGET [libFuzzer flags] [CORPUS_DIR ...]

A *crash* is any exception other than the error types the API documents, or a broken
invariant (AssertionError). Targets:

- ``py_telemetry``: :class:`earshot.board.telemetry.Decoder` (documented: never raises). Input:
  byte 0 picks a chunk size (0: the whole stream at once), the rest is the byte stream.
  Invariants: the frames, counters and text do not depend on the chunking; ``frames`` counts
  the frames returned; every frame re-encodes (``encode_fields``) to bytes that decode to it.
- ``py_recording``: :func:`earshot.board.monitor.read_recording` (documented: RecordError, a
  ValueError). Byte 0 picks ``.csv`` (bit 0 set) or ``.jsonl``, and with bit 1 set a
  *structured* input: the rest drives an atheris FuzzedDataProvider that writes rows of
  recording shape whose values come from :func:`json_value` (integers of up to 1,000
  bytes, inf and nan, long strings, deeply nested arrays), which byte mutations rarely
  build; else the rest is the file. Every row it returns is a dict with a known ``kind``, and
  ``earshot.board.plot.timeline`` takes them.
- ``py_blob``: :func:`earshot.model.blob.describe` (documented: ValueError), on the input as
  it is and with its CRC-32 recomputed (as ``fuzz_blob.h``). Differential: a blob the C
  parser (``earshot.model.Model``) accepts, ``describe`` accepts with the same header numbers.
- ``py_package``: :func:`earshot.model.package.load` (documented: ValueError) on a package
  folder whose ``manifest.json`` is the input (up to ``BLOB_SEP``; after it, the bytes of
  ``model.bin``), or, for an input starting with ``STRUCTURED``, the committed manifest with
  a few values replaced by :func:`json_value`. On success the blob came from a file inside
  the folder.

Seeds (:func:`seeds`): the committed models' blobs and manifests (``models/*/``), three
synthetic blobs (one that cannot be adapted), blobs that break one rule of the layer chain
each (:func:`structural_blobs`), telemetry streams as the device module frames them, and
recordings as ``earshot monitor`` writes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
BLOB_SEP = b"\0BLOB\0"  # py_package: manifest bytes, BLOB_SEP, blob bytes
STRUCTURED = b"\0S"  # py_package: the rest drives json_value replacements
MAX_INT_BYTES = 1000  # json_value: longest integer (about 2,400 digits, < int's str limit)
MAX_NEST = 5000  # json_value: deepest array nesting
MAX_STR = 200_000  # json_value: longest string (past the csv module's 131,072 field limit)
C_TARGETS = ("c_model", "c_adapt")
PY_TARGETS = ("py_telemetry", "py_recording", "py_blob", "py_package")


def model_blobs() -> list[bytes]:
    """The committed models' blobs (models/*/model.bin), sorted by folder."""
    return [p.read_bytes() for p in sorted(MODELS.glob("*/model.bin"))]


def fix_crc(blob: bytes) -> bytes:
    """``blob`` with the CRC-32 at bytes 8..12 recomputed over [12, total_bytes), when
    total_bytes lies inside it (es_model.h); else unchanged."""
    if len(blob) < 48:
        return blob
    total = int.from_bytes(blob[12:16], "little")
    if not 12 <= total <= len(blob):
        return blob
    return blob[:8] + zlib.crc32(blob[12:total]).to_bytes(4, "little") + blob[12:]


def json_value(fdp) -> str:
    """JSON text of one value drawn by ``fdp`` (an atheris FuzzedDataProvider): an integer
    of 0..MAX_INT_BYTES bytes, a float (inf, nan and subnormals included), a string (short,
    or one character repeated up to MAX_STR times), a bool, null, or arrays nested up to
    MAX_NEST deep."""
    kind = fdp.ConsumeIntInRange(0, 5)
    if kind == 0:
        return str(fdp.ConsumeInt(fdp.ConsumeIntInRange(0, MAX_INT_BYTES)))
    if kind == 1:
        x = fdp.ConsumeFloat()
        return "NaN" if x != x else "Infinity" if x == float("inf") else \
            "-Infinity" if x == float("-inf") else repr(x)
    if kind == 2:
        if fdp.ConsumeBool():
            return json.dumps(fdp.ConsumeUnicode(1) * fdp.ConsumeIntInRange(0, MAX_STR))
        return json.dumps(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16)))
    if kind == 3:
        return "true" if fdp.ConsumeBool() else "false"
    if kind == 4:
        return "null"
    depth = fdp.ConsumeIntInRange(1, MAX_NEST)
    return "[" * depth + "]" * depth


def _structured_recording(body: bytes, as_csv: bool) -> bytes:
    """A recording of 1..4 rows of a recording's shape (a kind, ``t``, that kind's fields)
    with values from :func:`json_value` (CSV: the values' JSON text as cells)."""
    import atheris
    from earshot.board import monitor

    fdp = atheris.FuzzedDataProvider(body)
    names = sorted(monitor._FIELD_MAX) + ["text", "port"]
    rows = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        kind = names[fdp.ConsumeIntInRange(0, len(names) - 1)]
        keys = ["t", *monitor._FIELD_MAX.get(kind, {"text": 0, "event": 0})]
        rows.append([("kind", json.dumps(kind))] + [(k, json_value(fdp)) for k in keys])
    if not as_csv:
        lines = ["{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in r) + "}" for r in rows]
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    out = io.StringIO()
    writer = csv.DictWriter(out, monitor.CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: v.strip('"') for k, v in r})
    return out.getvalue().encode("utf-8", "surrogatepass")


# --- seeds ------------------------------------------------------------------------------------


def _telemetry_stream() -> bytes:
    """A session as a board sends it: HELLO, STATS, DETECT, TEXT, END frames (sequence
    numbers wrapping past 65535) between REPL text, every stuffed byte value present."""
    from earshot.board import telemetry as T

    out = [b"MicroPython v1.29 on unix\r\n>>> ",
           T.encode_fields(T.HELLO, 65534, stream=1, hop_samples=160, rate_hz=16000,
                           cutoff=247, window=3, refractory=25, vad=1, stats_every=100)]
    for i in range(1, 6):
        out.append(T.encode_fields(T.STATS, (65534 + 2 * i - 1) & 0xFFFF, hop=100 * i,
                                   hops=100, vad_hops=0x0A, model_hops=0x0D, detections=i,
                                   us_sum=0xA57D0D04, us_max=0x7D, mem_free=2_000_000))
        out.append(T.encode_fields(T.DETECT, (65534 + 2 * i) & 0xFFFF, hop=0x04A5 * i,
                                   score=0xA5))
    out += [b"print\r\n", T.encode(T.TEXT, 9, "adapt: kept 3\r\n".encode()),
            T.encode_fields(T.END, 10, stream=1, hops=500, detections=5)]
    return b"".join(out)


def _recordings() -> list[bytes]:
    """The seed session recorded by earshot.board.monitor.Recorder as .jsonl and .csv,
    each prefixed with the py_recording selector byte."""
    from earshot.board import monitor, telemetry

    frames = telemetry.Decoder().feed(_telemetry_stream())
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for selector, suffix in ((0, ".jsonl"), (1, ".csv")):
            rec = monitor.Recorder(Path(tmp) / f"r{suffix}")
            rec.write({"t": 0.0, "kind": "port", "event": "open"})
            for i, f in enumerate(frames):
                rec.write({"t": 0.01 * i, "kind": f.name, "seq": f.seq, **f.fields})
            rec.close()
            out.append(bytes([selector]) + rec.path.read_bytes())
    # Structured inputs (py_recording byte 0 bit 1): any bytes make rows.
    out += [bytes([2]) + bytes(range(64)), bytes([3]) + bytes(range(64, 160))]
    return out


def _layer(kind: str, k: int, s: int, cin: int, cout: int) -> dict:
    """A minimal layer dict for ``blob.pack`` (zero weights, no bias, unit requantization)."""
    import numpy as np

    shape = {"conv": (cout, k, cin), "depthwise": (k, cout), "fc": (cout, cin)}[kind]
    return {"type": kind, "kernel": k, "stride": s, "in_ch": cin, "out_ch": cout,
            "input_zp": 0, "output_zp": 0, "act_min": -128, "act_max": 127,
            "weights": np.zeros(shape, np.int8), "bias": None,
            "multiplier": np.full(cout, 1 << 30, np.int32), "shift": np.zeros(cout, np.int32)}


def structural_blobs() -> list[bytes]:
    """Blobs whose arrays are all consistent but whose layer table breaks one rule of the
    chain (es_model.c): layer 0 not taking ES_MEL_BINS, a fully connected first layer, a
    chain whose channels differ, a fully connected layer before the last, two logits, a
    stride product and a receptive field beyond 65535; and two malformed int4 layers (an
    unknown weight width, an unpacked size). Random mutations rarely reach these
    checks (each needs several fields changed together), so the corpus starts from them."""
    from earshot.model import blob

    def pack(layers):
        return blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9,
                         window=3, refractory=5)

    def patched(data: bytes, *edits: tuple[int, bytes]) -> bytes:
        """``data`` with bytes replaced at (offset, bytes) and the CRC fixed."""
        b = bytearray(data)
        for at, value in edits:
            b[at : at + len(value)] = value
        return fix_crc(bytes(b))

    def stride_at(layer: int) -> int:  # offset of a layer record's stride byte
        return blob.HEADER_BYTES + layer * blob.LAYER_BYTES + 2

    conv, fc = (lambda *a: _layer("conv", *a)), (lambda *a: _layer("fc", *a))
    int4 = pack([conv(3, 1, 40, 4), dict(conv(1, 1, 4, 4), weight_bits=blob.INT4),
                 fc(1, 1, 4, 1)])
    int4_rec = blob.HEADER_BYTES + blob.LAYER_BYTES
    wide = pack([conv(255, 255, 40, 1), conv(255, 255, 1, 1), conv(1, 1, 1, 1)])
    deep = pack([conv(255, 1, 40, 1), conv(255, 1, 1, 1), conv(255, 1, 1, 1)])
    return [
        pack([conv(3, 1, 39, 4), fc(1, 1, 4, 1)]),
        pack([fc(1, 1, 40, 4), fc(1, 1, 4, 1)]),
        pack([conv(3, 1, 40, 4), fc(1, 1, 5, 1)]),
        pack([conv(3, 1, 40, 4), fc(1, 1, 4, 4), fc(1, 1, 4, 1)]),
        pack([conv(3, 1, 40, 4), fc(1, 1, 4, 2)]),
        patched(wide, (stride_at(2), b"\x02")),  # strides 255 * 255 * 2 > 65535
        # Strides 255, 255, 1 (the header's output_stride to match): the receptive field is
        # (254 * 255 + 255 - 1) * 255 + 255 hops > 65535.
        patched(deep, (stride_at(0), b"\xff"), (stride_at(1), b"\xff"),
                (28, (255 * 255).to_bytes(2, "little"))),
        # A packed int4 layer (format 3) with a weight width the format does not have, and
        # one whose weight array has the int8 size (16 bytes) instead of the packed 8.
        patched(int4, (int4_rec + 3, b"\x05")),
        patched(int4, (int4_rec + 20, (16).to_bytes(4, "little"))),
    ]


def seeds(target: str) -> list[bytes]:
    """Seed inputs of ``target`` (every name in C_TARGETS and PY_TARGETS)."""
    if target in C_TARGETS or target == "py_blob":
        from earshot.model import blob

        made = [blob.random_model(seed=1), blob.random_model(seed=2, input_norm=2)]
        # A model that parses but cannot be adapted (its classifier has no bias).
        layers = blob.random_layers(seed=3)
        layers[-1]["bias"] = None
        made.append(blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9,
                              window=5, refractory=10))
        # A mixed int8 / packed int4 model (format 3): it runs, adaptation refuses it.
        import numpy as np

        layers = blob.random_layers(seed=4)
        for layer in layers:
            if layer["type"] != "depthwise":
                layer["weights"] = np.clip(np.asarray(layer["weights"]) // 16, -8, 7)
                layer["weight_bits"] = blob.INT4
        made.append(blob.pack(layers, logistic=blob.logistic_table(1 / 16, 0), cutoff=0.9,
                              window=5, refractory=10, input_norm=1))
        return model_blobs() + made + structural_blobs()
    if target == "py_telemetry":
        stream = _telemetry_stream()
        return [bytes([0]) + stream, bytes([7]) + stream, bytes([1]) + stream[:40]]
    if target == "py_recording":
        return _recordings()
    if target == "py_package":
        out = []
        for man in sorted(MODELS.glob("*/manifest.json")):
            out.append(man.read_bytes())
            out.append(man.read_bytes() + BLOB_SEP + (man.parent / "model.bin").read_bytes())
        return out + [STRUCTURED + bytes(range(48))]
    raise ValueError(f"unknown target {target!r}")


# --- harnesses --------------------------------------------------------------------------------


def _telemetry_harness():
    from earshot.board import telemetry as T

    def decode(stream: bytes, chunk: int):
        dec = T.Decoder()
        frames = []
        step = chunk or max(len(stream), 1)
        for i in range(0, len(stream), step):
            frames += dec.feed(stream[i : i + step])
        return dec, frames

    def one(data: bytes) -> None:
        if not data:
            return
        whole, frames = decode(data[1:], 0)
        dec, chunked = decode(data[1:], data[0])
        key = [(f.kind, f.seq, f.fields) for f in frames]
        assert [(f.kind, f.seq, f.fields) for f in chunked] == key, "chunking changed frames"
        assert (dec.frames, dec.corrupt, dec.dropped) == (whole.frames, whole.corrupt,
                                                         whole.dropped), "chunking: counters"
        assert dec.take_text() == whole.take_text(), "chunking changed the text"
        assert whole.frames == len(frames) and whole.corrupt >= 0 and whole.dropped >= 0
        for f in frames:
            assert f.kind in T.NAMES and isinstance(f.name, str)
            wire = (T.encode(f.kind, f.seq, f["text"].encode()) if f.kind == T.TEXT
                    else T.encode_fields(f.kind, f.seq, **f.fields))  # fmt: skip
            again = T.Decoder().feed(wire)
            assert len(again) == 1 and again[0].fields == f.fields, "re-encoding changed it"

    return one


def _recording_harness(tmp: Path):
    from earshot.board import monitor, plot

    kinds = set(monitor.NAMES.values()) | {"port"}

    def one(data: bytes) -> None:
        if not data:
            return
        path = tmp / ("rec.csv" if data[0] & 1 else "rec.jsonl")
        path.write_bytes(_structured_recording(data[1:], bool(data[0] & 1)) if data[0] & 2
                         else data[1:])  # fmt: skip
        try:
            rows = monitor.read_recording(path)
        except monitor.RecordError:
            return
        for row in rows:
            assert isinstance(row, dict) and row.get("kind") in kinds, row
        plot.timeline(rows)  # what `earshot plot` draws from them

    return one


HEADER_KEYS = {"n_layers": "n_layers", "input_frames": "input_frames", "cutoff": "cutoff",
               "output_stride": "output_stride", "window": "window", "input_norm": "input_norm",
               "refractory": "refractory", "macs_per_output": "macs_per_output"}


def _blob_harness():
    from earshot.model import Model, blob

    def one(data: bytes) -> None:
        for b in {data, fix_crc(data)}:
            try:
                desc = blob.describe(b)
            except ValueError:
                desc = None
            try:
                info = Model(b).info
            except ValueError:
                continue
            assert desc is not None, "describe refused a blob the C parser accepts"
            for d_key, c_key in HEADER_KEYS.items():
                assert desc[d_key] == info[c_key], (d_key, desc[d_key], info[c_key])

    return one


def _package_harness(tmp: Path):
    from earshot.model import package

    folder = tmp / "pkg"
    folder.mkdir()
    default = (MODELS / "alexa" / "model.bin").read_bytes()
    (folder / "model.tflite").write_bytes((MODELS / "alexa" / "model.tflite").read_bytes())
    state = {"blob": None}

    manifest_text = (MODELS / "alexa" / "manifest.json").read_text()
    keys = sorted(json.loads(manifest_text))

    def structured(body: bytes) -> bytes:
        """The committed manifest with 1..3 values replaced by json_value draws."""
        import atheris

        fdp = atheris.FuzzedDataProvider(body)
        man = {k: json.dumps(v) for k, v in json.loads(manifest_text).items()}
        for _ in range(fdp.ConsumeIntInRange(1, 3)):
            man[keys[fdp.ConsumeIntInRange(0, len(keys) - 1)]] = json_value(fdp)
        text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in man.items()) + "}"
        return text.encode("utf-8", "surrogatepass")

    def one(data: bytes) -> None:
        if data.startswith(STRUCTURED):
            data = structured(data[len(STRUCTURED) :])
        manifest, sep, blob_bytes = data.partition(BLOB_SEP)
        want = blob_bytes if sep else default
        if state["blob"] != want:
            (folder / "model.bin").write_bytes(want)
            state["blob"] = want
        (folder / "manifest.json").write_bytes(manifest)
        try:
            man, got = package.load(folder)
        except ValueError:
            return
        inside = (folder / man["blob"]).resolve()
        assert folder.resolve() in inside.parents, f"blob {man['blob']!r} outside the folder"
        assert got == inside.read_bytes()

    return one


def harness(target: str, tmp: Path):
    """The TestOneInput function of a Python target (its modules imported instrumented)."""
    import atheris

    with atheris.instrument_imports(include=["earshot"]):
        if target == "py_telemetry":
            return _telemetry_harness()
        if target == "py_recording":
            return _recording_harness(tmp)
        if target == "py_blob":
            return _blob_harness()
        if target == "py_package":
            return _package_harness(tmp)
    raise ValueError(f"unknown Python target {target!r}; choose from {PY_TARGETS}")


def tolerant(one, names: set[str], folder: Path):
    """``one`` with exceptions whose class name is in ``names`` caught: the first input of
    each such class is saved to ``folder`` and reported on stderr as ``TOLERATED <class>:
    <message> (input: <path>)``, then fuzzing goes on (a finding already reported, so that the
    rest of the target is still explored; bench/fuzz.py --tolerate)."""
    seen = set()

    def run(data: bytes) -> None:
        try:
            one(data)
        except Exception as exc:
            name = type(exc).__name__
            if name not in names:
                raise
            if name not in seen:
                seen.add(name)
                path = folder / f"tolerated-{name}-{hashlib.sha1(data).hexdigest()}"
                path.write_bytes(data)
                print(f"TOLERATED {name}: {str(exc)[:200]!r} (input: {path})", file=sys.stderr,
                      flush=True)

    return run


def main(argv: list[str]) -> None:
    """Run one Python target under atheris: ``argv`` = [prog, TARGET, libFuzzer args...].
    Environment: FUZZ_TOLERATE (comma-separated exception class names, see
    :func:`tolerant`), FUZZ_TOLERATE_DIR (where their inputs go) and FUZZ_WORK_DIR (scratch
    files)."""
    import atheris

    if len(argv) < 2 or argv[1] not in PY_TARGETS:
        sys.exit(f"usage: fuzz_targets.py {{{','.join(PY_TARGETS)}}} [libFuzzer flags]")
    # libFuzzer ends the process itself: scratch files go to a folder of bench/fuzz.py's.
    tmp = Path(os.environ.get("FUZZ_WORK_DIR") or ROOT / "build" / "fuzz" / "work" / argv[1])
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    one = harness(argv[1], tmp)
    names = {n for n in os.environ.get("FUZZ_TOLERATE", "").split(",") if n}
    if names:
        one = tolerant(one, names, Path(os.environ.get("FUZZ_TOLERATE_DIR", tmp)))
    atheris.Setup([argv[0], *argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv)
