# Earshot audio sources (MicroPython): 16 kHz mono int16 little-endian PCM, read in blocks.
#
# Every source has readinto(buf) -> bytes written (a multiple of 2; fewer than len(buf) only
# at the end of the stream, 0 at the end) and close(). Buffers are the caller's.
#
#   I2SSource  the board's microphone through machine.I2S in RX mode (standard I2S, or PDM
#              on firmware whose machine.I2S has PDM_RX); 16-bit mono at 16 kHz
#   FileSource a .wav (PCM, 16-bit, mono, 16 kHz) or raw int16 LE file or FIFO, standing in
#              for the microphone on the virtual board; paced in real time or as fast as
#              the detector runs
#
# make_source(cfg) builds one from a config dict (see es_config.py). The microphone's pins
# and format come from cfg["i2s"] when set, else from the board definition es_board.MIC
# (boards/<BOARD>/es_board.py, frozen into the board's firmware or copied by
# `earshot deploy --board NAME`): one place per board.

import struct
import time

import micropython

from es_const import SAMPLE_RATE as RATE_HZ

SAMPLE_BYTES = 2
#: Microphone kinds (es_board.MIC["kind"]).
KINDS = ("i2s", "pdm", "es7210")


@micropython.viper
def _narrow32(dst, src, n: int, shift: int):
    # dst[i] = saturate_int16(src[i] >> shift) for n int32 LE samples in src (bytes-like)
    # into int16 LE samples in dst. Viper loads are unsigned and a native int is 32 or 64
    # bits depending on the port, so each sample is rebuilt from its sign-extended high half.
    s = ptr16(src)
    d = ptr16(dst)
    for i in range(n):
        hi = s[2 * i + 1]
        if hi & 0x8000:
            hi -= 0x10000
        v = ((hi << 16) | s[2 * i]) >> shift
        if v > 32767:
            v = 32767
        elif v < -32768:
            v = -32768
        d[i] = v


class I2SSource:
    """A microphone through machine.I2S. `mic` (a board's es_board.MIC, see boards/):

    kind   "i2s" (standard Philips I2S, the board drives SCK/WS), "pdm" (PDM microphone:
           sck = PDM clock, sd = data; needs I2S.PDM_RX, which stock MicroPython lacks) or
           "es7210" (an ES7210 ADC, ESP32-S3-BOX-3: not supported yet, raises OSError)
    id     I2S peripheral; sck, ws, sd (and optional mck) GPIO numbers
    bits   16, or 32 for 24/32-bit microphones (INMP441): each 32-bit slot is narrowed to
           int16 as slot >> shift, saturated
    shift  right shift for bits=32 (16: the top 16 bits; smaller: more gain)
    ibuf   machine.I2S internal buffer in bytes

    Raises ValueError naming missing or bad keys, OSError when the firmware cannot drive
    this kind of microphone."""

    def __init__(self, mic):
        from machine import I2S, Pin

        kind = mic.get("kind", "i2s")
        if kind not in KINDS:
            raise ValueError("unknown microphone kind %r (use %s)" % (kind, ", ".join(KINDS)))
        need = ("id", "sck", "sd", "ibuf") if kind == "pdm" else ("id", "sck", "ws", "sd", "ibuf")
        missing = [k for k in need if k not in mic]
        if missing:
            raise ValueError("microphone config lacks " + ", ".join(missing))
        self.bits = mic.get("bits", 16)
        if self.bits not in (16, 32):
            raise ValueError("microphone bits must be 16 or 32, got %r" % (self.bits,))
        self.shift = mic.get("shift", 16 if self.bits == 32 else 0)
        self.wide = None  # int32 staging buffer for bits=32, grown on demand
        if kind == "es7210":
            raise OSError(
                "ES7210 microphone ADC (ESP32-S3-BOX-3): it must be configured over I2C "
                "before it sends samples, and Earshot ships no ES7210 driver yet"
            )
        kw = {"sd": Pin(mic["sd"]), "bits": self.bits, "format": I2S.MONO, "rate": RATE_HZ,
              "ibuf": mic["ibuf"]}
        if kind == "pdm":
            mode = getattr(I2S, "PDM_RX", None)
            if mode is None:
                raise OSError(
                    "this firmware's machine.I2S has no PDM mode (I2S.PDM_RX); PDM "
                    "microphones need MicroPython with PDM RX support (micropython pull "
                    "request #14176)"
                )
            kw["sck"] = Pin(mic["sck"])
            kw["ws"] = Pin(mic.get("ws", mic["sck"]))
        else:
            mode = I2S.RX
            kw["sck"] = Pin(mic["sck"])
            kw["ws"] = Pin(mic["ws"])
            if "mck" in mic:
                kw["mck"] = Pin(mic["mck"])
        self.i2s = I2S(mic["id"], mode=mode, **kw)

    def readinto(self, buf):
        if self.bits == 16:
            return self.i2s.readinto(buf)
        n = len(buf) // SAMPLE_BYTES
        if self.wide is None or len(self.wide) < 4 * n:
            self.wide = bytearray(4 * n)
        got = self.i2s.readinto(memoryview(self.wide)[: 4 * n]) // 4
        _narrow32(buf, self.wide, got, self.shift)
        return got * SAMPLE_BYTES

    def close(self):
        if hasattr(self, "i2s"):
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


def board_mic():
    """The board's microphone, es_board.MIC (a dict), or None without a board definition."""
    try:
        import es_board
    except ImportError:
        return None
    return es_board.MIC


def make_source(cfg):
    """A source from config: cfg["source"] is "i2s" (the microphone described by cfg["i2s"]
    if non-empty, else by es_board.MIC) or "file" (cfg["file"] = {"path": str, "realtime":
    bool}). Raises ValueError for another source or when no microphone is described."""
    kind = cfg.get("source")
    if kind == "i2s":
        mic = cfg.get("i2s") or board_mic()
        if not mic:
            raise ValueError(
                "no microphone configured: deploy the board definition (earshot deploy "
                "--board NAME) or set \"i2s\" in earshot.json"
            )
        return I2SSource(mic)
    if kind == "file":
        fc = cfg.get("file") or {}
        if "path" not in fc:
            raise ValueError("file source needs file.path")
        return FileSource(fc["path"], fc.get("realtime", False))
    raise ValueError("unknown audio source %r (use 'i2s' or 'file')" % (kind,))
