# Copyright © 2026 mlx-lowbit contributors.
"""GPTQ-style quantization: on held-out inputs from the calibration
distribution it lowers the layer output error against round-to-nearest, and
its weights run through every kernel like any other."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_lowbit as lb
from mlx_lowbit.quant import gptq_quantize, input_hessian

N, K, GS = 48, 256, 64
CASES = [("ternary", False), ("binary", False), ("binary", True), ("codebook", False)]
CODEBOOK = {"vector_size": 8, "index_bits": 6}


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    # Correlated inputs with uneven feature scales, as LLM activations have.
    mix = rng.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
    scale = np.exp(rng.standard_normal(K))

    def inputs(m):
        return ((rng.standard_normal((m, K)) * scale) @ mix).astype(np.float32)

    w = rng.standard_normal((N, K)).astype(np.float32)
    return w, inputs(2048), inputs(1024)


def output_error(qw, w, x):
    wd = np.asarray(lb.dequantize(qw).astype(mx.float32))
    return np.linalg.norm(x @ wd.T - x @ w.T) / np.linalg.norm(x @ w.T)


def options(fmt, biases):
    if fmt == "codebook":
        return dict(CODEBOOK)
    return {"biases": True} if biases else {}


def rtn(w, fmt, biases):
    return lb.quantize(mx.array(w), fmt, GS, **options(fmt, biases))


@pytest.mark.parametrize("fmt,biases", CASES)
def test_lowers_held_out_output_error(layer, fmt, biases):
    w, calib, held_out = layer
    h = input_hessian(mx.array(calib))
    qw = gptq_quantize(mx.array(w), h, fmt, GS, **options(fmt, biases))
    no_refit = gptq_quantize(mx.array(w), h, fmt, GS, refit=False, **options(fmt, biases))
    base = output_error(rtn(w, fmt, biases), w, held_out)
    assert output_error(qw, w, held_out) < 0.8 * base
    # The refit only changes scales, and lowers the error it minimises.
    assert output_error(qw, w, calib) <= output_error(no_refit, w, calib) + 1e-6
    assert qw.bits_per_weight == rtn(w, fmt, biases).bits_per_weight


@pytest.mark.parametrize("fmt,biases", CASES)
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32])
def test_matmul_matches_dequantized(layer, fmt, biases, dtype):
    w, calib, held_out = layer
    qw = gptq_quantize(mx.array(w), input_hessian(mx.array(calib)), fmt, GS, **options(fmt, biases))
    x = mx.array(held_out[:5]).astype(dtype)
    got = lb.matmul(x, qw).astype(mx.float32)
    want = x.astype(mx.float32) @ lb.dequantize(qw).astype(mx.float32).T
    tol = 1e-4 if dtype == mx.float32 else 3e-2
    assert mx.allclose(got, want, rtol=tol, atol=tol * float(mx.abs(want).max())).item()


def test_codes_are_on_the_format_grid(layer):
    w, calib, _ = layer
    qw = gptq_quantize(mx.array(w), input_hessian(mx.array(calib)), "ternary", GS)
    wd = np.asarray(lb.dequantize(qw).astype(mx.float32)).reshape(N, K // GS, GS)
    s = np.asarray(qw.scales.astype(mx.float32))[..., None]
    t = np.divide(wd, s, out=np.zeros_like(wd), where=s != 0)
    assert np.allclose(t, np.rint(t), atol=1e-3) and np.abs(np.rint(t)).max() <= 1


def test_dead_features_get_zero_weight():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((512, 64)).astype(np.float32)
    x[:, 5] = 0.0  # never active in calibration
    w = rng.standard_normal((8, 64)).astype(np.float32)
    qw = gptq_quantize(mx.array(w), input_hessian(mx.array(x)), "ternary", 32)
    assert np.all(np.asarray(lb.dequantize(qw))[:, 5] == 0)


def test_bad_input_errors(layer):
    w, calib, _ = layer
    h = input_hessian(mx.array(calib))
    with pytest.raises(ValueError, match="'ternary2' is not supported"):
        gptq_quantize(mx.array(w), h, "ternary2", GS)
    with pytest.raises(ValueError, match="passes must be >= 1"):
        gptq_quantize(mx.array(w), h, "codebook", GS, passes=0)
    with pytest.raises(ValueError, match="index_bits"):
        gptq_quantize(mx.array(w), h, "codebook", GS, vector_size=8, index_bits=9)
    with pytest.raises(ValueError, match="Hessian has shape"):
        gptq_quantize(mx.array(w[:, :128]), h, "ternary", GS)
    with pytest.raises(ValueError, match="group_size"):
        gptq_quantize(mx.array(w), h, "ternary", 48)
    with pytest.raises(ValueError, match="binary format only"):
        gptq_quantize(mx.array(w), h, "ternary", GS, biases=True)
    with pytest.raises(ValueError, match="NaN or Inf"):
        input_hessian(mx.array(np.full((4, K), np.nan, dtype=np.float32)))
    with pytest.raises(ValueError, match="layer takes"):
        input_hessian(mx.array(calib), k=K + 1)
    with pytest.raises(ValueError, match="empty"):
        input_hessian(mx.zeros((0, K)))


def test_codebook_gptq_keeps_the_format_and_more_passes_do_not_hurt(layer):
    w, calib, _ = layer
    h = input_hessian(mx.array(calib))
    one = gptq_quantize(mx.array(w), h, "codebook", GS, passes=1, **CODEBOOK)
    three = gptq_quantize(mx.array(w), h, "codebook", GS, passes=3, **CODEBOOK)
    assert output_error(three, w, calib) <= output_error(one, w, calib) + 1e-6
    assert three.codebook.dtype == mx.uint8 and three.codebook.shape == (64,)
    assert three.bits_per_weight == rtn(w, "codebook", False).bits_per_weight


def test_vote_sets_each_pattern_bit_to_its_runs_weighted_majority():
    from mlx_lowbit.quant.gptq import _vote

    patterns = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    # Two runs (v = 2) of one row, both given pattern 0; scale > 0, unit cost.
    targets = np.array([[-3.0, 1.0, 1.0, 2.0]])
    idx = np.array([[0, 0]])
    voted = _vote(patterns, idx, targets, np.ones((1, 1)), 4, np.ones(4))
    # Bit 0: -3 + 1 < 0 flips it; bit 1: 1 + 2 > 0 keeps it. Unused patterns stay.
    assert np.array_equal(voted, [[-1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    # A negative scale turns the vote around.
    voted = _vote(patterns, idx, targets, -np.ones((1, 1)), 4, np.ones(4))
    assert np.array_equal(voted[0], [1.0, -1.0])
