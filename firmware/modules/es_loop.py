# Earshot detector loop (MicroPython): audio source -> earshot.Detector -> telemetry.
#
# Loop.run() reads block_hops hops (10 ms, 160 int16 samples each) at a time into a buffer
# allocated once, runs the detector on them, sends a DETECT frame per detection and a STATS
# frame every stats_every hops (see es_telemetry.py). In steady state an iteration
# allocates nothing on the heap except when a frame is sent (the CRC's integer) and
# when STATS reads the detector's counters (a tuple), once per stats_every hops.
#
# Entry points: start() (config from earshot.json; what main.py calls) and run_files()
# (a list of recordings as separate streams, for tests and the demo).

import gc
import time

from es_telemetry import Telemetry

HOP_SAMPLES = 160  # ES_HOP_SAMPLES, firmware/core/earshot.h
HOP_BYTES = HOP_SAMPLES * 2
FLAG_DETECT = 8  # ES_FLAG_DETECT


class Loop:
    """Runs `detector` (an earshot.Detector, or anything with the same run/stats/reset)
    over audio sources, reporting on `telemetry` (an es_telemetry.Telemetry)."""

    def __init__(self, detector, telemetry, block_hops=10, stats_every=100):
        if block_hops < 1 or stats_every < 1:
            raise ValueError("block_hops and stats_every must be >= 1")
        self.detector = detector
        self.tel = telemetry
        self.block_hops = block_hops
        self.stats_every = stats_every
        self.buf = bytearray(block_hops * HOP_BYTES)
        self.probs = bytearray(block_hops)
        self.flags = bytearray(block_hops)

    def run(self, source, stream=0, params=(0, 0, 0, 0), max_hops=0):
        """Process `source` until it ends (or `max_hops` hops, 0: no limit). `params` =
        (cutoff, window, refractory, vad) as reported in the HELLO frame. The detector is
        reset first, so hop indices count from 0 for each stream. Returns (hops,
        detections). The END frame is sent even when interrupted (KeyboardInterrupt)."""
        det, tel, buf = self.detector, self.tel, self.buf
        probs, flags = self.probs, self.flags
        det.reset()
        tel.hello(stream, params[0], params[1], params[2], params[3], self.stats_every)
        ticks_us, ticks_diff = time.ticks_us, time.ticks_diff
        hop = detections = since = 0
        us_sum = us_max = 0
        last = (0, 0, 0, 0)
        full = len(buf)
        try:
            while True:
                got = source.readinto(buf)
                if got <= 0:
                    break
                samples = buf
                n_hops = self.block_hops
                if got < full:  # the stream's last block: zero-pad to a whole hop
                    n_hops = (got + HOP_BYTES - 1) // HOP_BYTES
                    for i in range(got, n_hops * HOP_BYTES):
                        buf[i] = 0
                    samples = memoryview(buf)[: n_hops * HOP_BYTES]
                t0 = ticks_us()
                n = det.run(samples, probs, flags)
                dt = ticks_diff(ticks_us(), t0)
                us_sum += dt
                if dt > us_max * n_hops:
                    us_max = dt // n_hops
                if n:
                    for i in range(n_hops):
                        if flags[i] & FLAG_DETECT:
                            tel.detect(hop + i, probs[i])
                    detections += n
                hop += n_hops
                since += n_hops
                if since >= self.stats_every:
                    last = self._stats(hop, since, last, detections, us_sum, us_max)
                    since = us_sum = us_max = 0
                if got < full or (max_hops and hop >= max_hops):
                    break
        finally:
            if since:
                self._stats(hop, since, last, detections, us_sum, us_max)
            tel.end(stream, hop, detections)
        return hop, detections

    def _stats(self, hop, hops, last, detections, us_sum, us_max):
        now = self.detector.stats()  # (hops, model_hops, detections, vad_open_hops)
        self.tel.stats(hop, hops, now[3] - last[3], now[1] - last[1], detections, us_sum,
                       us_max, gc.mem_free())
        return now


def _params(model, cfg):
    # (cutoff, window, refractory, vad) in effect: the config's, else the blob's defaults.
    info = model.info() if hasattr(model, "info") else {}
    out = []
    for key in ("cutoff", "window", "refractory"):
        value = cfg.get(key)
        out.append(info.get(key, 0) if value is None else value)
    out.append(1 if cfg.get("vad", True) else 0)
    return tuple(out)


def _detector(cfg):
    import earshot

    model = earshot.load_model(cfg["model"])
    det = earshot.Detector(model, cutoff=cfg.get("cutoff"), window=cfg.get("window"),
                           refractory=cfg.get("refractory"), vad=cfg.get("vad", True))
    return det, _params(model, cfg)


def start(cfg=None, telemetry=None):
    """Run the detector on the configured source (es_config.load() when cfg is None) until
    the source ends or Ctrl-C. Returns (hops, detections)."""
    import es_audio
    import es_config

    cfg = es_config.load() if cfg is None else es_config.merge(cfg)
    det, params = _detector(cfg)
    source = es_audio.make_source(cfg)
    tel = telemetry or Telemetry()
    try:
        loop = Loop(det, tel, cfg["block_hops"], cfg["stats_every"])
        return loop.run(source, 0, params)
    finally:
        source.close()


def run_files(paths, cfg=None, telemetry=None):
    """Run the detector over each file in `paths` as its own stream (stream id = index,
    detector reset in between), as fast as possible. `cfg` overrides es_config.DEFAULTS.
    Returns a list of (hops, detections) per file."""
    import es_audio
    import es_config

    cfg = es_config.merge(cfg or {})
    det, params = _detector(cfg)
    tel = telemetry or Telemetry()
    loop = Loop(det, tel, cfg["block_hops"], cfg["stats_every"])
    out = []
    for i, path in enumerate(paths):
        source = es_audio.FileSource(path, realtime=False)
        try:
            out.append(loop.run(source, i, params))
        finally:
            source.close()
    return out
