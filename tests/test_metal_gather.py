# Copyright © 2026 mlx-lowbit contributors.
"""The Metal gather kernel (metal/gather.h), run by the emulator with the
launch LowBitGatherMatmul::eval_gpu encodes, against the float64 product
from the independent spec decoder (tests/test_gather.py's reference). The
output starts as NaN, so a row no threadgroup writes fails the check."""

import re

import mlx.core as mx
import numpy as np
import pytest
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import make_x
from test_gather import CALLS, make_experts, ref_gather

from mlx_lowbit import _ext, quantize
from mlx_lowbit.experts import QuantizedExperts
from mlx_lowbit.testing import GATHER_SOURCE, _runner, metal_gather_matmul, source_root

CASES = product(FORMATS, DTYPES, list(CALLS))


@pytest.mark.parametrize(
    "f,dtype,call", CASES, ids=[f"{format_id(f)}-{d}-{c}" for f, d, c in CASES]
)
def test_gather_kernel_matches_reference(f, dtype, call):
    # N = 20: a threadgroup (8 features) past the end; K = 96 in groups of 32.
    qe = make_experts(f, 4, 20, 96, 32)
    shape, lhs, rhs, is_sorted = CALLS[call]
    x = make_x(tuple(96 if d is None else d for d in shape), dtype)
    out = metal_gather_matmul(
        x,
        qe,
        None if lhs is None else mx.array(lhs),
        None if rhs is None else mx.array(rhs),
        sorted_indices=is_sorted,
    )
    assert out.dtype == dtype
    assert_close(out, ref_gather(x, qe, lhs, rhs), dtype, call)


def test_batch_rows_with_mixed_experts_and_float32_scales():
    # MR = 8 tiles whose rows change expert mid-tile (M = 3 rows per entry,
    # unsorted), plus a partial last tile; float32 scales and biases.
    w = mx.random.normal((3, 12, 64), key=mx.random.key(3))
    qe = QuantizedExperts.stack(
        [quantize(w[e], "binary", 32, biases=True, scale_dtype=mx.float32) for e in range(3)]
    )
    x = make_x((4, 3, 64), mx.float32)
    lhs, rhs = np.array([3, 0, 0, 2, 1]), np.array([2, 2, 0, 1, 1])
    plan = _ext.metal_gather_plan(
        **qe._format_fields(),
        has_biases=True,
        scales_f32=True,
        shared_codebook=False,
        dtype=mx.float32,
        B=5,
        M=3,
        N=12,
        K=64,
        experts=3,
        x_batches=4,
        sorted=False,
    )
    assert plan["launches"][0]["kernel"].endswith("_mr8")
    out = metal_gather_matmul(x, qe, mx.array(lhs), mx.array(rhs))
    assert_close(out, ref_gather(x, qe, lhs, rhs), mx.float32)


GEMM_CASES = product(FORMATS, DTYPES)


@pytest.mark.parametrize("f,dtype", GEMM_CASES, ids=[f"{format_id(f)}-{d}" for f, d in GEMM_CASES])
def test_grouped_gemm(f, dtype):
    # Prefill after mlx-lm's sort: 70 rows over 3 experts (runs of 30, 25,
    # 15 that cross the 32-row tiles; a partial last tile), N = 40 (a
    # partial feature tile); then M = 16 rows per entry, unsorted.
    qe = make_experts(f, 3, 40, 64, 32, seed=9)
    rhs = np.repeat([0, 1, 2], [30, 25, 15])
    x = make_x((70, 1, 64), dtype)
    plan = _ext.metal_gather_plan(
        **qe._format_fields(),
        has_biases=qe.biases is not None,
        scales_f32=False,
        shared_codebook=False,
        dtype=dtype,
        B=70,
        M=1,
        N=40,
        K=64,
        experts=3,
        x_batches=70,
        sorted=True,
    )
    assert "_gemm_" in plan["launches"][0]["kernel"]
    out = metal_gather_matmul(x, qe, None, mx.array(rhs), sorted_indices=True)
    assert_close(out, ref_gather(x, qe, None, rhs), dtype, "sorted")
    x = make_x((2, 16, 64), dtype, seed=2)
    lhs, rhs = np.array([1, 0, 1]), np.array([2, 0, 0])
    out = metal_gather_matmul(x, qe, mx.array(lhs), mx.array(rhs))
    assert_close(out, ref_gather(x, qe, lhs, rhs), dtype, "M = 16")


def test_shared_codebook():
    e, n, k = 3, 8, 64
    qw = quantize(
        mx.random.normal((e * n, k), key=mx.random.key(5)),
        "codebook",
        32,
        vector_size=8,
        index_bits=5,
    )
    qe = QuantizedExperts(
        fmt="codebook",
        group_size=32,
        vector_size=8,
        index_bits=5,
        packed=qw.packed.reshape(e, n, -1),
        scales=qw.scales.reshape(e, n, -1),
        codebook=mx.stack([qw.codebook] * e),
    )
    x = make_x((2, 1, 1, k), mx.float16)
    rhs = np.array([[2, 0], [1, 2]])
    out = metal_gather_matmul(x, qe, rhs_indices=mx.array(rhs), codebook=qw.codebook)
    assert_close(out, ref_gather(x, qe, None, rhs), mx.float16)


def test_plan_names_are_instantiated():
    # Host names are token-pasted: every name the plan can give must be one
    # metal/gather.metal instantiates.
    text = (source_root() / GATHER_SOURCE).read_text()
    instantiated = set()
    for fmt in re.findall(r"instantiate_gather_format\((\w+)\)", text):
        for dtype, mr in product(["float16", "bfloat16", "float32"], [1, 8]):
            instantiated.add(f"lowbit_gather_{fmt}_{dtype}_mr{mr}")
            instantiated.add(f"lowbit_gather_gemm_{fmt}_{dtype}")
    planned = set()
    for (fmt, opts), dtype, (b, m, is_sorted) in product(
        FORMATS, DTYPES, [(1, 1, False), (8, 1, False), (24, 1, True), (80, 1, True), (4, 3, False)]
    ):
        plan = _ext.metal_gather_plan(
            fmt=fmt,
            group_size=32,
            vector_size=opts.get("vector_size", 0),
            index_bits=opts.get("index_bits", 0),
            has_biases=bool(opts.get("biases")),
            scales_f32=False,
            shared_codebook=False,
            dtype=dtype,
            B=b,
            M=m,
            N=8,
            K=64,
            experts=4,
            x_batches=b,
            sorted=is_sorted,
        )
        planned.add(plan["launches"][0]["kernel"])
    assert planned == instantiated
    names = _runner().kernel_names(source_root() / GATHER_SOURCE, include_dirs=[source_root()])
    assert set(names) == instantiated
