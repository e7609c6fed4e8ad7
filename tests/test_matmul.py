# Copyright © 2026 mlx-lowbit contributors.
"""lowbit matmul on the CPU stream against x @ dequantize(w).T computed in
float64 from the independent spec decoder."""

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import SCHEDULES, make_weight, make_x, ref_product

import mlx_lowbit as lb
from mlx_lowbit import _ext

# Axes: format x dtype x group (32: many groups; 64; K: one group per row)
# x M (1: GEMV, 3 and 17: ragged, 64: a full tile) x N (1, 7 odd, 40).
CASES = product(FORMATS, DTYPES, [32, 64, None], [1, 3, 17, 64], [1, 7, 40])


@pytest.mark.parametrize(
    "f,dtype,gs,m,n",
    CASES,
    ids=[f"{format_id(c[0])}-{c[1]}-g{c[2]}-M{c[3]}-N{c[4]}" for c in CASES],
)
def test_matmul_matches_reference(f, dtype, gs, m, n):
    k = 128
    qw = make_weight(f, n, k, gs or k)
    x = make_x((m, k), dtype)
    out = lb.matmul(x, qw)
    assert out.dtype == dtype and out.shape == (m, n)
    assert_close(out, ref_product(x, qw), dtype)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_gives_the_reference(f, schedule):
    qw = make_weight(f, 33, 256, 64)
    x = make_x((9, 256), mx.float32)
    assert_close(lb.matmul(x, qw, schedule=schedule), ref_product(x, qw), mx.float32)
    assert_close(
        lb.matmul(x, qw, schedule=schedule, split_k=3),
        ref_product(x, qw),
        mx.float32,
    )


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("shape", [(256,), (2, 3, 256), (2, 1, 4, 256)])
def test_leading_batch_dims(f, shape):
    qw = make_weight(f, 17, 256, 128)
    x = make_x(shape, mx.bfloat16)
    out = lb.matmul(x, qw)
    assert out.shape == shape[:-1] + (17,)
    ref = ref_product(x.reshape(-1, 256), qw).reshape(out.shape)
    assert_close(out, ref, mx.bfloat16)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_non_contiguous_x(f):
    qw = make_weight(f, 12, 128, 32)
    # A transpose, a strided slice and a stride-0 broadcast.
    views = (
        make_x((128, 10), mx.float16).T,
        make_x((6, 256), mx.float16)[:, ::2],
        mx.broadcast_to(make_x((1, 128), mx.float16), (5, 128)),
    )
    for x in views:
        assert_close(lb.matmul(x, qw), ref_product(x, qw), mx.float16)


def test_empty_batch():
    qw = make_weight(FORMATS[0], 8, 64, 32)
    out = lb.matmul(mx.zeros((0, 64)), qw)
    assert out.shape == (0, 8)
    mx.eval(out)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_large_k_accuracy_against_float64(f):
    """K = 16384: fp32 accumulation stays within a few ulps of the exact sum."""
    k = 16384
    qw = make_weight(f, 8, k, 128)
    x = make_x((2, k), mx.float32)
    out = np.asarray(lb.matmul(x, qw), dtype=np.float64)
    xs = np.asarray(x, dtype=np.float64)
    w = reference.dequantize(qw)
    exact = xs @ w.T
    # Error bound for a float32 sum of K products, relative to sum |x_k w_k|.
    magnitude = np.abs(xs) @ np.abs(w).T
    assert np.all(np.abs(out - exact) <= 1e-5 * magnitude + 1e-30)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_product(f, dtype):
    """transpose=False: x (..., N) @ W, the op the gradient uses."""
    qw = make_weight(f, 24, 128, 32)
    x = make_x((5, 24), dtype)
    out = lb.matmul(x, qw, transpose=False)
    assert out.shape == (5, 128)
    xs = np.asarray(x.astype(mx.float32), dtype=np.float64)
    assert_close(out, xs @ reference.dequantize(qw), dtype)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_gradient_wrt_x(f):
    qw = make_weight(f, 20, 128, 64)
    w = lb.dequantize(qw)
    x = make_x((3, 4, 128), mx.float32)
    g = mx.random.normal((3, 4, 20), key=mx.random.key(5))
    grad = mx.grad(lambda x: (lb.matmul(x, qw) * g).sum())(x)
    dense = mx.grad(lambda x: ((x @ w.T) * g).sum())(x)
    assert_close(grad, dense, mx.float32)
    # And through jvp.
    t = make_x((3, 4, 128), mx.float32, seed=7)
    _, (tangent,) = mx.jvp(lambda x: lb.matmul(x, qw), [x], [t])
    assert_close(tangent, np.asarray(t @ w.T), mx.float32)


def test_vmap_and_compile():
    qw = make_weight(FORMATS[3], 16, 128, 64)
    w = lb.dequantize(qw)
    x = make_x((4, 3, 128), mx.float32)
    mapped = mx.vmap(lambda a: lb.matmul(a, qw), in_axes=1)(x)
    assert_close(mapped, np.asarray(mx.swapaxes(x, 0, 1) @ w.T), mx.float32)
    compiled = mx.compile(lambda a: lb.matmul(a, qw) + 1.0)
    assert_close(compiled(x), np.asarray(x @ w.T + 1.0), mx.float32)


def test_results_are_deterministic():
    qw = make_weight(FORMATS[0], 64, 512, 128)
    x = make_x((32, 512), mx.float32)
    a, b = lb.matmul(x, qw), lb.matmul(x, qw)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_thread_count_does_not_change_results():
    qw = make_weight(FORMATS[1], 50, 256, 64)
    x = make_x((7, 256), mx.float32)
    before = lb.num_threads()
    try:
        lb.set_num_threads(1)
        one = np.asarray(lb.matmul(x, qw))
        lb.set_num_threads(3)
        three = np.asarray(lb.matmul(x, qw))
    finally:
        lb.set_num_threads(before)
    np.testing.assert_array_equal(one, three)
    with pytest.raises(ValueError, match=r"in \[1, "):
        lb.set_num_threads(0)


def int8_rows(x: np.ndarray) -> np.ndarray:
    """BitNet's per-token absmax rounding, from its definition."""
    amax = np.abs(x).max(-1, keepdims=True)
    q = np.clip(np.round(x * 127.0 / np.where(amax == 0, 1, amax)), -127, 127)
    return q * amax / 127.0


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_int8_activations(f, dtype):
    qw = make_weight(f, 19, 256, 64)
    x = make_x((6, 256), dtype)
    x = mx.concatenate([x, mx.zeros((1, 256), dtype=dtype)])  # an all-zero row
    out = lb.matmul(x, qw, activation_bits=8)
    xs = int8_rows(np.asarray(x.astype(mx.float32), dtype=np.float64))
    assert_close(out, xs @ reference.dequantize(qw).T, dtype)
    # It is a different product from the float one, not a no-op.
    assert not np.allclose(
        np.asarray(out.astype(mx.float32)),
        np.asarray(lb.matmul(x, qw).astype(mx.float32)),
        rtol=1e-6,
        atol=0,
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gpu_int8_pre_pass_is_the_cpu_kernels_rule(dtype):
    """On a GPU stream activation_bits=8 is round_to_int8_grid, then the float
    kernel: both halves, composed on the CPU, against the CPU's int8 kernel."""
    x = make_x((6, 256), dtype)
    x = mx.concatenate([x, mx.zeros((1, 256), dtype=dtype)])
    grid = _ext.round_to_int8_grid(x)
    assert grid.dtype == mx.float32
    want = int8_rows(np.asarray(x.astype(mx.float32), dtype=np.float64))
    np.testing.assert_allclose(np.asarray(grid), want, rtol=1e-6, atol=0)
    qw = make_weight(FORMATS[0], 19, 256, 64)
    composed = lb.matmul(grid, qw).astype(dtype)
    assert_close(
        composed, np.asarray(lb.matmul(x, qw, activation_bits=8).astype(mx.float32)), dtype
    )
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        _ext.round_to_int8_grid(mx.ones((2, 3), dtype=mx.int32))


def test_int8_activations_have_no_gradient():
    qw = make_weight(FORMATS[0], 8, 64, 32)
    with pytest.raises(ValueError, match="activation_bits=0"):
        mx.grad(lambda x: lb.matmul(x, qw, activation_bits=8).sum())(mx.ones((2, 64)))


def test_default_stream_falls_back_to_the_cpu_on_a_gpu_without_metal(monkeypatch):
    from mlx_lowbit import ops

    monkeypatch.setattr(ops.mx, "default_device", lambda: mx.Device(mx.gpu))
    monkeypatch.setattr(ops.mx.metal, "is_available", lambda: False)
    assert ops._stream(None) == mx.cpu  # MLX's CUDA build: our CPU kernels
    assert ops._stream(mx.gpu) == mx.gpu  # an explicit choice is kept
    monkeypatch.setattr(ops.mx.metal, "is_available", lambda: True)
    assert ops._stream(None) is None  # Metal: the default GPU stream
    monkeypatch.setattr(ops.mx, "default_device", lambda: mx.Device(mx.cpu))
    monkeypatch.setattr(ops.mx.metal, "is_available", lambda: False)
    assert ops._stream(None) is None
