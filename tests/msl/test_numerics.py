"""half/bfloat semantics and the values of MSL builtins, against numpy."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS

BUILTINS = KERNELS / "builtins.metal"


def test_half_arithmetic_rounds_every_operation():
    out = runner.run(
        BUILTINS,
        "half_arithmetic",
        grid=1,
        threadgroup=1,
        buffers={
            0: np.array([2048, 1, 300], np.float16),
            1: np.zeros(4, np.float16),
            2: np.zeros(2, np.float32),
        },
    )
    assert out[1][0] == 2048  # 2048 + 1 rounds back to 2048 in half, twice
    assert out[1][1] == 2048  # the same with 1.0h literals
    assert np.isinf(out[1][2])  # 90000 > 65504
    assert out[1][3] == 2050  # computed in float, rounded once
    assert out[2][0] == 2050
    assert out[2][1] == 2048  # half sum converted to float afterwards


def test_bfloat_conversion_rounds_to_nearest_even():
    ulp = 2.0**-7  # of bfloat at 1.0
    values = np.array(
        [
            1.0 + ulp / 2,  # tie -> even (1.0)
            1.0 + 3 * ulp / 2,  # tie -> even (1 + 2 ulp)
            1.0 + ulp / 2 + 2.0**-20,  # above the tie -> up
            -1.0 - 3 * ulp / 2,
            3.0e38,  # rounds up to infinity
            1.0e-40,  # subnormal
            np.inf,
            np.nan,
            0.1,
            -0.0,
        ],
        np.float32,
    )
    out = runner.run(
        BUILTINS,
        "bfloat_rounding",
        grid=len(values),
        threadgroup=1,
        buffers={0: values, 1: np.zeros(len(values), np.uint16)},
    )[1]
    expected = runner.float_to_bfloat16(values)
    np.testing.assert_array_equal(out[:7], expected[:7])
    assert np.isnan(runner.bfloat16_to_float(out[7]))
    np.testing.assert_array_equal(out[8:], expected[8:])
    assert list(out[:2]) == [0x3F80, 0x3F82]


def test_bfloat_arithmetic_rounds_every_operation():
    values = runner.float_to_bfloat16(np.array([256.0, 1.0], np.float32))
    out = runner.run(
        BUILTINS,
        "bfloat_arithmetic",
        grid=1,
        threadgroup=1,
        buffers={0: values, 1: np.zeros(2, np.uint16)},
    )[1]
    assert list(runner.bfloat16_to_float(out)) == [256.0, 258.0]


def test_simd_functions():
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 9, 64).astype(np.float32)  # exact sums
    out = runner.run(
        BUILTINS,
        "simd_functions",
        grid=2,
        threadgroup=32,
        buffers={0: x, 1: np.zeros(64 * 13, np.float32)},
    )[1]
    out = out.reshape(64, 13)
    for sg in range(2):
        v = x[sg * 32 : sg * 32 + 32]
        o = out[sg * 32 : sg * 32 + 32]
        lanes = np.arange(32)
        np.testing.assert_array_equal(o[:, 0], v.sum())
        np.testing.assert_array_equal(o[:, 1], v.max())
        np.testing.assert_array_equal(o[:, 2], v.min())
        np.testing.assert_array_equal(o[:, 3], np.cumsum(v) - v)
        np.testing.assert_array_equal(o[:, 4], np.cumsum(v))
        np.testing.assert_array_equal(o[:, 5], v[(lanes + 5) % 32])
        np.testing.assert_array_equal(
            o[:, 6], np.where(lanes + 3 < 32, v[np.minimum(lanes + 3, 31)], v)
        )
        np.testing.assert_array_equal(o[:, 7], np.where(lanes >= 3, v[np.maximum(lanes - 3, 0)], v))
        np.testing.assert_array_equal(o[:, 8], v[lanes ^ 6])
        np.testing.assert_array_equal(o[:, 9], v[7])
        ballot = sum(1 << l for l in range(24) if v[l] > 0)
        np.testing.assert_array_equal(o[:, 10], float(ballot))
        np.testing.assert_array_equal(o[:, 11], (lanes == 0).astype(np.float32))
        np.testing.assert_array_equal(o[:, 12], float(bool((v > 10).any())))


def test_simd_sum_counts_only_lanes_that_have_not_returned():
    out = runner.run(
        BUILTINS,
        "simd_sum_after_return",
        grid=1,
        threadgroup=32,
        buffers={0: np.zeros(32, np.float32)},
    )[0]
    np.testing.assert_array_equal(out[:20], 20.0)
    np.testing.assert_array_equal(out[20:], 0.0)


def test_scalar_functions():
    u = np.array([0, 1, 0x80000000, 0xFFFFFFFF, 0x0F0F00F0, 12345, 7, 99], np.uint32)
    f = np.array([0.0, 1.0, -2.5, 0.3, -0.7, 10.0, 1e-3, -3.0], np.float32)
    out = runner.run(
        BUILTINS,
        "scalar_functions",
        grid=1,
        threadgroup=len(u),
        buffers={
            0: u,
            1: f,
            2: np.zeros(len(u) * 10, np.uint32),
            3: np.zeros(len(u) * 12, np.float32),
        },
    )
    ou, of = out[2].reshape(-1, 10), out[3].reshape(-1, 12)
    bits = [f"{int(x):032b}" for x in u]
    np.testing.assert_array_equal(ou[:, 0], [b.count("1") for b in bits])
    np.testing.assert_array_equal(ou[:, 1], [len(b) - len(b.lstrip("0")) for b in bits])
    np.testing.assert_array_equal(ou[:, 2], [len(b) - len(b.rstrip("0")) for b in bits])
    np.testing.assert_array_equal(ou[:, 3], (u >> 4) & 0xFF)
    np.testing.assert_array_equal(ou[:, 4], f.view(np.uint32))
    np.testing.assert_array_equal(ou[:, 5], np.where(f > 0, 2, 1))
    np.testing.assert_array_equal(ou[:, 6], np.clip(u, 10, 1000))
    low = (u & 0xF).astype(np.int64)
    np.testing.assert_array_equal(ou[:, 7], np.where(low >= 8, low - 16, low) + 8)
    np.testing.assert_array_equal(ou[:, 8], np.maximum(u, 7) - np.minimum(u, 7))
    np.testing.assert_array_equal(ou[:, 9], np.abs((u % 1000).astype(np.int64) - 100))
    for k in range(3):
        np.testing.assert_allclose(of[:, k], np.exp(f), rtol=1e-6)
    np.testing.assert_allclose(of[:, 3], np.log(np.abs(f) + 1), rtol=1e-6)
    np.testing.assert_allclose(of[:, 4], np.sqrt(np.abs(f)), rtol=1e-6)
    np.testing.assert_allclose(of[:, 5], 1 / np.sqrt(np.abs(f) + 1), rtol=1e-6)
    np.testing.assert_allclose(of[:, 6], f * 2 + 1, rtol=1e-6)
    np.testing.assert_array_equal(of[:, 7], np.clip(f, -0.5, 0.5))
    np.testing.assert_array_equal(of[:, 8], np.abs(f))
    np.testing.assert_array_equal(of[:, 9], np.finfo(np.float32).max)
    np.testing.assert_array_equal(of[:, 10], 65504.0)
    np.testing.assert_allclose(
        of[:, 11],
        np.tanh(f) + np.exp(f.astype(np.float16)).astype(np.float16),
        rtol=2e-3,
    )


def test_vector_constructors_convert_element_wise():
    v = np.array([[1.5, -2.25, 3.0, -4.75], [-0.5, 8.0, 0.1, 2.0]], np.float32)
    out = runner.run(
        BUILTINS,
        "vectors",
        grid=1,
        threadgroup=2,
        buffers={0: v, 1: np.zeros((6, 4), np.float32)},
    )[1]
    for i, row in enumerate(v):
        h = row.astype(np.float16).astype(np.float32)
        n = np.trunc(row)
        np.testing.assert_array_equal(out[i * 3], [row[0] + n[0], row[1], h[2], h[3]])
        np.testing.assert_array_equal(out[i * 3 + 1], [row[3] + 3, row[2] + 3, 4.0, 5.0])
        expected = np.where(row < 0, 0.0, row)
        expected[3] += np.dot(row, row)
        np.testing.assert_allclose(out[i * 3 + 2], expected, rtol=1e-6)


@pytest.mark.parametrize("values", [[0.0, 1.0, -2.0, 3.140625], [65504.0, -1e-3, 0.5, 2.0**-24]])
def test_float16_buffers_round_trip_bit_exactly(values):
    src = """
#include <metal_stdlib>
using namespace metal;
[[kernel]] void copy(device const half* in [[buffer(0)]], device half* out [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  out[i] = in[i];
}
"""
    x = np.array(values, np.float16)
    out = runner.run(
        src,
        "copy",
        grid=4,
        threadgroup=4,
        buffers={0: x, 1: np.zeros(4, np.float16)},
        name="copy.metal",
    )[1]
    np.testing.assert_array_equal(out.view(np.uint16), x.view(np.uint16))
