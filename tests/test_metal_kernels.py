# Copyright © 2026 mlx-lowbit contributors.
"""The Metal kernels, run by the emulator (tools/msl) with exactly the plan
eval_gpu encodes (mlx_lowbit.testing.metal_matmul), against x @ W.T in
float64 from the independent spec decoder (tests/reference.py). Outputs and
workspaces start as NaN, so an element no launch writes fails the check."""

import dataclasses

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import make_weight, make_x, ref_product
from runner import MSLRuntimeError

import mlx_lowbit as lb
from mlx_lowbit import _ext
from mlx_lowbit.testing import metal_dequantize, metal_matmul, metal_plan

# schedule, M, N, K, options. With group 32, 32 x 32 tiles: ragged M and N
# everywhere, 3-5 K-iterations per tile, an odd number of 32-blocks (binary
# GEMV lanes read two), tiles split across 2 (cores=2) and 3 (cores=3)
# threadgroups, more stream-K groups than tiles (streamk)
# and fewer (hybrid: 5 tiles, 2 groups, 2 data-parallel tiles).
CASES = [
    ("gemv", 3, 20, 160, {}),
    ("auto", 1, 20, 160, {}),  # GEMV for one row of x
    ("dataparallel", 20, 40, 96, {}),
    ("splitk", 20, 40, 160, {"split_k": 2}),
    ("streamk", 20, 40, 160, {"gpu_cores": 3}),
    ("streamk", 20, 40, 160, {"gpu_cores": 2}),
    ("hybrid", 20, 160, 160, {"gpu_cores": 1}),
]


def case_id(c):
    schedule, m, n, k, opts = c
    return f"{schedule}-{m}x{n}x{k}" + "".join(f"-{v}" for v in opts.values())


GRID = product(FORMATS, DTYPES, CASES)


@pytest.mark.parametrize(
    "f,dtype,case", GRID, ids=[f"{format_id(f)}-{d}-{case_id(c)}" for f, d, c in GRID]
)
def test_every_format_dtype_schedule(f, dtype, case):
    schedule, m, n, k, opts = case
    qw = make_weight(f, n, k, 32)
    x = make_x((m, k), dtype)
    out = metal_matmul(x, qw, schedule, **opts)
    assert out.dtype == dtype and out.shape == (m, n)
    assert_close(out, ref_product(x, qw), dtype)


def test_cases_exercise_what_they_claim():
    qw = make_weight(FORMATS[0], 40, 160, 32)
    x = make_x((20, 160), mx.float16)
    shares = {
        cores: {
            len(s)
            for s in metal_plan(x, qw, "streamk", gpu_cores=cores, with_work=True)["work"]["fixups"]
        }
        for cores in (2, 3)
    }
    assert shares == {2: {2}, 3: {3}}
    hybrid = metal_plan(
        make_x((20, 160), mx.float16), make_weight(FORMATS[0], 160, 160, 32), "hybrid", gpu_cores=1
    )
    prm = hybrid["params"]
    assert prm["tiles_m"] * prm["tiles_n"] == 5 and prm["sk_tiles"] == 3 and prm["sk_groups"] == 2
    assert metal_plan(make_x((1, 160), mx.float16), qw)["launches"][0]["kernel"].endswith("_mr1")
    for m, mr in [(2, 2), (3, 4)]:
        launch = metal_plan(make_x((m, 160), mx.float16), qw, "gemv")["launches"][0]
        assert launch["kernel"].endswith(f"_mr{mr}")


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("gs,scale_dtype", [(64, mx.float32), (None, mx.float16)])
def test_group_sizes_and_float32_scales(f, gs, scale_dtype):
    """Two groups per K-iteration's neighbour, one group per row, and
    float32 scales (and biases), through GEMV and GEMM."""
    k = 192
    qw = make_weight(f, 33, k, gs or k, scale_dtype=scale_dtype)
    for m, schedule in [(2, "gemv"), (17, "streamk")]:
        x = make_x((m, k), mx.float32)
        assert_close(metal_matmul(x, qw, schedule, gpu_cores=3), ref_product(x, qw), mx.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiny_shapes(dtype):
    qw = make_weight(FORMATS[1], 1, 32, 32)
    for schedule in ["auto", "gemv", "dataparallel", "splitk", "streamk", "hybrid"]:
        x = make_x((1, 32), dtype)
        assert_close(metal_matmul(x, qw, schedule), ref_product(x, qw), dtype, schedule)


@pytest.mark.parametrize("f", [FORMATS[0], FORMATS[4]], ids=format_id)
def test_batch_dims_and_non_contiguous_x(f):
    qw = make_weight(f, 12, 128, 32)
    views = (
        make_x((2, 3, 128), mx.bfloat16),  # batch dims: 6 rows -> GEMV
        make_x((128, 10), mx.float16).T,  # a transpose -> GEMM
        make_x((6, 256), mx.float32)[:, ::2],  # a strided slice
        mx.broadcast_to(make_x((1, 128), mx.float16), (2, 9, 128)),  # stride 0
    )
    for x in views:
        out = metal_matmul(x, qw, gpu_cores=2)
        assert out.shape == tuple(x.shape[:-1]) + (12,)
        assert_close(out, ref_product(x, qw), x.dtype)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_gemv_mr_variants(f):
    """MR = 1, 2 and 4, and M = 5 (two threadgroups along y, of 4 rows and
    1); N = 70, past one threadgroup's 32 or 64 rows; K = 1088, two x
    staging steps, the second with 2 of 32 lanes at work."""
    qw = make_weight(f, 70, 1088, 64)
    for m, mr in [(1, 1), (2, 2), (4, 4), (5, 4)]:
        x = make_x((m, 1088), mx.float16, seed=m)
        assert metal_plan(x, qw, "gemv")["launches"][0]["kernel"].endswith(f"_mr{mr}")
        assert_close(metal_matmul(x, qw, "gemv"), ref_product(x, qw), mx.float16, f"M={m}")


def test_gemv_more_rows_than_one_threadgroup_takes():
    qw = make_weight(FORMATS[2], 9, 96, 32)
    x = make_x((11, 96), mx.float16)
    assert_close(metal_matmul(x, qw, "gemv"), ref_product(x, qw), mx.float16)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_large_tile(f):
    """64 x 64 tiles (the tile override), ragged in M and N, stream-K split."""
    qw = make_weight(f, 70, 128, 64)
    x = make_x((66, 128), mx.float16)
    for schedule in ["dataparallel", "streamk"]:
        out = metal_matmul(x, qw, schedule, gpu_cores=2, bm=64)
        assert_close(out, ref_product(x, qw), mx.float16, schedule)


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float32])
def test_large_tile_dtypes(dtype):
    qw = make_weight(FORMATS[3], 65, 96, 32)
    x = make_x((65, 96), dtype)
    assert_close(metal_matmul(x, qw, "splitk", split_k=2, bm=64), ref_product(x, qw), dtype)


@pytest.mark.parametrize(
    "schedule,opts",
    [("streamk", {"gpu_cores": 3}), ("splitk", {"split_k": 3}), ("hybrid", {"gpu_cores": 1})],
)
def test_deterministic_schedules_are_bitwise_reproducible(schedule, opts):
    """Threadgroups in different orders (as on a GPU from run to run) give the
    same bits; stream-K also agrees with data-parallel to fp32 rounding."""
    qw = make_weight(FORMATS[3], 160, 160, 32)
    x = make_x((40, 160), mx.float32)
    runs = [
        np.asarray(metal_matmul(x, qw, schedule, order=order, seed=seed, **opts))
        for order, seed in [("fixed", 0), ("shuffled", 1), ("shuffled", 2)]
    ]
    for r in runs[1:]:
        np.testing.assert_array_equal(runs[0], r)
    dp = metal_matmul(x, qw, "dataparallel")
    assert_close(mx.array(runs[0]), np.asarray(dp, dtype=np.float64), mx.float32)


def test_empty_batch():
    qw = make_weight(FORMATS[0], 8, 64, 32)
    out = metal_matmul(mx.zeros((0, 64), dtype=mx.float16), qw)
    assert out.shape == (0, 8) and out.dtype == mx.float16


def test_bad_input_is_a_value_error():
    qw = make_weight(FORMATS[0], 8, 64, 32)
    with pytest.raises(ValueError, match="last dimension of x"):
        metal_matmul(make_x((2, 32), mx.float16), qw)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        metal_matmul(mx.zeros((2, 64), dtype=mx.int32), qw)
    with pytest.raises(ValueError, match="No GPU tile"):
        metal_matmul(make_x((2, 64), mx.float16), qw, bm=16)
    with pytest.raises(ValueError, match="Unknown tile overrides"):
        metal_matmul(make_x((2, 64), mx.float16), qw, tm=16)


@pytest.mark.parametrize("fmt", ["ternary", "binary"])
def test_bfloat16_prefill_keeps_scales_exact(fmt):
    """Regression: the GEMM's weight tile was bfloat for bfloat16 x, which
    rounded each fp16 scale to 8 significant bits (1 + 2**-8 + 2**-9 became
    1 + 2**-7), the same way for a whole group, while the GEMV keeps scales in
    fp32. Two groups of opposite sign make the difference the whole result:
    32 * (s0 - 1) = 0.1875 exactly (a bfloat16 value), 0.25 with s0 rounded."""
    row = np.array([1.0] * 32 + [-1.0] * 32, dtype=np.float32)
    qw = lb.quantize(mx.array(np.tile(row, (8, 1))), fmt, 32)
    scales = np.tile(np.array([1 + 2**-8 + 2**-9, 1.0], dtype=np.float16), (8, 1))
    qw = dataclasses.replace(qw, scales=mx.array(scales))
    for m, schedule in [(1, "gemv"), (9, "gemv"), (9, "dataparallel"), (9, "splitk")]:
        out = metal_matmul(
            mx.ones((m, 64), dtype=mx.bfloat16), qw, schedule, split_k=2 * (schedule == "splitk")
        )
        np.testing.assert_array_equal(np.asarray(out.astype(mx.float32)), 0.1875, err_msg=schedule)


@pytest.mark.parametrize("f", [FORMATS[0], FORMATS[2], FORMATS[3]], ids=format_id)
def test_bfloat16_gemm_and_gemv_agree(f):
    """Prefill (GEMM) and decode (GEMV) of the same rows in bfloat16: both
    are fp32 sums of the same exact products rounded once, so they differ at
    most where fp32 summation order moves a value across a bfloat16 rounding
    boundary: by one bfloat16 ulp, and rarely."""
    qw = make_weight(f, 40, 256, 64)
    x = make_x((9, 256), mx.bfloat16)
    gemv = np.asarray(metal_matmul(x, qw, "gemv").astype(mx.float32))
    for schedule in ["dataparallel", "streamk"]:
        gemm = np.asarray(metal_matmul(x, qw, schedule, gpu_cores=2).astype(mx.float32))
        ulp = np.spacing(np.abs(gemv).astype(np.float32)) * 2.0**16  # bfloat16 ulp
        assert np.all(np.abs(gemm - gemv) <= ulp), schedule
        assert np.mean(gemm != gemv) < 0.05, schedule


@pytest.mark.parametrize("f", [FORMATS[0], FORMATS[1]], ids=format_id)
def test_misaligned_views_are_copied(f):
    """MLX binds a view at its offset: packed words starting at an odd word
    (or x at an odd element) misalign the kernels' uint2 / vector loads,
    which Metal faults on. eval_gpu copies such an array
    (binding_is_aligned); without the copy the emulator reports it."""
    qw = make_weight(f, 12, 128, 32)
    x = make_x((1, 128), mx.float16)
    ref = ref_product(x, qw)
    assert _ext.binding_is_aligned(0) and _ext.binding_is_aligned(32)
    assert not _ext.binding_is_aligned(4) and not _ext.binding_is_aligned(8)
    for offsets in [{"packed_offset": 4}, {"x_offset": 2}, {"packed_offset": 32, "x_offset": 16}]:
        assert_close(metal_matmul(x, qw, "gemv", **offsets), ref, mx.float16, str(offsets))
    # Ternary reads its words as uint2; binary word by word (no fault).
    faulting = [{"x_offset": 2}] + ([{"packed_offset": 4}] if f[0] == "ternary" else [])
    for offsets in faulting:
        with pytest.raises(MSLRuntimeError, match="misaligned access"):
            metal_matmul(x, qw, "gemv", copy_misaligned=False, **offsets)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_kernel(f, dtype):
    qw = make_weight(f, 9, 96, 32)
    out = metal_dequantize(qw, dtype)
    assert out.shape == (9, 96) and out.dtype == dtype
    ref = reference.dequantize(qw)
    got = np.asarray(out.astype(mx.float32), dtype=np.float64)
    # Each value is rounded once to dtype (binary with bias: bias +- scale in
    # fp32 first).
    tol = {mx.float32: 1e-7, mx.float16: 1e-3, mx.bfloat16: 8e-3}[dtype]
    assert np.all(np.abs(got - ref) <= tol * np.abs(ref) + 1e-7)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_dequantize_kernel_long_rows(f):
    # K = 2112: two threadgroups per row (kDequantizeK = 2048 weights each),
    # the second a partial one that starts inside a group of 96.
    qw = make_weight(f, 3, 2112, 96)
    out = metal_dequantize(qw, mx.float16)
    ref = reference.dequantize(qw)
    got = np.asarray(out.astype(mx.float32), dtype=np.float64)
    assert np.all(np.abs(got - ref) <= 1e-3 * np.abs(ref) + 1e-7)


# Codebook (v, c): the GEMV keeps tables of up to 8 (v = 8) or 12 bits
# (v = 16) in threadgroup memory and reads larger ones (v16 c13, c16) from
# device memory; c = 4 and 8 divide 32, the others make indices straddle
# words; c = v makes a step of 1024 weights a full 32-word window.
CODEBOOK_VC = [(16, 4), (16, 7), (16, 12), (16, 13), (16, 16), (8, 4), (8, 5), (8, 7), (8, 8)]


def random_codebook_weight(n, k, gs, v, c, seed=0):
    """Uniformly random indices and codebook, so every table entry is used."""
    rng = np.random.default_rng(seed)
    _, scales, _, codebook, indices = reference.random_exact_weight(
        rng, "codebook", n, k, gs, vector_size=v, index_bits=c
    )
    return lb.QuantizedWeight(
        fmt="codebook",
        group_size=gs,
        packed=_ext.pack_codebook(mx.array(indices), v, c),
        scales=mx.array(scales),
        codebook=mx.array(codebook),
        vector_size=v,
        index_bits=c,
    )


@pytest.mark.parametrize("v,c", CODEBOOK_VC, ids=[f"v{v}c{c}" for v, c in CODEBOOK_VC])
def test_codebook_index_widths(v, c):
    # K = 2080: three GEMV steps, the last with one block (lanes past K);
    # N = 21: rows start at every phase of the GEMV's 32-word windows.
    qw = random_codebook_weight(21, 2080, 32, v, c)
    for schedule, m in [("gemv", 1), ("gemv", 3), ("dataparallel", 9)]:
        x = make_x((m, 2080), mx.float16)
        assert_close(metal_matmul(x, qw, schedule), ref_product(x, qw), mx.float16, schedule)
    got = np.asarray(metal_dequantize(qw, mx.float16).astype(mx.float32), dtype=np.float64)
    ref = reference.dequantize(qw)
    assert np.all(np.abs(got - ref) <= 1e-3 * np.abs(ref) + 1e-7)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize(
    "schedule,opts", [("dataparallel", {}), ("splitk", {"split_k": 2}), ("streamk", {})]
)
def test_swizzled_tile_order(f, schedule, opts):
    # 3 x 10 tiles on 40 cores: panels of 2 tile rows for every format (the
    # planner's choice, test_planner.py), the last one a single row.
    qw = make_weight(f, 320, 64, 32)
    x = make_x((96, 64), mx.float16)
    assert metal_plan(x, qw, schedule, gpu_cores=40, **opts)["params"]["swizzle_log"] == 1
    out = metal_matmul(x, qw, schedule, gpu_cores=40, **opts)
    assert_close(out, ref_product(x, qw), mx.float16, schedule)
