# Earshot telemetry, device side (MicroPython): framed binary messages on a byte stream.
#
# Wire format (version 1; the host decoder is host_tools/earshot/board/telemetry.py):
#
#   SYNC (2 bytes: 0xA5 0x45) then the *stuffed* body:
#   body = version u8 | type u8 | seq u16 | length u16 | payload[length] | crc32 u32
#
# Integers are little-endian. crc32 is CRC-32/IEEE (zlib.crc32, binascii.crc32) of the body
# bytes before it. Stuffing (as in HDLC/PPP, RFC 1662 section 4.2): each body byte in
# ESCAPED is sent as 0x7D followed by the byte XOR 0x20. So a frame never contains 0xA5 after
# its sync (a new 0xA5 always means a new frame), never 0x04 (the raw REPL's end marker, so
# frames pass through `mpremote exec`) and never CR/LF (so line-ending translation cannot
# damage it). seq counts frames modulo 65536, so the host can count lost frames.
#
# Payloads (all little-endian, sizes in bytes in the struct formats below):
#   HELLO  (1): stream u16, hop_samples u16, rate_hz u16, cutoff u8, window u8,
#               refractory u16, vad u8, stats_every u16 (hops)         - a stream starts
#   STATS  (2): hop u32 (hops so far), hops u16, vad_hops u16, model_hops u16,
#               detections u32 (so far), us_sum u32, us_max u32, mem_free u32
#               (us_* = microseconds spent in Detector.run over these hops)
#   DETECT (3): hop u32 (index of the hop that fired, 0-based), score u8 (probability*255)
#   END    (4): stream u16, hops u32, detections u32                    - a stream ended
#   TEXT   (5): UTF-8 bytes (a log line)

import struct

try:
    from binascii import crc32
except ImportError:  # ports without binascii.crc32: the binding's CRC (same polynomial)
    from _earshot import crc32

from es_const import HOP_SAMPLES, SAMPLE_RATE

VERSION = 1
SYNC = b"\xa5\x45"
ESC = 0x7D
ESCAPED = (0x04, 0x0A, 0x0D, 0x7D, 0xA5)

HELLO = 1
STATS = 2
DETECT = 3
END = 4
TEXT = 5

HEADER = "<BBHH"
FORMATS = {HELLO: "<HHHBBHBH", STATS: "<IHHHIIII", DETECT: "<IB", END: "<HII"}
MAX_PAYLOAD = 240


class Telemetry:
    """Writes telemetry frames to `stream` (anything with .write(buf); default: the
    console's binary stdout). Buffers are allocated once; send() allocates only the CRC's
    integer, so frames may be sent from a detector loop without fragmenting the heap."""

    def __init__(self, stream=None):
        if stream is None:
            import sys

            stream = getattr(sys.stdout, "buffer", sys.stdout)
        self.stream = stream
        self.seq = 0
        self._body = bytearray(6 + MAX_PAYLOAD + 4)
        self._wire = bytearray(len(SYNC) + 2 * len(self._body))
        self._wire[0 : len(SYNC)] = SYNC
        self._body_mv = memoryview(self._body)
        self._wire_mv = memoryview(self._wire)

    def send(self, kind, fmt, *values):
        """Send one frame of type `kind` whose payload is struct.pack(fmt, *values)."""
        n = struct.calcsize(fmt)
        struct.pack_into(fmt, self._body, 6, *values)
        self._finish(kind, n)

    def text(self, message):
        """Send a TEXT frame (a log line); longer messages are cut at MAX_PAYLOAD bytes."""
        data = message.encode() if isinstance(message, str) else message
        n = min(len(data), MAX_PAYLOAD)
        self._body[6 : 6 + n] = data[:n]
        self._finish(TEXT, n)

    def hello(self, stream, cutoff, window, refractory, vad, stats_every):
        self.send(HELLO, FORMATS[HELLO], stream, HOP_SAMPLES, SAMPLE_RATE, cutoff, window,
                  refractory, vad, stats_every)

    def stats(self, hop, hops, vad_hops, model_hops, detections, us_sum, us_max, mem_free):
        self.send(STATS, FORMATS[STATS], hop, hops, vad_hops, model_hops, detections, us_sum,
                  us_max, mem_free)

    def detect(self, hop, score):
        self.send(DETECT, FORMATS[DETECT], hop, score)

    def end(self, stream, hops, detections):
        self.send(END, FORMATS[END], stream, hops, detections)

    def _finish(self, kind, n):
        body = self._body
        struct.pack_into(HEADER, body, 0, VERSION, kind, self.seq, n)
        self.seq = (self.seq + 1) & 0xFFFF
        end = 6 + n
        struct.pack_into("<I", body, end, crc32(self._body_mv[:end]) & 0xFFFFFFFF)
        end += 4
        wire = self._wire
        j = len(SYNC)
        for i in range(end):
            b = body[i]
            if b in ESCAPED:
                wire[j] = ESC
                wire[j + 1] = b ^ 0x20
                j += 2
            else:
                wire[j] = b
                j += 1
        self.stream.write(self._wire_mv[:j])
