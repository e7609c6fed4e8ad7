# Copyright © 2026 mlx-lowbit contributors.
"""Bad input gets a ValueError naming the problem, raised when the op is
built (no mx.eval here), never a crash or silent garbage."""

import mlx.core as mx
import numpy as np
import pytest

import mlx_lowbit as lb
from mlx_lowbit import _ext


@pytest.fixture(scope="module")
def ternary():
    return lb.quantize(mx.random.normal((8, 64), key=mx.random.key(0)), "ternary", 32)


@pytest.fixture(scope="module")
def codebook():
    w = mx.random.normal((8, 64), key=mx.random.key(0))
    return lb.quantize(w, "codebook", 32, vector_size=8, index_bits=6)


# --- matmul -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [mx.int32, mx.uint8, mx.float64, mx.bool_])
def test_matmul_rejects_non_float_x(ternary, dtype):
    with pytest.raises(
        ValueError, match=r"\[lowbit_matmul\] x must be float16, bfloat16 or float32"
    ):
        lb.matmul(mx.zeros((2, 64), dtype=dtype), ternary)


def test_matmul_rejects_k_mismatch(ternary):
    with pytest.raises(ValueError, match=r"last dimension of x with shape \(2, 63\) must be K=64"):
        lb.matmul(mx.zeros((2, 63)), ternary)
    with pytest.raises(ValueError, match="must be N=8"):
        lb.matmul(mx.zeros((2, 64)), ternary, transpose=False)


def test_matmul_rejects_scalar_x(ternary):
    with pytest.raises(ValueError, match="at least one dimension"):
        lb.matmul(mx.array(1.0), ternary)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"schedule": "fastest"}, "Unknown schedule 'fastest'; expected one of auto, gemv"),
        (
            {"streamk_fixup": "sloppy"},
            "Unknown streamk_fixup 'sloppy'; expected one of deterministic",
        ),
        ({"split_k": -1}, "split_k must be >= 0"),
    ],
)
def test_matmul_rejects_bad_schedule_options(ternary, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lb.matmul(mx.zeros((1, 64)), ternary, **kwargs)


# --- quantize ---------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,gs,message",
    [
        ((4, 96), 64, "multiple of 32 that divides K=96, got 64"),
        ((4, 96), 48, "multiple of 32 that divides K=96, got 48"),
        ((4, 40), 40, "multiple of 32 that divides K=40"),
        ((4, 64), 0, "got 0"),
        ((64,), 32, r"must be 2-D \(N, K\), got shape \(64,\)"),
    ],
)
def test_quantize_rejects_bad_shapes_and_groups(shape, gs, message):
    with pytest.raises(ValueError, match=message):
        lb.quantize(mx.ones(shape), "ternary", gs)


def test_quantize_rejects_unknown_format_and_options():
    w = mx.ones((4, 64))
    with pytest.raises(
        ValueError,
        match="Unknown format 'quaternary'; supported formats are ternary, binary, codebook",
    ):
        lb.quantize(w, "quaternary", 32)
    with pytest.raises(
        ValueError, match="Unknown option.*biases for format 'ternary'; accepted: none"
    ):
        lb.quantize(w, "ternary", 32, biases=True)
    with pytest.raises(ValueError, match="Unknown option.*index_bit for format 'codebook'"):
        lb.quantize(w, "codebook", 32, index_bit=8)
    with pytest.raises(ValueError, match="scale_dtype must be float16 or float32, got bfloat16"):
        lb.quantize(w, "binary", 32, scale_dtype=mx.bfloat16)


@pytest.mark.parametrize(
    "opts,message",
    [
        ({"vector_size": 12}, "vector_size must be 8 or 16, got 12"),
        (
            {"vector_size": 16, "index_bits": 3},
            r"index_bits must be in \[4, 16\] for vector_size=16, got 3",
        ),
        ({"vector_size": 16, "index_bits": 17}, r"index_bits must be in \[4, 16\].*got 17"),
        (
            {"vector_size": 8, "index_bits": 9},
            r"index_bits must be in \[4, 8\] for vector_size=8, got 9",
        ),
    ],
)
def test_quantize_rejects_codebook_options_out_of_range(opts, message):
    with pytest.raises(ValueError, match=message):
        lb.quantize(mx.ones((4, 64)), "codebook", 32, **opts)


@pytest.mark.parametrize(
    "bad,name", [(float("nan"), "NaN"), (float("inf"), "Inf"), (-float("inf"), "Inf")]
)
@pytest.mark.parametrize("fmt", ["ternary", "binary", "codebook"])
def test_quantize_rejects_non_finite_weights(bad, name, fmt):
    w = np.ones((4, 64), dtype=np.float32)
    w[2, 5] = bad
    with pytest.raises(ValueError, match=f"contains {name} \\(first at row 2, column 5\\)"):
        lb.quantize(mx.array(w), fmt, 32)


def test_quantize_rejects_scales_fp16_cannot_hold():
    with pytest.raises(ValueError, match="does not fit in float16; pass scale_dtype=float32"):
        lb.quantize(mx.full((2, 32), 1e6), "binary", 32)
    big = lb.quantize(mx.full((2, 32), 1e6), "binary", 32, scale_dtype=mx.float32)
    assert np.asarray(lb.dequantize(big))[0, 0] == 1e6


def test_quantize_rejects_integer_weights():
    with pytest.raises(ValueError, match="must be a float array, got int32"):
        lb.quantize(mx.ones((4, 64), dtype=mx.int32), "ternary", 32)


# --- QuantizedWeight whose arrays disagree with its metadata ------------------


def replace(qw, **changes):
    fields = dict(
        fmt=qw.fmt,
        group_size=qw.group_size,
        packed=qw.packed,
        scales=qw.scales,
        biases=qw.biases,
        codebook=qw.codebook,
        vector_size=qw.vector_size,
        index_bits=qw.index_bits,
    )
    fields.update(changes)
    return lb.QuantizedWeight(**fields)


def test_weight_rejects_wrong_packed_dtype_or_shape(ternary):
    with pytest.raises(
        ValueError, match="packed ternary weight must be a 2-D uint32 array, got int32"
    ):
        replace(ternary, packed=ternary.packed.astype(mx.int32))
    with pytest.raises(
        ValueError,
        match=r"has shape \(8, 3\) but scales \(8, 2\) with group_size=32 mean K=64, which needs 4",
    ):
        replace(ternary, packed=ternary.packed[:, :3])


def test_weight_rejects_wrong_scales(ternary):
    with pytest.raises(
        ValueError, match="scales must be a 2-D float16 or float32 array, got bfloat16"
    ):
        replace(ternary, scales=ternary.scales.astype(mx.bfloat16))
    with pytest.raises(
        ValueError, match=r"scales have shape \(7, 2\) but the packed weight has 8 rows"
    ):
        replace(ternary, scales=ternary.scales[:7])
    # Group size in the metadata that does not match the arrays.
    with pytest.raises(ValueError, match="mean K=128, which needs 8 uint32 words per row"):
        replace(ternary, group_size=64)


def test_weight_rejects_misplaced_or_mismatched_extras(ternary, codebook):
    with pytest.raises(ValueError, match="biases apply only to the binary format, not to ternary"):
        replace(ternary, biases=ternary.scales)
    with pytest.raises(ValueError, match="A codebook applies only to the codebook format"):
        replace(ternary, codebook=codebook.codebook)
    with pytest.raises(
        ValueError, match="vector_size and index_bits apply only to the codebook format"
    ):
        replace(ternary, index_bits=8)
    binary = lb.quantize(mx.ones((8, 64)), "binary", 32, biases=True)
    with pytest.raises(ValueError, match="biases must match scales in shape and dtype"):
        replace(binary, biases=binary.biases.astype(mx.float32))


def test_weight_rejects_bad_codebook(codebook):
    with pytest.raises(ValueError, match="needs its codebook array"):
        replace(codebook, codebook=None)
    with pytest.raises(
        ValueError,
        match=r"1-D uint8 array of 2\^6 = 64 patterns for vector_size=8, got uint8 with shape \(32,\)",
    ):
        replace(codebook, codebook=codebook.codebook[:32])
    with pytest.raises(ValueError, match="got uint16"):
        replace(codebook, codebook=codebook.codebook.astype(mx.uint16))
    # index_bits in the metadata that disagree with the stored codebook.
    with pytest.raises(
        ValueError, match=r"2\^5 = 32 patterns for vector_size=8, got uint8 with shape \(64,\)"
    ):
        replace(codebook, index_bits=5)
    # ... or with the packed indices (K=64, v=8: 8 indices of 8 bits = 2 words,
    # of 4 bits = 1 word).
    with pytest.raises(ValueError, match="needs 1 uint32 words per row"):
        replace(codebook, index_bits=4, codebook=codebook.codebook[:16])


def test_weight_rejects_unknown_format(ternary):
    with pytest.raises(ValueError, match="Unknown format 'tern'"):
        replace(ternary, fmt="tern")


def test_ops_validate_directly_too(ternary):
    """The C++ ops check their arrays even without a QuantizedWeight."""
    with pytest.raises(ValueError, match=r"\[lowbit_matmul\] scales have shape"):
        _ext.lowbit_matmul(
            mx.zeros((1, 64)), ternary.packed, ternary.scales[:3], fmt="ternary", group_size=32
        )
    with pytest.raises(
        ValueError, match=r"\[dequantize\] dtype must be float16, bfloat16 or float32, got int32"
    ):
        lb.dequantize(ternary, mx.int32)


def test_packers_reject_out_of_range_values():
    with pytest.raises(ValueError, match="Ternary values must be -1, 0 or 1, found 2"):
        _ext.pack_ternary(mx.full((2, 32), 2, dtype=mx.int8))
    with pytest.raises(ValueError, match="Binary values must be 0 or 1, found 3"):
        _ext.pack_binary(mx.full((2, 32), 3, dtype=mx.uint8))
    with pytest.raises(ValueError, match="Index 64 does not fit in index_bits=6"):
        _ext.pack_codebook(mx.full((2, 4), 64, dtype=mx.uint32), 8, 6)


def test_matmul_rejects_bad_tiles_and_activation_bits(ternary):
    with pytest.raises(ValueError, match="Tile overrides bm, bn, bk must be >= 0"):
        lb.matmul(mx.zeros((1, 64)), ternary, tile=(32, -1, 32))
    with pytest.raises(ValueError, match="activation_bits must be 0 .* or 8 .*, got 4"):
        lb.matmul(mx.zeros((1, 64)), ternary, activation_bits=4)
