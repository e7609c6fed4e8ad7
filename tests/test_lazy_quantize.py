# Copyright © 2026 mlx-lowbit contributors.
"""quantize(lazy=True) and the mlx-lm hook: the quantizer runs only when its
arrays are evaluated, so a loader that replaces them never pays for it."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import FORMATS, format_id
from mlx.utils import tree_flatten

import mlx_lowbit as lb


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_lazy_equals_eager(f):
    fmt, opts = f
    w = mx.random.normal((24, 128), key=mx.random.key(3))
    eager = lb.quantize(w, fmt, 64, **opts)
    lazy = lb.quantize(w, fmt, 64, lazy=True, **opts)
    for name, a in eager.arrays().items():
        b = getattr(lazy, name)
        assert (b.shape, b.dtype) == (a.shape, a.dtype)
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


def nan_weight(n=32, k=64):
    w = np.ones((n, k), np.float32)
    w[1, 2] = np.nan
    return mx.array(w)


def test_lazy_reports_nan_when_evaluated():
    qw = lb.quantize(nan_weight(), "ternary", 32, lazy=True)  # no error yet
    with pytest.raises(RuntimeError, match=r"contains NaN \(first at row 1, column 2\)"):
        mx.eval(qw.packed)
    with pytest.raises(ValueError, match="contains NaN"):
        lb.quantize(nan_weight(), "ternary", 32)
    # Shape and option errors do not wait for the evaluation.
    with pytest.raises(ValueError, match="that divides K=64"):
        lb.quantize(nan_weight(), "ternary", 48, lazy=True)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_hook_does_not_quantize_weights_a_loader_replaces(f):
    """mlx-lm's load_model calls to_quantized on freshly built layers, then
    load_weights. A NaN placeholder proves the quantizer never ran on it."""
    fmt, opts = f
    placeholder = nn.Linear(64, 32, bias=False)
    placeholder.weight = nan_weight()
    entry = {"mode": "lowbit", "fmt": fmt, **lb.nn.quantizer_options(fmt, **opts)}
    entry = {k: v for k, v in entry.items() if k not in ("seed", "max_iters")}
    layer = placeholder.to_quantized(group_size=32, **entry)
    assert isinstance(layer, lb.nn.LowBitLinear)

    source = nn.Linear(64, 32, bias=False)
    good = lb.nn.LowBitLinear.from_linear(source, fmt, 32, **opts)
    layer.load_weights(tree_flatten(good.parameters()), strict=True)
    mx.eval(layer.parameters())  # would raise if the placeholder were quantized
    x = mx.random.normal((3, 64), key=mx.random.key(1))
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(good(x)))
