"""The two engines of ``earshot eval`` and ``bench/``, run the same way over arrays or blocks.

:class:`Earshot` runs a model package through the C core (:class:`earshot.core.Detector`, VAD
gate on, the model's cutoff/window/refractory); :class:`MicroWakeWord` runs microWakeWord's
built-in "alexa" through ``pymicro-wakeword`` 2.5.0 at its defaults (cutoff 0.9, window 5):
each 30 ms step whose window mean exceeds the cutoff is a detection. Each gives a scanner
(``scanner(cutoffs)``: ``feed(block)`` then ``result()``) that keeps its streaming state from
one block to the next, so a stream of any length is measured a block at a time with the same
detections, at the same times, as the whole stream at once (tests/test_eval.py);
:func:`scan_negatives` feeds one stream to several engines in a single pass.
"""

from __future__ import annotations

import time

import numpy as np

from earshot.core.constants import HOP_S, HOP_SAMPLES  # one feature hop, s and samples

MWW_CUTOFF = 0.9
MWW_WINDOW = 5
MWW_STEP_S = 0.03  # 3 feature hops of 10 ms per model step (pymicro-wakeword stride)


class _Engine:
    """What both engines share: detections over arrays or blocks through a scanner."""

    def scan(self, blocks, cutoffs) -> list[list[float]]:
        """Detection times (s from the start of the first block, ascending) at each of
        ``cutoffs`` (probability; None: the engine's own) over the concatenation of
        ``blocks`` (int16 arrays at 16 kHz), in one pass with fresh state. Raises
        ValueError for a block that is not 1-D int16."""
        scanner = self.scanner(cutoffs)
        for block in blocks:
            scanner.feed(block)
        return scanner.result()

    def detect(self, samples: np.ndarray, cutoff: float | None = None) -> list[float]:
        """Detection times (s) over int16 ``samples`` from fresh state, at ``cutoff``
        (probability; None: the engine's own)."""
        return self.scan([samples], [cutoff])[0]

    def sweep(self, samples: np.ndarray, cutoffs) -> list[list[float]]:
        """:meth:`detect` at each of ``cutoffs``, from one pass over ``samples``."""
        return self.scan([samples], cutoffs)


class Earshot(_Engine):
    """An Earshot model package run through the C core (``earshot.core.Detector``)."""

    name = "Earshot"

    def __init__(self, model_dir):
        from earshot.model import Model
        from earshot.model import package as modelpkg

        self.manifest, blob = modelpkg.load(model_dir)
        self.model = Model(blob)
        self.cutoff = float(self.manifest["cutoff"])

    def settings(self) -> str:
        m = self.manifest
        return f"cutoff {m['cutoff']:.2f}, window {m['window']}, VAD on"

    def scanner(self, cutoffs) -> _EarshotScan:
        """A fresh detector per cutoff (None: the model's), fed block by block."""
        return _EarshotScan(self, cutoffs)


class _EarshotScan:
    """Detectors of one model at several cutoffs, fed the same blocks. A detection's time is
    the end of the hop that fired, s from the first sample fed; a partial hop at the end of
    a block is carried to the next (as ``earshot.score.score_blocks``), one left at the end
    is dropped (as ``Detector.run``). ValueError for a block that is not 1-D int16."""

    def __init__(self, engine: Earshot, cutoffs):
        from earshot.core import Detector

        m = engine.manifest
        self.detectors = [
            Detector(engine.model, cutoff=m["cutoff"] if c is None else c, window=m["window"],
                     refractory=m["refractory"], vad=True)
            for c in cutoffs
        ]  # fmt: skip
        self.times: list[list[float]] = [[] for _ in self.detectors]
        self.hops = 0
        self.carry = np.zeros(0, np.int16)

    def feed(self, block: np.ndarray) -> None:
        x = np.concatenate([self.carry, block]) if len(self.carry) else np.asarray(block)
        n = len(x) // HOP_SAMPLES * HOP_SAMPLES
        for det, times in zip(self.detectors, self.times):
            times += [(self.hops + h + 1) * HOP_S for h in det.run(x[:n]).detections]
        self.hops += n // HOP_SAMPLES
        self.carry = x[n:].copy()

    def result(self) -> list[list[float]]:
        return self.times


class MicroWakeWord(_Engine):
    """microWakeWord's built-in "alexa" (pymicro-wakeword 2.5.0) at its default settings."""

    name = "microWakeWord"
    cutoff = MWW_CUTOFF

    def __init__(self):
        from pymicro_wakeword import MicroWakeWord as Mww
        from pymicro_wakeword import Model

        self.mww = Mww.from_builtin(Model.ALEXA)
        if (self.mww.probability_cutoff, self.mww.sliding_window_size) != (MWW_CUTOFF, MWW_WINDOW):
            raise RuntimeError("pymicro-wakeword alexa defaults changed: expected 0.9 / 5")

    def settings(self) -> str:
        return f"cutoff {MWW_CUTOFF}, window {MWW_WINDOW}"

    def scanner(self, cutoffs) -> _MwwScan:
        """The model reset and fed block by block; cutoffs (None: 0.9) applied to its
        smoothed probability. One scanner at a time per engine (they share the model)."""
        return _MwwScan(self, cutoffs)


class _MwwScan:
    """pymicro-wakeword fed block by block: its feature frontend keeps the partial 10 ms
    chunk between blocks, the model its streaming state. A step is a detection at a cutoff
    when its smoothed probability exceeds it; its time is the end of its last feature hop,
    s from the first sample fed. Only steps above the lowest cutoff are kept. ValueError for
    a block that is not 1-D int16."""

    def __init__(self, engine: MicroWakeWord, cutoffs):
        from pymicro_wakeword import MicroWakeWordFeatures

        self.mww = engine.mww
        self.mww.reset()
        self.features = MicroWakeWordFeatures()
        self.cutoffs = [MWW_CUTOFF if c is None else float(c) for c in cutoffs]
        self.floor = min(self.cutoffs, default=1.0)
        self.hops = 0
        self.kept: list[tuple[float, float]] = []  # (time s, probability)

    def feed(self, block: np.ndarray) -> None:
        if block.dtype != np.int16 or block.ndim != 1:
            raise ValueError(f"samples must be 1-D int16 PCM, got {block.dtype} {block.shape}")
        for f in self.features.process_streaming(block.tobytes()):
            p = self.mww.process_streaming_prob(f)
            self.hops += 1
            if self.hops % self.mww.stride == 0 and p is not None and float(p) > self.floor:
                self.kept.append((self.hops * HOP_S, float(p)))

    def result(self) -> list[list[float]]:
        return [[t for t, p in self.kept if p > c] for c in self.cutoffs]


def scan_negatives(engines, stream, cutoffs=(None,)) -> tuple[list, list[float]]:
    """One pass over ``stream`` (int16 blocks at 16 kHz, e.g. an
    :class:`earshot.evaluate.NegativeStream`),
    each block fed to every engine in turn: (per engine, its detection times in s from the
    stream's start at each of ``cutoffs`` (probability; None: the engine's own); per engine,
    the seconds it spent). Raises what reading the stream raises."""
    scanners = [e.scanner(cutoffs) for e in engines]
    spent = [0.0] * len(engines)
    for block in stream:
        for k, s in enumerate(scanners):
            t0 = time.monotonic()
            s.feed(block)
            spent[k] += time.monotonic() - t0
    return [s.result() for s in scanners], spent
