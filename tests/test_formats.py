# Copyright © 2026 mlx-lowbit contributors.
"""Packers, dequantize and quantizers against the spec in docs/FORMATS.md."""

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import FORMATS, format_id

import mlx_lowbit as lb
from mlx_lowbit import _ext


def build_exact(rng, fmt, opts, n, k, gs):
    """A QuantizedWeight packed from random exactly-representable parts, and
    those parts' decoded signs."""
    values, scales, biases, codebook, indices = reference.random_exact_weight(
        rng, fmt, n, k, gs, **opts
    )
    kwargs = {}
    if fmt == "ternary":
        packed = _ext.pack_ternary(mx.array(values))
        expected = values.astype(np.float64)
    elif fmt == "binary":
        packed = _ext.pack_binary(mx.array(values))
        expected = 2.0 * values - 1.0
    else:
        v, c = opts["vector_size"], opts["index_bits"]
        packed = _ext.pack_codebook(mx.array(indices), v, c)
        kwargs = {"codebook": mx.array(codebook), "vector_size": v, "index_bits": c}
        pats = codebook.astype(np.uint64)[indices]
        bits = (pats[:, :, None] >> np.arange(v, dtype=np.uint64)) & 1
        expected = 2.0 * bits.reshape(n, k) - 1.0
    qw = lb.QuantizedWeight(
        fmt=fmt,
        group_size=gs,
        packed=packed,
        scales=mx.array(scales),
        biases=None if biases is None else mx.array(biases),
        **kwargs,
    )
    return qw, expected


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("n,k,gs", [(1, 32, 32), (5, 96, 32), (3, 256, 128), (2, 192, 192)])
def test_packers_follow_the_spec(rng, f, n, k, gs):
    fmt, opts = f
    qw, expected = build_exact(rng, fmt, opts, n, k, gs)
    np.testing.assert_array_equal(reference.signs(qw), expected)
    # The package's dequantize is the reference the kernels are held to;
    # it must agree with the spec decoder (exactly, apart from the fp32
    # rounding of scale * s + bias).
    deq = np.asarray(lb.dequantize(qw), dtype=np.float64)
    np.testing.assert_allclose(deq, reference.dequantize(qw), rtol=1e-7, atol=1e-7)
    assert qw.shape == (n, k)


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("scale_dtype", [mx.float16, mx.float32])
def test_exact_weights_round_trip(rng, f, scale_dtype):
    """quantize(dequantize(qw)) reproduces an exactly representable weight."""
    fmt, opts = f
    qw, _ = build_exact(rng, fmt, opts, 6, 256, 64)
    w = lb.dequantize(qw)
    again = lb.quantize(w, fmt, 64, scale_dtype=scale_dtype, **opts)
    w2 = lb.dequantize(again)
    if fmt == "binary" and opts.get("biases") and scale_dtype == mx.float32:
        # The bias and scale come back as means of fp32-rounded sums: equal
        # to fp32 rounding, not bit for bit (fp16 storage rounds them back).
        np.testing.assert_allclose(np.asarray(w2), np.asarray(w), rtol=2e-7, atol=2e-7)
    else:
        np.testing.assert_array_equal(np.asarray(w2), np.asarray(w))


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32])
def test_dequantize_dtype(rng, dtype):
    qw, _ = build_exact(rng, "ternary", {}, 4, 64, 32)
    out = lb.dequantize(qw, dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(out.astype(mx.float32)), reference.dequantize(qw), rtol=1e-2
    )


def test_bits_per_weight_counts_every_byte():
    w = mx.random.normal((64, 512), key=mx.random.key(1))
    t = lb.quantize(w, "ternary", 128)
    assert t.bits_per_weight == pytest.approx(2 + 16 / 128)
    b = lb.quantize(w, "binary", 128)
    assert b.bits_per_weight == pytest.approx(1 + 16 / 128)
    bb = lb.quantize(w, "binary", 128, biases=True)
    assert bb.bits_per_weight == pytest.approx(1 + 32 / 128)
    t32 = lb.quantize(w, "ternary", 128, scale_dtype=mx.float32)
    assert t32.bits_per_weight == pytest.approx(2 + 32 / 128)
    c = lb.quantize(w, "codebook", 128, vector_size=16, index_bits=12)
    # 512 / 16 = 32 indices of 12 bits = 384 bits = 12 words per row.
    index_bits = 64 * 12 * 32
    expected = (index_bits + 64 * 4 * 16 + (1 << 12) * 16) / (64 * 512)
    assert c.bits_per_weight == pytest.approx(expected)
    assert c.nbytes == (index_bits + 64 * 4 * 16 + (1 << 12) * 16) // 8
    # Rows pad to whole words: 96 / 8 = 12 indices of 5 bits = 60 bits -> 2 words.
    c5 = lb.quantize(mx.ones((3, 96)), "codebook", 32, vector_size=8, index_bits=5)
    assert c5.packed.shape == (3, 2)


def test_ternary_quantizer_is_absmean_with_least_squares_scale(rng):
    w = rng.normal(size=(4, 64)).astype(np.float32)
    qw = lb.quantize(mx.array(w), "ternary", 32, scale_dtype=mx.float32)
    t = reference.signs(qw)
    g = w.reshape(4, 2, 32).astype(np.float64)
    absmean = np.abs(g).mean(-1, keepdims=True)
    t_expected = np.clip(np.round(g / absmean), -1, 1)
    np.testing.assert_array_equal(t.reshape(4, 2, 32), t_expected)
    ls = (g * t_expected).sum(-1) / (t_expected**2).sum(-1)
    np.testing.assert_allclose(np.asarray(qw.scales), ls, rtol=1e-6)


def test_binary_quantizer_scales(rng):
    w = rng.normal(size=(3, 64)).astype(np.float32) + 0.5
    qw = lb.quantize(mx.array(w), "binary", 64, scale_dtype=mx.float32)
    np.testing.assert_array_equal(reference.signs(qw), np.where(w >= 0, 1.0, -1.0))
    np.testing.assert_allclose(np.asarray(qw.scales)[:, 0], np.abs(w).mean(1), rtol=1e-6)
    # The affine variant fits the offset and so has lower error here.
    qb = lb.quantize(mx.array(w), "binary", 64, biases=True, scale_dtype=mx.float32)
    err = lambda q: np.linalg.norm(reference.dequantize(q) - w)
    assert err(qb) < err(qw)


def test_codebook_quantizer_is_deterministic_and_seeded(rng):
    w = mx.array(rng.normal(size=(64, 512)).astype(np.float32))
    a = lb.quantize(w, "codebook", 128, vector_size=16, index_bits=6, seed=3)
    b = lb.quantize(w, "codebook", 128, vector_size=16, index_bits=6, seed=3)
    c = lb.quantize(w, "codebook", 128, vector_size=16, index_bits=6, seed=4)
    for name in ("packed", "scales", "codebook"):
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)))
    assert not np.array_equal(np.asarray(a.codebook), np.asarray(c.codebook))


def test_codebook_clustering_beats_plain_sign_truncation(rng):
    """More centroids fit the sign patterns better, and every centroid is the
    Hamming-nearest one for the runs that use it."""
    w = mx.array(rng.normal(size=(128, 256)).astype(np.float32))
    errs = []
    for c in (4, 8, 12):
        q = lb.quantize(w, "codebook", 128, vector_size=16, index_bits=c)
        errs.append(np.linalg.norm(reference.dequantize(q) - np.asarray(w)))
        # Assignment check: no run's sign pattern is closer to another entry.
        signs = (np.asarray(w).reshape(-1, 16) >= 0).astype(np.uint32)
        pats = (signs << np.arange(16, dtype=np.uint32)).sum(-1)
        code = np.asarray(q.codebook).astype(np.uint32)
        chosen = (reference.signs(q).reshape(-1, 16) > 0).astype(np.uint32)
        chosen = (chosen << np.arange(16, dtype=np.uint32)).sum(-1)
        ham = lambda a, b: np.unpackbits(
            (a ^ b).astype(">u4").view(np.uint8).reshape(-1, 4), axis=1
        ).sum(1)
        best = np.min([ham(pats, np.full_like(pats, e)) for e in code], axis=0)
        np.testing.assert_array_equal(ham(pats, chosen), best)
    assert errs[0] > errs[1] > errs[2]


def test_codebook_is_exact_when_patterns_fit(rng):
    # Only 8 distinct sign patterns occur: a 16-entry codebook holds them all.
    base = rng.choice([-1.0, 1.0], size=(8, 16))
    rows = base[rng.integers(0, 8, size=(32 * 4,))].reshape(32, 64)
    qw = lb.quantize(
        mx.array(rows.astype(np.float32)), "codebook", 64, vector_size=16, index_bits=4
    )
    np.testing.assert_array_equal(np.asarray(lb.dequantize(qw)), rows)
