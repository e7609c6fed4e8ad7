# Copyright © 2026 mlx-lowbit contributors.
"""Every kernel family under ThreadSanitizer (missing barriers, racy
threadgroup or workspace updates) and AddressSanitizer (reads or writes past
a buffer: row ends, codebook indices that straddle the last word, ragged
tiles). The emulator builds, for a sanitizer run, a source with only the
weight's format and dtype instantiated (metal/instantiate.h)."""

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import FORMATS, assert_close, format_id

import mlx_lowbit as lb
from mlx_lowbit.testing import metal_dequantize, metal_gather_matmul, metal_matmul

# (schedule, M, options): GEMV with MR = 1, 2 and 4 (M = 5: a partial
# second threadgroup of rows); the GEMM and
# fix-up kernels; split-K.
FAMILIES = [
    ("gemv", 1, {}),
    ("gemv", 2, {}),
    ("gemv", 5, {}),
    ("dataparallel", 20, {}),
    ("splitk", 20, {"split_k": 2}),
    ("streamk", 20, {"gpu_cores": 3}),
]


def run_families(f, dtype, sanitizer):
    fmt, opts = f
    # N and M ragged against every tile; K / 32 odd (binary GEMV lanes read
    # a lone last word); 5-bit codebook indices straddle words, and with
    # v = 16, c = 12 the row's last index sits in its last word, with no
    # word after it in the row (nor, for the last row, in the buffer).
    n, k = 21, 160
    qw = lb.quantize(mx.random.normal((n, k), key=mx.random.key(0)), fmt, 32, **opts)
    w = reference.dequantize(qw)
    for schedule, m, extra in FAMILIES:
        x = (mx.random.normal((m, k), key=mx.random.key(1)) / np.sqrt(k)).astype(dtype)
        out = metal_matmul(x, qw, schedule, sanitizer=sanitizer, **extra)
        ref = np.asarray(x.astype(mx.float32), dtype=np.float64) @ w.T
        assert_close(out, ref, dtype, f"{schedule} under {sanitizer}")
    deq = metal_dequantize(qw, dtype, sanitizer=sanitizer)
    assert_close(deq, w, dtype, f"dequantize under {sanitizer}")


@pytest.mark.parametrize(
    "f,dtype",
    [
        (FORMATS[0], mx.bfloat16),
        (FORMATS[2], mx.float32),
        (FORMATS[3], mx.float16),
        (FORMATS[4], mx.float16),
    ],
    ids=lambda v: format_id(v) if isinstance(v, tuple) else str(v),
)
def test_address_sanitizer(f, dtype):
    """Each decoder once (they differ in what they read), every family."""
    run_families(f, dtype, "address")


def test_thread_sanitizer():
    run_families(FORMATS[4], mx.float16, "thread")


@pytest.mark.parametrize("sanitizer", ["address", "thread"])
@pytest.mark.parametrize("f", [FORMATS[2], FORMATS[4]], ids=format_id)
def test_gather_kernel(f, sanitizer):
    """The MoE gather (metal/gather.h): decode rows, batch rows whose expert
    changes mid-tile, and the grouped GEMM, on the last expert's last row
    (N ragged)."""
    from test_gather import make_experts, ref_gather

    qe = make_experts(f, 3, 21, 160, 32)
    x = (mx.random.normal((4, 3, 160), key=mx.random.key(1)) / np.sqrt(160)).astype(mx.float16)
    for lhs, rhs in [
        (np.array([0]), np.array([2, 0, 1])),
        (np.array([3, 0, 2]), np.array([2, 2, 1])),
    ]:
        out = metal_gather_matmul(x, qe, mx.array(lhs), mx.array(rhs), sanitizer=sanitizer)
        assert_close(out, ref_gather(x, qe, lhs, rhs), mx.float16, sanitizer)
    # The grouped GEMM: sorted rows whose runs cross the 32-row tiles.
    rhs = np.repeat([0, 1, 2], [20, 17, 3])
    x = (mx.random.normal((40, 1, 160), key=mx.random.key(2)) / np.sqrt(160)).astype(mx.float16)
    out = metal_gather_matmul(x, qe, None, mx.array(rhs), sorted_indices=True, sanitizer=sanitizer)
    assert_close(out, ref_gather(x, qe, None, rhs), mx.float16, f"gemm under {sanitizer}")
