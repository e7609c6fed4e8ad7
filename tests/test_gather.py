# Copyright © 2026 mlx-lowbit contributors.
"""gather_matmul (stacked low-bit experts routed by index arrays) on the CPU
stream, and its GPU route (dequantize + mx.gather_mm) run on the CPU, against
a float64 product from the independent spec decoder."""

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import make_x

from mlx_lowbit import _ext
from mlx_lowbit.experts import (
    QuantizedExperts,
    dequantize_experts,
    gather_matmul,
    quantize_experts,
)


def make_experts(f, e, n, k, gs, seed=0):
    fmt, opts = f
    w = mx.random.normal((e, n, k), key=mx.random.key(seed))
    return quantize_experts(w, fmt, gs, **opts)


def ref_gather(x, qe, lhs=None, rhs=None, transpose=True):
    """float64 out[b] = x[lhs[b]] @ W[rhs[b]].T, broadcasting written out."""
    w = np.stack([reference.dequantize(qe.expert(e)) for e in range(qe.num_experts)])
    if not transpose:
        w = w.transpose(0, 2, 1)
    xs = np.asarray(x.astype(mx.float32), dtype=np.float64)
    batch = xs.shape[:-2]
    xs = xs.reshape(-1, *xs.shape[-2:])
    lhs = np.arange(xs.shape[0]).reshape(batch) if lhs is None else np.asarray(lhs)
    rhs = np.arange(w.shape[0]) if rhs is None else np.asarray(rhs)
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    out = np.stack([xs[i] @ w[j].T for i, j in zip(lhs.ravel(), rhs.ravel())])
    return out.reshape(*lhs.shape, *out.shape[1:])


ROUTES = {"primitive": gather_matmul}


def _dequantized_route(x, qe, lhs=None, rhs=None, transpose=True, sorted_indices=False):
    return _ext._gather_matmul_dequantized(
        x,
        qe.packed,
        qe.scales,
        qe.biases,
        qe.codebook,
        lhs,
        rhs,
        **qe._format_fields(),
        transpose=transpose,
        sorted_indices=sorted_indices,
    )


ROUTES["dequantized"] = _dequantized_route

rng = np.random.default_rng(0)
# (x shape, lhs, rhs, sorted): the calls mlx-lm's SwitchGLU makes and the
# general gather. E = 4 experts.
CALLS = {
    # decode, top-2 of 4: x (tokens, 1, 1, K), one expert list per token.
    "decode": ((3, 1, 1, None), None, np.array([[2, 0], [1, 3], [3, 2]]), False),
    # prefill after mlx-lm's sort: rows of x in expert order, lhs = 0, 1, ...
    "sorted": ((9, 1, None), None, np.array([0, 0, 1, 1, 1, 2, 3, 3, 3]), True),
    # general: lhs with repeats and gaps, unsorted rhs, M = 3 rows per entry.
    "gather": ((2, 3, 3, None), np.array([5, 0, 5, 2, 2]), np.array([1, 3, 1, 0, 1]), False),
    # both default: batch entry e times expert e.
    "default": ((4, 2, None), None, None, False),
}

CASES = product(FORMATS, DTYPES, list(CALLS), list(ROUTES))


@pytest.mark.parametrize(
    "f,dtype,call,route",
    CASES,
    ids=[f"{format_id(c[0])}-{c[1]}-{c[2]}-{c[3]}" for c in CASES],
)
def test_gather_matches_reference(f, dtype, call, route):
    # N = 40: not a multiple of any tile; K = 128 in groups of 32.
    qe = make_experts(f, 4, 40, 128, 32)
    shape, lhs, rhs, is_sorted = CALLS[call]
    x = make_x(tuple(128 if d is None else d for d in shape), dtype)
    out = ROUTES[route](
        x,
        qe,
        None if lhs is None else mx.array(lhs),
        None if rhs is None else mx.array(rhs),
        sorted_indices=is_sorted,
    )
    ref = ref_gather(x, qe, lhs, rhs)
    assert out.dtype == dtype
    assert_close(out, ref, dtype, f"{call}/{route}")


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("route", list(ROUTES))
def test_transpose_false(f, route):
    # x @ W: x (..., M, N), output (..., M, K); ragged N = 7, K = 64.
    qe = make_experts(f, 3, 7, 64, 32, seed=2)
    x = make_x((2, 2, 7), mx.float32)
    rhs = np.array([[2], [0], [2]])[:, :, None]  # (3, 1, 1) against x's batch (2,)
    out = ROUTES[route](x, qe, None, mx.array(rhs), transpose=False)
    assert_close(out, ref_gather(x, qe, None, rhs, transpose=False), mx.float32)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_non_contiguous_inputs(f):
    qe = make_experts(f, 4, 17, 64, 32, seed=3)
    x = make_x((64, 5, 3), mx.float16).transpose(2, 1, 0)  # (3, 5, 64), strided
    rhs = mx.array([[3, 1, 0, 1], [2, 2, 0, 3]]).T[:3]  # (3, 2) view
    lhs = mx.array([2, 1, 0])[:, None]
    out = gather_matmul(x, qe, lhs, rhs)
    assert_close(out, ref_gather(x, qe, np.array(lhs), np.array(rhs)), mx.float16)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_sorted_flag_does_not_change_the_result(f):
    # The flag only skips the CPU's grouping: a wrong promise still gives the
    # product (grouping then follows runs of equal indices).
    qe = make_experts(f, 4, 9, 64, 64, seed=4)
    x = make_x((6, 2, 64), mx.float32)
    rhs = mx.array([3, 3, 0, 1, 1, 0])
    ref = ref_gather(x, qe, None, np.array(rhs))
    for flag in (False, True):
        assert_close(gather_matmul(x, qe, rhs_indices=rhs, sorted_indices=flag), ref, mx.float32)


def test_shared_codebook():
    # One codebook for all experts (the C++ op accepts a 1-D codebook too).
    from mlx_lowbit import quantize

    e, n, k = 3, 8, 64
    w = mx.random.normal((e * n, k), key=mx.random.key(5))
    qw = quantize(w, "codebook", 32, vector_size=8, index_bits=5)
    x = make_x((2, 1, 1, k), mx.float32)
    rhs = mx.array([[2, 0], [1, 2]])
    out = _ext.gather_matmul(
        x,
        qw.packed.reshape(e, n, -1),
        qw.scales.reshape(e, n, -1),
        None,
        qw.codebook,
        None,
        rhs,
        fmt="codebook",
        group_size=32,
        vector_size=8,
        index_bits=5,
    )
    wd = reference.dequantize(qw).reshape(e, n, k)
    xs = np.asarray(x, dtype=np.float64)
    ref = np.stack([[xs[t, 0] @ wd[j].T for j in np.asarray(rhs)[t]] for t in range(2)])
    assert_close(out, ref, mx.float32)


@pytest.mark.parametrize("f", FORMATS[:3], ids=format_id)
@pytest.mark.parametrize("route", list(ROUTES))
def test_vjp_and_jvp_wrt_x(f, route):
    qe = make_experts(f, 4, 24, 64, 32, seed=6)
    x = make_x((3, 2, 64), mx.float32)
    lhs, rhs = np.array([2, 0, 2, 1]), np.array([1, 1, 3, 0])
    cot = make_x((4, 2, 24), mx.float32, seed=7)

    def fn(x):
        return ROUTES[route](x, qe, mx.array(lhs), mx.array(rhs))

    _, (dx,) = mx.vjp(fn, [x], [cot])
    # d/dx of sum(cot * out): each row's cotangent through its expert, summed
    # into the x entry it read.
    w = np.stack([reference.dequantize(qe.expert(e)) for e in range(4)])
    ref = np.zeros((3, 2, 64))
    for b, (i, j) in enumerate(zip(lhs, rhs)):
        ref[i] += np.asarray(cot[b], dtype=np.float64) @ w[j]
    assert_close(dx, ref, mx.float32)
    if route == "dequantized":
        return  # MLX's GatherMM has no jvp
    tangent = make_x((3, 2, 64), mx.float32, seed=8)
    _, (dout,) = mx.jvp(fn, [x], [tangent])
    assert_close(dout, ref_gather(tangent, qe, lhs, rhs), mx.float32)


def test_no_rows():
    qe = make_experts(FORMATS[0], 2, 8, 64, 64)
    for route in ROUTES.values():
        out = route(make_x((1, 1, 64), mx.float32), qe, None, mx.zeros((0,), mx.uint32))
        assert out.shape == (0, 1, 8)
        mx.eval(out)


def test_dequantize_experts_and_stack():
    qe = make_experts(FORMATS[3], 3, 8, 64, 32)
    wd = np.asarray(dequantize_experts(qe))
    for e in range(3):
        np.testing.assert_array_equal(wd[e], reference.dequantize(qe.expert(e)).astype(np.float32))
    assert qe.shape == (3, 8, 64)
    assert qe.codebook.shape == (3, 1 << 12)  # a codebook per expert
    assert qe.nbytes == sum(qe.expert(e).nbytes for e in range(3))


def test_bad_inputs_raise():
    qe = make_experts(FORMATS[2], 3, 8, 64, 32)
    x = make_x((2, 1, 64), mx.float32)
    args = (qe.packed, qe.scales, qe.biases, None)
    fields = qe._format_fields()
    with pytest.raises(ValueError, match="3-D"):
        _ext.gather_matmul(x, qe.packed[0], qe.scales[0], qe.biases[0], **fields)
    with pytest.raises(ValueError, match="same number"):
        _ext.gather_matmul(x, qe.packed, qe.scales[:2], qe.biases[:2], **fields)
    with pytest.raises(ValueError, match="integer"):
        _ext.gather_matmul(x, *args, None, mx.array([0.0, 1.0]), **fields)
    with pytest.raises(ValueError, match="last dimension of x"):
        _ext.gather_matmul(make_x((2, 1, 32), mx.float32), *args, **fields)
    with pytest.raises(ValueError, match=r"\(\.\.\., M, K\)"):
        _ext.gather_matmul(make_x((64,), mx.float32), *args, **fields)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        _ext.gather_matmul(mx.zeros((2, 1, 64), mx.int32), *args, **fields)
    with pytest.raises(ValueError, match="broadcast"):
        _ext.gather_matmul(x, *args, mx.array([0, 1, 0]), mx.array([0, 1]), **fields)
    with pytest.raises(ValueError, match="codebook must have shape"):
        QuantizedExperts(
            **{
                **make_experts(FORMATS[4], 2, 8, 64, 32).arrays(),
                "codebook": mx.zeros((3, 32), mx.uint8),
            },
            fmt="codebook",
            group_size=32,
            vector_size=8,
            index_bits=5,
        )
    # Index values are only known at evaluation: out of range is an error there.
    with pytest.raises(RuntimeError, match="rhs_indices index 3 is out of range"):
        mx.eval(gather_matmul(x, qe, rhs_indices=mx.array([0, 3])))
    with pytest.raises(RuntimeError, match="lhs_indices index 2 is out of range"):
        mx.eval(gather_matmul(x, qe, mx.array([2]), mx.array([0])))
