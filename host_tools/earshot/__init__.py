"""Earshot host tools: train, quantize, export, score, flash, deploy and monitor.

The on-device part lives in ``firmware/``; this package drives it from CPython.
"""

__version__ = "0.3.0"
