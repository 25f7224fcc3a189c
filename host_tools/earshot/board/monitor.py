"""Serial telemetry monitor: read a board's port, decode frames, record them, survive resets.

:class:`Monitor` opens the port with pyserial and feeds every byte to a
:class:`earshot.board.telemetry.Decoder`. Garbage and REPL text between frames are skipped by the
decoder (counted as ``corrupt`` when they look like a broken frame). When the port
disappears (board reset, USB unplugged, the virtual board restarted) the monitor closes it,
counts a reconnect and keeps trying to open the same path every ``retry_s`` seconds.

Recordings (:class:`Recorder`) are JSON Lines (``.jsonl``) or CSV (``.csv``), one row per
frame: ``t`` (seconds since the monitor started, host clock), ``kind`` (``hello``,
``stats``, ``detect``, ``end``, ``text``), ``seq`` and the frame's fields (see
``firmware/modules/es_telemetry.py``), plus ``port`` rows (``event`` = ``open`` or
``lost``). ``earshot plot`` reads them back with :func:`read_recording`.
"""

from __future__ import annotations

import csv
import io
import json
import struct
import threading
import time
from pathlib import Path

from earshot.board.telemetry import DETECT, HELLO, HOP_MS, NAMES, PAYLOADS, STATS, Decoder

#: CSV columns: host time, kind, seq, then every payload field of every frame type.
CSV_COLUMNS = ["t", "kind", "seq"]
for _st, _names in PAYLOADS.values():
    CSV_COLUMNS += [n for n in _names if n not in CSV_COLUMNS]
CSV_COLUMNS += ["text", "event"]
#: Largest row time read back, s (``t``; about 31,700 years of monitoring).
MAX_T_S = 1e12
#: Integer CSV columns (converted back by read_recording).
_INT_COLUMNS = set(CSV_COLUMNS) - {"t", "kind", "text", "event"}


class RecordError(ValueError):
    """A recording file has an unknown extension or cannot be parsed (names the line)."""


class Recorder:
    """Writes frames to ``path``: ``.jsonl`` (one JSON object per line) or ``.csv``
    (columns :data:`CSV_COLUMNS`). Raises RecordError for another extension."""

    def __init__(self, path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            raise RecordError(f"{self.path}: record to a .jsonl or .csv file")
        self._f = open(self.path, "w", newline="")
        self._csv = None
        if suffix == ".csv":
            self._csv = csv.DictWriter(self._f, CSV_COLUMNS)
            self._csv.writeheader()
            self._f.flush()  # on disk at once: a reader before the first frame sees a CSV
        self.rows = 0

    def write(self, row: dict) -> None:
        if self._csv is not None:
            self._csv.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
        else:
            self._f.write(json.dumps(row) + "\n")
        self._f.flush()
        self.rows += 1

    def close(self) -> None:
        self._f.close()


#: Fields of each recorded frame kind and their largest value (the frame's unsigned field
#: width, telemetry.PAYLOADS); every such field must be an integer in 0..max.
_FIELD_MAX = {
    NAMES[kind]: {n: (1 << (8 * struct.calcsize(code))) - 1
                  for n, code in zip(names, st.format.lstrip("<"))}  # fmt: skip
    for kind, (st, names) in PAYLOADS.items()
}


def _check_row(row, where: str) -> dict:
    """``row`` if it is a recording row :func:`read_recording` can hand to a plot: a JSON
    object whose ``kind`` is a frame (every payload field an integer within its width),
    ``text`` (a string ``text``) or ``port`` (a string ``event``), with a ``t`` in
    0..MAX_T_S seconds when present. Raises RecordError naming ``where`` (file:line) and the
    problem."""
    if not isinstance(row, dict):
        raise RecordError(f"{where}: a row is a JSON object, not {type(row).__name__}")
    kind = row.get("kind")
    t = row.get("t")
    # A range check, not math.isfinite (OverflowError for an int beyond a float); nan fails.
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                          or not 0 <= t <= MAX_T_S):  # fmt: skip
        raise RecordError(f"{where}: t={t!r} is not a time in seconds")
    if kind in _FIELD_MAX:
        for name, top in _FIELD_MAX[kind].items():
            v = row.get(name)
            if v is None:
                raise RecordError(f"{where}: a {kind} row without {name!r}")
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
                raise RecordError(f"{where}: {kind} {name}={v!r} is not an integer in 0..{top}")
    elif kind in ("text", "port"):
        key = "text" if kind == "text" else "event"
        if not isinstance(row.get(key), str):
            raise RecordError(f"{where}: a {kind} row without a string {key!r}")
    else:
        raise RecordError(f"{where}: unknown row kind {kind!r} (not from earshot monitor)")
    return row


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise RecordError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None


def _read_csv_rows(reader: csv.DictReader, path: Path) -> list[dict]:
    """The rows of a monitor CSV (empty cells dropped, numbers converted), each checked by
    :func:`_check_row`. Raises RecordError naming the line, csv.Error from the reader."""
    if reader.fieldnames is None or "kind" not in reader.fieldnames:
        raise RecordError(f"{path}: not an earshot monitor CSV (no 'kind' column)")
    rows = []
    for i, raw in enumerate(reader, 2):
        row = {}
        for k, v in raw.items():
            if v in ("", None) or k is None:
                continue
            try:
                row[k] = float(v) if k == "t" else int(v) if k in _INT_COLUMNS else v
            except ValueError as exc:
                raise RecordError(f"{path}:{i}: {k}={v!r} is not a number") from exc
        rows.append(_check_row(row, f"{path}:{i}"))
    return rows


def read_recording(path) -> list[dict]:
    """Rows of a ``.jsonl`` or ``.csv`` recording, as dicts (CSV: empty cells dropped,
    numbers converted), each checked by :func:`_check_row`. Raises RecordError naming the
    file and line of a bad row, OSError for a file that cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    rows = []
    if suffix == ".jsonl":
        for i, line in enumerate(_read_text(path).splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as exc:
                    # RecursionError: arrays or objects nested too deeply for the parser.
                    raise RecordError(f"{path}:{i}: not JSON ({exc})") from exc
                rows.append(_check_row(row, f"{path}:{i}"))
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
        try:
            rows = _read_csv_rows(reader, path)
        except csv.Error as exc:  # e.g. a cell beyond csv.field_size_limit()
            raise RecordError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
    else:
        raise RecordError(f"{path}: expected a .jsonl or .csv recording")
    return rows


class Monitor:
    """Reads telemetry from ``port`` until stopped, reconnecting when the port goes away.

    ``record``: a Recorder (or None). ``on_frame(frame)``: called for each good frame.
    Counters: ``frames``, ``dropped``, ``corrupt`` (over every connection), ``reconnects``
    (times the port was lost after being open), ``opens``, ``connected``; ``open_error``
    says why the last attempt to open the port failed. ``stats``, ``hello`` hold
    the last frames of those kinds; ``detections`` is a list of (stream seconds, score 0..1).
    """

    def __init__(self, port: str, baud: int = 115200, record: Recorder | None = None,
                 on_frame=None, retry_s: float = 0.2):  # fmt: skip
        self.port = port
        self.baud = baud
        self.record = record
        self.on_frame = on_frame
        self.retry_s = retry_s
        self.reconnects = 0
        self.connected = False
        self.opens = 0  # times the port was opened
        self.open_error = None  # why the last attempt to open the port failed (str)
        self.stats = None
        self.hello = None
        self.detections = []
        self.text = ""
        self._done = Decoder()  # counters of the closed connections
        self._dec = Decoder()
        self._t0 = time.monotonic()
        self._stop = threading.Event()

    @property
    def frames(self) -> int:
        return self._done.frames + self._dec.frames

    @property
    def dropped(self) -> int:
        return self._done.dropped + self._dec.dropped

    @property
    def corrupt(self) -> int:
        return self._done.corrupt + self._dec.corrupt

    def stop(self) -> None:
        """Ask :meth:`run` to return (thread-safe)."""
        self._stop.set()

    def _event(self, name: str) -> None:
        if self.record is not None:
            self.record.write({"t": round(time.monotonic() - self._t0, 4), "kind": "port",
                               "event": name})  # fmt: skip

    def _handle(self, frame) -> None:
        row = {"t": round(time.monotonic() - self._t0, 4), "kind": frame.name, "seq": frame.seq}
        row.update(frame.fields)
        if self.record is not None:
            self.record.write(row)
        if frame.kind == STATS:
            self.stats = frame.fields
        elif frame.kind == HELLO:
            self.hello = frame.fields
        elif frame.kind == DETECT:
            self.detections.append(((frame["hop"] + 1) * HOP_MS / 1000, frame["score"] / 255))
        if self.on_frame is not None:
            self.on_frame(frame)

    def _retire_decoder(self) -> None:
        # A new connection starts a new byte stream: keep the counters, start decoding afresh.
        for name in ("frames", "dropped", "corrupt"):
            setattr(self._done, name, getattr(self._done, name) + getattr(self._dec, name))
        self._dec = Decoder()

    def run(self, duration: float | None = None, on_tick=None) -> None:
        """Read until :meth:`stop` or ``duration`` seconds. ``on_tick()`` is called about
        every 0.1 s (for a live view). Never raises on a lost or absent port."""
        import serial

        end = None if duration is None else time.monotonic() + duration
        ser = None
        try:
            while not self._stop.is_set() and (end is None or time.monotonic() < end):
                if ser is None:
                    try:
                        ser = serial.Serial(self.port, self.baud, timeout=0.1)
                    except (serial.SerialException, OSError, ValueError) as exc:
                        self.open_error = str(exc)
                        ser = None
                        if on_tick is not None:
                            on_tick()
                        time.sleep(self.retry_s)
                        continue
                    self.connected = True
                    self.opens += 1
                    self._event("open")
                try:
                    data = ser.read(ser.in_waiting or 1)
                except (serial.SerialException, OSError, TypeError):
                    # TypeError: pyserial reading a closed fd. The port went away.
                    try:
                        ser.close()
                    except (serial.SerialException, OSError):
                        pass
                    ser = None
                    self.connected = False
                    self.reconnects += 1
                    self._event("lost")
                    self._retire_decoder()
                    continue
                if data:
                    for frame in self._dec.feed(data):
                        self._handle(frame)
                    text = self._dec.take_text()
                    if text:
                        self.text = (self.text + text)[-2000:]
                if on_tick is not None:
                    on_tick()
        finally:
            if ser is not None:
                try:
                    ser.close()
                except (serial.SerialException, OSError):
                    pass
            self.connected = False

    def render(self):
        """A rich Table of the current state."""
        from rich.table import Table

        t = Table(title=f"Earshot telemetry on {self.port}", expand=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        state = "[green]connected[/]" if self.connected else "[yellow]waiting for the port[/]"
        t.add_row("port", f"{state} (reconnects: {self.reconnects})")
        h = self.hello
        if h is not None:
            t.add_row("stream", f"{h['stream']} (cutoff {h['cutoff']}, window {h['window']}, "
                      f"VAD {'on' if h['vad'] else 'off'})")  # fmt: skip
        s = self.stats
        if s is not None:
            n = max(s["hops"], 1)
            t.add_row("audio", f"{s['hop'] * HOP_MS / 1000:.1f} s")
            t.add_row("VAD duty cycle", f"{100 * s['vad_hops'] / n:5.1f} %")
            t.add_row("model ran", f"{100 * s['model_hops'] / n:5.1f} % of hops")
            t.add_row("time per 10 ms hop", f"{s['us_sum'] / n:7.1f} us (max {s['us_max']} us)")
            t.add_row("free heap", f"{s['mem_free']:,} B")
        for when, score in self.detections[-5:]:
            t.add_row("[bold green]DETECTION[/]", f"[bold green]{when:6.2f} s  score {score:.2f}")
        t.add_row("frames", f"{self.frames} ok, {self.dropped} dropped, {self.corrupt} corrupt")
        if self.record is not None:
            t.add_row("recording", f"{self.record.path} ({self.record.rows} rows)")
        return t

