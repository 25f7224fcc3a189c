# Earshot detector loop (MicroPython): audio source -> earshot.Detector -> telemetry.
#
# Loop.run() reads block_hops hops (10 ms, HOP_SAMPLES int16 samples each) at a time into a buffer
# allocated once, runs the detector on them, sends a DETECT frame per detection and a STATS
# frame every stats_every hops (see es_telemetry.py). In steady state an iteration
# allocates nothing on the heap except when a frame is sent (the CRC's integer) and
# when STATS reads the detector's counters (a tuple), once per stats_every hops.
#
# Adaptation (config "adapt", off by default; es_adapt.py, which needs a `_earshot` built
# with adaptation; on a detection-only one the loop says so and only detects): with an
# es_adapt.Adapter, each
# iteration also hands the block and the detector to adapter.observe() (pseudo-labels from the
# detector's own feature rows, no second frontend; a non-streaming forward pass per kept
# window, none while the block holds no candidate, e.g. while the gate is closed) and runs
# one adapter.step(): at most cfg slice_macs MACs of training or acceptance check, so
# detection never waits for more than one slice. When the
# adapted model is ready and accepted, on_adapted(blob) saves it (es_adapt.save: temp file,
# flush, rename) and may return a new detector, used from the next block on. One adaptation
# per session; a refused one (acceptance check) keeps the model in use. The adapted model
# is used at boot when its file is valid; adaptation only runs on the configured model (call
# es_adapt.restore(), or `earshot adapt --rollback`, to start over).
#
# Which model: load_model() tries the adapted model (config adapt.save_to), then the
# configured factory model (config "model", "model.bin"), then its backup ("model.bin.bak",
# the previous model, kept by `earshot deploy`, which writes the factory model through
# "model.bin.tmp": verify, move the old one to the backup, rename; see docs/boards.md). The
# first that parses is used. When none does, start() says so on the console and in a TEXT
# telemetry frame and returns, so the board stays at the REPL for a new deploy.
#
# Entry points: start() (config from earshot.json; what main.py calls) and run_files()
# (a list of recordings as separate streams, for tests and the demo).

import gc
import sys
import time

from es_const import FLAG_DETECT, HOP_SAMPLES
from es_telemetry import Telemetry

HOP_BYTES = HOP_SAMPLES * 2  # int16 samples
BACKUP_SUFFIX = ".bak"  # the factory model's backup: "model.bin.bak" (earshot deploy)
TEMP_SUFFIX = ".tmp"  # where earshot deploy writes the factory model before the rename
LAST = None  # the Loop of the last run_files() call (tests read its adaptation results)


class Loop:
    """Runs `detector` (an earshot.Detector, or anything with the same run/stats/reset)
    over audio sources, reporting on `telemetry` (an es_telemetry.Telemetry)."""

    def __init__(self, detector, telemetry, block_hops=10, stats_every=100, adapter=None,
                 on_adapted=None, on_wake=None):
        if block_hops < 1 or stats_every < 1:
            raise ValueError("block_hops and stats_every must be >= 1")
        if on_wake is not None and not callable(on_wake):
            raise TypeError("on_wake must be callable(hop, score) or None")
        self.detector = detector
        # The maker's hook: on_wake(hop, score) after each detection's DETECT frame; hop counts
        # 10 ms hops from the stream's start, score the smoothed posterior 0..255 (cutoff
        # scale). It runs inside the loop: keep it short (set a pin, queue a message); an
        # exception it raises is printed and the loop goes on listening.
        self.on_wake = on_wake
        self.wake_errors = 0  # exceptions raised by on_wake (printed, not raised)
        self.adapter = adapter  # es_adapt.Adapter or None
        self.on_adapted = on_adapted  # callable(blob) -> new detector or None
        self.adapt_us_max = 0  # longest adapter observe + step of one iteration (us)
        self.adapt_blocks = 0  # iterations in which the adapter trained or checked
        self.adapted = None  # after adaptation: the saved blob, or False when refused
        self.adapted_at = None  # (stream, hop) from which the adapted model detected
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
        if self.adapter is not None:
            self.adapter.new_stream()
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
                            if self.on_wake is not None:
                                self._wake(hop + i, probs[i])
                    detections += n
                if self.adapter is not None:
                    new = self._adapt(samples, probs, flags)
                    if new is not None:  # detect with the adapted model from now on
                        det = self.detector = new
                        det.reset()
                        last = (0, 0, 0, 0)
                        self.adapted_at = (stream, hop + n_hops)
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

    def _wake(self, hop, score):
        try:
            self.on_wake(hop, score)
        except Exception as exc:  # noqa: BLE001 - a maker's bug must not stop the listening
            self.wake_errors += 1
            sys.print_exception(exc)

    def _adapt(self, samples, probs, flags):
        # One adapter slice after a detector block; returns a new detector or None.
        ad = self.adapter
        t0 = time.ticks_us()
        ad.observe(samples, probs, flags, self.detector)  # its rows: no second frontend
        blob = ad.step()
        if ad.training() or ad.finished:
            self.adapt_blocks += 1
        dt = time.ticks_diff(time.ticks_us(), t0)
        self.adapt_us_max = max(self.adapt_us_max, dt)
        if not ad.finished:
            return None
        self.adapter = None  # one adaptation per session; its buffers can be collected
        if blob is None:
            self.adapted = False
            return None
        self.adapted = blob
        return self.on_adapted(blob) if self.on_adapted is not None else None

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


ADAPT_KEYS = ("enabled", "save_to", "reload")  # config "adapt" keys besides es_adapt's


def _make_detector(model, cfg):
    import earshot

    return earshot.Detector(model, cutoff=cfg.get("cutoff"), window=cfg.get("window"),
                            refractory=cfg.get("refractory"), vad=cfg.get("vad", True))


class NoModelError(ValueError):
    """No candidate model parses; the message names each one tried and why."""


def load_model(cfg):
    """(model, name, adapted) for the merged config `cfg`: the first that parses of the
    adapted model (cfg adapt.save_to, adapted True), the configured model (cfg["model"]: a
    path, or a buffer from a partition or a frozen module) and, when that is a path, its
    backup (path + BACKUP_SUFFIX). Raises NoModelError naming every candidate and why it
    failed (missing file, "blob truncated", CRC mismatch, ...)."""
    import earshot

    path = (cfg.get("adapt") or {}).get("save_to")
    src = cfg["model"]
    tries = [(path, True)] if path else []
    tries.append((src, False))
    if isinstance(src, str):
        tries.append((src + BACKUP_SUFFIX, False))
    why = []
    for source, adapted in tries:
        name = source if isinstance(source, str) else "built-in model"
        try:
            return earshot.load_model(source), name, adapted
        except (OSError, ValueError) as exc:
            missing = isinstance(exc, OSError) and exc.args and exc.args[0] == 2  # ENOENT
            why.append("%s: %s" % (name, "missing" if missing else exc))
    raise NoModelError("no valid model (" + "; ".join(why) + ")")


def say(message, telemetry=None):
    """Tell the user: `message` on the console (the REPL) and, with `telemetry`, in a TEXT
    frame (what `earshot monitor` shows)."""
    print(message)
    if telemetry is not None:
        telemetry.text(message)


def _detector(cfg):
    # (detector, params, model, adapted); NoModelError when no model parses.
    model, _, adapted = load_model(cfg)
    return _make_detector(model, cfg), _params(model, cfg), model, adapted


def _adaptation(cfg, model, adapted):
    # (adapter, on_adapted) for Loop, or (None, None) when off or already adapted.
    acfg = cfg.get("adapt") or {}
    if not acfg.get("enabled") or adapted:
        return None, None
    try:
        import es_adapt
    except ImportError as exc:  # a detection-only firmware or natmod
        print("earshot: adaptation off:", exc)
        return None, None

    over = {}
    for key, value in acfg.items():
        if key in ADAPT_KEYS:
            continue
        if key not in es_adapt.DEFAULTS:
            raise ValueError("unknown adapt config key: " + key)
        over[key] = value
    adapter = es_adapt.Adapter(model, over)
    save_to = acfg.get("save_to") or es_adapt.ADAPTED

    def on_adapted(blob):
        es_adapt.save(blob, save_to)
        if acfg.get("reload", True):
            import earshot

            return _make_detector(earshot.Model(blob), cfg)
        return None

    return adapter, on_adapted


def start(cfg=None, telemetry=None, on_wake=None):
    """Run the detector on the configured source (es_config.load() when cfg is None) until
    the source ends or Ctrl-C; on_wake(hop, score) is called on each detection (Loop).
    Returns (hops, detections), or None when no model parses
    (load_model): then it says so (say(): console and a TEXT frame) instead of raising, so
    main.py returns to the REPL and a new `earshot deploy` can fix the board."""
    import es_audio
    import es_config

    cfg = es_config.load() if cfg is None else es_config.merge(cfg)
    tel = telemetry or Telemetry()
    try:
        det, params, model, adapted = _detector(cfg)
    except NoModelError as exc:
        say("earshot: not listening: %s; deploy a model (earshot deploy)" % exc, tel)
        return None
    adapter, on_adapted = _adaptation(cfg, model, adapted)
    source = es_audio.make_source(cfg)
    try:
        loop = Loop(det, tel, cfg["block_hops"], cfg["stats_every"], adapter, on_adapted,
                    on_wake)
        return loop.run(source, 0, params)
    finally:
        source.close()


def run_files(paths, cfg=None, telemetry=None, on_wake=None):
    """Run the detector over each file in `paths` as its own stream (stream id = index,
    detector reset in between), as fast as possible. `cfg` overrides es_config.DEFAULTS.
    Returns a list of (hops, detections) per file; with config adapt enabled, the Loop's
    adapter carries over from file to file (the Loop is in the module global LAST)."""
    global LAST
    import es_audio
    import es_config

    cfg = es_config.merge(cfg or {})
    det, params, model, adapted = _detector(cfg)
    adapter, on_adapted = _adaptation(cfg, model, adapted)
    tel = telemetry or Telemetry()
    loop = LAST = Loop(det, tel, cfg["block_hops"], cfg["stats_every"], adapter, on_adapted,
                       on_wake)
    out = []
    for i, path in enumerate(paths):
        source = es_audio.FileSource(path, realtime=False)
        try:
            out.append(loop.run(source, i, params))
        finally:
            source.close()
    return out
