# Earshot audio sources (MicroPython): 16 kHz mono int16 little-endian PCM, read in blocks.
#
# Every source has readinto(buf) -> bytes written (a multiple of 2; fewer than len(buf) only
# at the end of the stream, 0 at the end) and close(). Buffers are the caller's.
#
#   I2SSource  machine.I2S in RX mode on a board (16-bit mono at 16 kHz)
#   FileSource a .wav (PCM, 16-bit, mono, 16 kHz) or raw int16 LE file or FIFO, standing in
#              for the microphone on the virtual board; paced in real time or as fast as
#              the detector runs
#
# make_source(cfg) builds one from a config dict (see es_config.py).

import struct
import time

RATE_HZ = 16000  # ES_SAMPLE_RATE_HZ, firmware/core/earshot.h
SAMPLE_BYTES = 2


class I2SSource:
    """An I2S microphone: cfg = {"id": I2S peripheral id, "sck", "ws", "sd": GPIO numbers,
    "ibuf": driver buffer in bytes}. Samples are read as 16-bit mono at 16 kHz (the top
    16 bits of a 24/32-bit MEMS microphone's word, as machine.I2S delivers them)."""

    def __init__(self, cfg):
        from machine import I2S, Pin

        missing = [k for k in ("id", "sck", "ws", "sd", "ibuf") if k not in cfg]
        if missing:
            raise ValueError("i2s config lacks " + ", ".join(missing))
        self.i2s = I2S(
            cfg["id"],
            sck=Pin(cfg["sck"]),
            ws=Pin(cfg["ws"]),
            sd=Pin(cfg["sd"]),
            mode=I2S.RX,
            bits=16,
            format=I2S.MONO,
            rate=RATE_HZ,
            ibuf=cfg["ibuf"],
        )

    def readinto(self, buf):
        return self.i2s.readinto(buf)

    def close(self):
        self.i2s.deinit()


def _wav_data(f, path):
    # Parse a RIFF/WAVE header (chunks "fmt " and "data"), leave f at the first sample and
    # return the data size in bytes. Raises ValueError naming the file and the problem.
    head = f.read(12)
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError(path + ": not a RIFF/WAVE file")
    fmt = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            raise ValueError(path + ": no data chunk")
        cid = chunk[0:4]
        size = struct.unpack("<I", chunk[4:8])[0]
        if cid == b"fmt ":
            body = f.read(size + (size & 1))
            if len(body) < 16:
                raise ValueError(path + ": short fmt chunk")
            fmt = struct.unpack("<HHIIHH", body[0:16])
        elif cid == b"data":
            if fmt is None:
                raise ValueError(path + ": data before fmt")
            tag, channels, rate, _, _, bits = fmt
            if tag not in (1, 0xFFFE) or bits != 16 or channels != 1 or rate != RATE_HZ:
                raise ValueError(
                    "%s: need 16-bit PCM mono at %d Hz, got format %d, %d-bit, %d channel(s), "
                    "%d Hz" % (path, RATE_HZ, tag, bits, channels, rate)
                )
            return size
        else:
            f.seek(size + (size & 1), 1)


class FileSource:
    """Samples from a file in place of a microphone. `path` ending in .wav is parsed as
    RIFF/WAVE (16-bit PCM mono 16 kHz, else ValueError); anything else is raw int16 LE (a
    file or a FIFO). With `realtime`, readinto() returns no sooner than the audio it has
    delivered would take to record (16 samples per ms), as a microphone does."""

    def __init__(self, path, realtime=False):
        self.f = open(path, "rb")
        self.left = -1  # bytes left in a wav data chunk; -1 for raw
        if path.endswith(".wav"):
            try:
                self.left = _wav_data(self.f, path)
            except Exception:
                self.f.close()
                raise
        self.realtime = realtime
        self.samples = 0
        self.t0 = None

    def readinto(self, buf):
        n = len(buf)
        if self.left >= 0 and n > self.left:
            n = self.left - (self.left & 1)
        got = self.f.readinto(buf) if n == len(buf) else self.f.readinto(memoryview(buf)[:n])
        got = got or 0
        while 0 < got < n:  # a FIFO or a short read: fill the block unless the stream ended
            more = self.f.readinto(memoryview(buf)[got:n])
            if not more:
                break
            got += more
        got -= got & 1
        if self.left >= 0:
            self.left -= got
        if self.realtime and got:
            if self.t0 is None:
                self.t0 = time.ticks_ms()
            self.samples += got // SAMPLE_BYTES
            wait = self.samples // (RATE_HZ // 1000) - time.ticks_diff(time.ticks_ms(), self.t0)
            if wait > 0:
                time.sleep_ms(wait)
        return got

    def close(self):
        self.f.close()


def make_source(cfg):
    """A source from config: cfg["source"] is "i2s" (uses cfg["i2s"]) or "file" (uses
    cfg["file"] = {"path": str, "realtime": bool}). Raises ValueError otherwise."""
    kind = cfg.get("source")
    if kind == "i2s":
        return I2SSource(cfg.get("i2s") or {})
    if kind == "file":
        fc = cfg.get("file") or {}
        if "path" not in fc:
            raise ValueError("file source needs file.path")
        return FileSource(fc["path"], fc.get("realtime", False))
    raise ValueError("unknown audio source %r (use 'i2s' or 'file')" % (kind,))
