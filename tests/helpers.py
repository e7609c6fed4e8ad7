# Copyright © 2026 mlx-lowbit contributors.
"""Inputs and references shared by the matmul and kernel tests."""

import mlx.core as mx
import numpy as np
import reference

import mlx_lowbit as lb
from mlx_lowbit import _ext

# From schedule.cpp's one table, so a new schedule is tested without edits here.
SCHEDULES = tuple(_ext.schedules())


def make_weight(f, n, k, gs, seed=0, scale_dtype=mx.float16):
    """A random (n, k) weight quantized to f = (fmt, options)."""
    fmt, opts = f
    w = mx.random.normal((n, k), key=mx.random.key(seed))
    return lb.quantize(w, fmt, gs, scale_dtype=scale_dtype, **opts)


def make_x(shape, dtype, seed=1):
    # Scaled by 1/sqrt(K) so outputs stay O(1) whatever K is.
    return (mx.random.normal(shape, key=mx.random.key(seed)) / np.sqrt(shape[-1])).astype(dtype)


def ref_product(x, qw):
    """float64 x @ W.T from the spec decoder, x as given (already rounded to
    its dtype), for x of any rank."""
    xs = np.asarray(x.astype(mx.float32), dtype=np.float64).reshape(-1, x.shape[-1])
    return (xs @ reference.dequantize(qw).T).reshape(tuple(x.shape[:-1]) + (qw.shape[0],))
