# Copyright © 2026 mlx-lowbit contributors.
"""The Metal path end to end on a real Apple GPU: lb.matmul / lb.dequantize
on a GPU stream against the spec decoder. These run only where MLX has a
working Metal device (the macOS workflow on Apple silicon); on Linux the same
kernels and plans are checked through the emulator (test_metal_kernels.py).
With MLX_LOWBIT_REQUIRE_GPU=1 (the workflow's GPU job, verify-metal) a
machine that cannot run them fails instead of skipping."""

import dataclasses
import os

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id, product
from helpers import SCHEDULES, make_weight, make_x, ref_product

import mlx_lowbit as lb
from mlx_lowbit.verify_metal import probe_gpu

# The probe checks a product's result and the device name: is_available()
# is true in every Metal build, paravirtual GPUs included.
_NO_GPU = probe_gpu()
if _NO_GPU is not None and os.environ.get("MLX_LOWBIT_REQUIRE_GPU") == "1":
    # The GPU job of the macOS workflow: a skip there would pass silently.
    pytest.fail(f"MLX_LOWBIT_REQUIRE_GPU=1, but {_NO_GPU}", pytrace=False)
pytestmark = pytest.mark.skipif(
    _NO_GPU is not None, reason=f"needs an Apple-silicon GPU ({_NO_GPU})"
)

CASES = product(FORMATS, DTYPES, SCHEDULES, [(1, 40, 256), (70, 100, 512)])


@pytest.mark.parametrize(
    "f,dtype,schedule,shape",
    CASES,
    ids=[f"{format_id(f)}-{d}-{s}-{m}x{n}x{k}" for f, d, s, (m, n, k) in CASES],
)
def test_matmul_on_gpu(f, dtype, schedule, shape):
    m, n, k = shape
    qw = make_weight(f, n, k, 64)
    x = make_x((m, k), dtype)
    out = lb.matmul(x, qw, schedule=schedule, stream=mx.gpu)
    assert out.dtype == dtype
    assert_close(out, ref_product(x, qw), dtype, schedule)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
def test_transposed_and_gradient_on_gpu(f):
    qw = make_weight(f, 24, 128, 32)
    w = reference.dequantize(qw)
    x = make_x((5, 24), mx.float32)
    out = lb.matmul(x, qw, transpose=False, stream=mx.gpu)
    assert_close(out, np.asarray(x, dtype=np.float64) @ w, mx.float32)
    x = make_x((3, 128), mx.float32)
    g = mx.random.normal((3, 24), key=mx.random.key(5))
    grad = mx.grad(lambda a: (lb.matmul(a, qw, stream=mx.gpu) * g).sum())(x)
    assert_close(grad, np.asarray(g, dtype=np.float64) @ w, mx.float32)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_on_gpu(f, dtype):
    qw = make_weight(f, 9, 96, 32)
    assert_close(lb.dequantize(qw, dtype, stream=mx.gpu), reference.dequantize(qw), dtype)


def test_deterministic_schedules_repeat_bitwise_on_gpu():
    qw = make_weight(FORMATS[0], 300, 4096, 128)
    x = make_x((40, 4096), mx.float32)
    for schedule in ["splitk", "streamk", "hybrid"]:
        runs = [np.asarray(lb.matmul(x, qw, schedule=schedule, stream=mx.gpu)) for _ in range(3)]
        for r in runs[1:]:
            np.testing.assert_array_equal(runs[0], r)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32], ids=str)
def test_gpu_int8_activations_match_the_cpu(dtype):
    """activation_bits=8 on the GPU: the int8-grid pre-pass, then the float kernel."""
    qw = make_weight(FORMATS[0], 70, 256, 64)
    x = make_x((5, 256), dtype)
    out = lb.matmul(x, qw, activation_bits=8, stream=mx.gpu)
    assert out.dtype == dtype
    ref = lb.matmul(x, qw, activation_bits=8, stream=mx.cpu).astype(mx.float32)
    assert_close(out, np.asarray(ref), dtype)
    with pytest.raises(ValueError, match="transpose=False runs on the CPU only"):
        lb.matmul(mx.ones((2, 70)), qw, transpose=False, activation_bits=8, stream=mx.gpu)


def test_tile_override_on_gpu():
    qw = make_weight(FORMATS[4], 130, 256, 64)
    x = make_x((150, 256), mx.float16)
    out = lb.matmul(x, qw, schedule="streamk", tile=(64, 64, 32), stream=mx.gpu)
    assert_close(out, ref_product(x, qw), mx.float16)


def test_gpu_core_count_comes_from_the_device(monkeypatch):
    monkeypatch.delenv("MLX_LOWBIT_GPU_CORES", raising=False)
    info = lb._ext.gpu_core_info()
    assert info["source"] == "IORegistry gpu-core-count" and info["cores"] >= 7


@pytest.mark.parametrize("f", [FORMATS[0], FORMATS[1]], ids=format_id)
def test_misaligned_views_on_gpu(f):
    """Packed words and x that start at an odd element of their buffer (MLX
    binds views at their offset): eval_gpu copies them for the vector loads."""
    qw = make_weight(f, 40, 256, 64)
    words = qw.packed.reshape(-1)
    view = mx.concatenate([mx.zeros((1,), dtype=words.dtype), words])[1:].reshape(qw.packed.shape)
    qw_view = dataclasses.replace(qw, packed=view)
    xs = mx.concatenate(
        [mx.zeros((1,), dtype=mx.float16), make_x((1, 256), mx.float16).reshape(-1)]
    )
    x_view = xs[1:].reshape(1, 256)
    out = lb.matmul(x_view, qw_view, stream=mx.gpu)
    assert_close(out, ref_product(x_view, qw), mx.float16)
