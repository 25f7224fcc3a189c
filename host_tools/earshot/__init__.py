"""Earshot host tools: train, quantize, export, score, flash, deploy and monitor.

The on-device part lives in ``firmware/``; this package drives it from CPython.
"""

import os

# TensorFlow's own CPU kernel for DepthwiseConv2D cannot take the gradient of a stride (s, 1)
# with s > 1 ("Current implementation only supports equal length strides"), which every
# Earshot DS-CNN with a strided block has (earshot.train.arch). oneDNN's kernel can. TensorFlow turns
# oneDNN on by default only on some x86 CPUs (on an AMD EPYC here it was off, and training
# failed), so ask for it everywhere, before TensorFlow is first imported. An explicit setting
# of the variable is kept.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.3.0"
