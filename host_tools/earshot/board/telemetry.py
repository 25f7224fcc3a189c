"""Earshot telemetry, host side: a stream decoder for the frames of ``es_telemetry.py``.

The wire format is specified in ``firmware/modules/es_telemetry.py`` (the device side) and
mirrored by the constants here: ``SYNC`` (0xA5 0x45), then a byte-stuffed body
``version u8 | type u8 | seq u16 | length u16 | payload | crc32 u32`` (little-endian,
CRC-32/IEEE over the body before the CRC; stuffing as HDLC, RFC 1662 section 4.2).

:class:`Decoder` takes bytes in any chunking, mixed with REPL text and line noise, and
returns :class:`Frame` objects. It never raises on bad input: frames with a bad CRC, length,
escape or version are counted in ``corrupt``, frames missing from the sequence in
``dropped``, and bytes outside frames are kept as ``text`` (the board's prints).
"""

import struct
import zlib
from dataclasses import dataclass, field

# One hop of the device's core, ms (HELLO frames carry its hop_samples and rate_hz too).
from earshot.core.constants import HOP_MS

VERSION = 1
SYNC = b"\xa5\x45"
ESC = 0x7D
ESCAPED = frozenset((0x04, 0x0A, 0x0D, 0x7D, 0xA5))
HEADER = struct.Struct("<BBHH")
CRC = struct.Struct("<I")
MAX_PAYLOAD = 240

HELLO, STATS, DETECT, END, TEXT = 1, 2, 3, 4, 5
#: Payload layouts per frame type: (struct, field names). TEXT is free-form UTF-8.
PAYLOADS = {
    HELLO: (
        struct.Struct("<HHHBBHBH"),
        ("stream", "hop_samples", "rate_hz", "cutoff", "window", "refractory", "vad",
         "stats_every"),
    ),
    STATS: (
        struct.Struct("<IHHHIIII"),
        ("hop", "hops", "vad_hops", "model_hops", "detections", "us_sum", "us_max",
         "mem_free"),
    ),
    DETECT: (struct.Struct("<IB"), ("hop", "score")),
    END: (struct.Struct("<HII"), ("stream", "hops", "detections")),
}
NAMES = {HELLO: "hello", STATS: "stats", DETECT: "detect", END: "end", TEXT: "text"}


@dataclass
class Frame:
    """One decoded frame: ``kind`` (HELLO..TEXT), ``seq`` and the payload's named ``fields``
    (TEXT: ``{"text": str}``)."""

    kind: int
    seq: int
    fields: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return NAMES.get(self.kind, f"type{self.kind}")

    def __getitem__(self, key):
        return self.fields[key]


def stuff(body: bytes) -> bytes:
    """Byte-stuff a frame body (each byte in ESCAPED -> 0x7D, byte ^ 0x20)."""
    out = bytearray()
    for b in body:
        if b in ESCAPED:
            out += bytes((ESC, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def encode(kind: int, seq: int, payload: bytes, version: int = VERSION) -> bytes:
    """One frame on the wire, as the device sends it (for tests and tools)."""
    body = HEADER.pack(version, kind, seq & 0xFFFF, len(payload)) + payload
    return SYNC + stuff(body + CRC.pack(zlib.crc32(body)))


def encode_fields(kind: int, seq: int, **values) -> bytes:
    """Encode a frame of a known type from its named fields (see PAYLOADS)."""
    st, names = PAYLOADS[kind]
    return encode(kind, seq, st.pack(*(values[n] for n in names)))


class Decoder:
    """Incremental decoder. ``feed(bytes) -> list[Frame]``; never raises on bad bytes.

    Counters: ``frames`` (good), ``corrupt`` (bad CRC/length/escape/version/payload size),
    ``dropped`` (frames lost according to the sequence numbers), ``text`` (bytes outside
    frames, as ``bytearray``; take them with :meth:`take_text`).
    """

    def __init__(self):
        self.frames = 0
        self.corrupt = 0
        self.dropped = 0
        self.text = bytearray()
        self._buf = bytearray()
        self._next_seq = None

    def take_text(self) -> str:
        """Return and clear the bytes seen outside frames, decoded as UTF-8 (lenient)."""
        out = self.text.decode("utf-8", "replace")
        self.text.clear()
        return out

    def feed(self, data: bytes) -> list:
        self._buf += data
        out = []
        while True:
            at = self._buf.find(SYNC)
            if at < 0:
                # Keep a possible partial sync at the end.
                keep = 1 if self._buf[-1:] == SYNC[:1] else 0
                self.text += self._buf[: len(self._buf) - keep]
                del self._buf[: len(self._buf) - keep]
                return out
            self.text += self._buf[:at]
            del self._buf[:at]
            status, used, frame = self._parse(self._buf)
            if status == "more":
                return out
            if status == "bad":
                self.corrupt += 1
                # Resume where parsing stopped: it stops at any 0xA5, and a real frame's
                # sync never lies inside a stuffed body, so no good frame is skipped.
                del self._buf[: max(used, 1)]
                continue
            del self._buf[:used]
            self._account(frame)
            out.append(frame)

    def _account(self, frame: Frame) -> None:
        self.frames += 1
        if frame.kind == HELLO:
            self._next_seq = None  # a new stream (maybe a rebooted device) restarts seq
        if self._next_seq is not None:
            self.dropped += (frame.seq - self._next_seq) & 0xFFFF
        self._next_seq = (frame.seq + 1) & 0xFFFF

    @staticmethod
    def _parse(buf: bytearray):
        """Parse a frame at buf[0] (which holds SYNC). Returns (status, bytes used, frame):
        "ok", "more" (incomplete) or "bad" (used = where to resume)."""
        body = bytearray()
        need = HEADER.size
        i = len(SYNC)
        while len(body) < need:
            if i >= len(buf):
                return "more", 0, None
            b = buf[i]
            if b == SYNC[0]:
                return "bad", i, None  # a new frame starts: this one was cut short
            if b == ESC:
                if i + 1 >= len(buf):
                    return "more", 0, None
                b = buf[i + 1] ^ 0x20
                if b not in ESCAPED:
                    return "bad", i, None
                i += 2
            else:
                i += 1
            body.append(b)
            if len(body) == HEADER.size:
                version, kind, seq, length = HEADER.unpack(body)
                if version != VERSION or length > MAX_PAYLOAD:
                    return "bad", i, None
                need = HEADER.size + length + CRC.size
        payload_end = need - CRC.size
        (crc,) = CRC.unpack_from(body, payload_end)
        if zlib.crc32(body[:payload_end]) != crc:
            return "bad", i, None
        payload = bytes(body[HEADER.size : payload_end])
        if kind == TEXT:
            return "ok", i, Frame(kind, seq, {"text": payload.decode("utf-8", "replace")})
        layout = PAYLOADS.get(kind)
        if layout is None or layout[0].size != len(payload):
            return "bad", i, None
        return "ok", i, Frame(kind, seq, dict(zip(layout[1], layout[0].unpack(payload))))
