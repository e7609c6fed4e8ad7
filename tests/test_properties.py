# Copyright © 2026 mlx-lowbit contributors.
"""Property tests: random formats, shapes and group sizes against the spec."""

import mlx.core as mx
import numpy as np
import reference
from conftest import DTYPES, FORMATS, assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import mlx_lowbit as lb


@st.composite
def problems(draw):
    fmt, opts = draw(st.sampled_from(FORMATS))
    groups = draw(st.integers(1, 4))
    group_size = 32 * draw(st.integers(1, 3))
    k = groups * group_size
    n = draw(st.integers(1, 24))
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    m = draw(st.integers(1, 9))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    return fmt, opts, n, k, group_size, tuple(batch) + (m,), dtype, seed


@settings(max_examples=60, deadline=None)
@given(problems())
def test_random_problems_match_the_spec(problem):
    fmt, opts, n, k, gs, lead, dtype, seed = problem
    kw, kx = mx.random.split(mx.random.key(seed))
    qw = lb.quantize(mx.random.normal((n, k), key=kw), fmt, gs, **opts)
    x = (mx.random.normal(lead + (k,), key=kx) / np.sqrt(k)).astype(dtype)
    out = lb.matmul(x, qw)
    xs = np.asarray(x.astype(mx.float32), dtype=np.float64).reshape(-1, k)
    ref = (xs @ reference.dequantize(qw).T).reshape(lead + (n,))
    assert_close(out, ref, dtype)
