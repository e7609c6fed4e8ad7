"""simdgroup_matrix: Apple's lane layout, origins, transposes, stores and fp32 accumulation."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS

MATRIX = KERNELS / "matrix.metal"


def layout(lane: int) -> tuple[int, int]:
    """(row, first column) of lane's two elements: MLX's BaseMMAFrag::get_coord."""
    quad = lane // 4
    return (quad & 4) + (lane // 2) % 4, (quad & 2) * 2 + (lane % 2) * 2


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("origin", [(0, 0), (8, 0), (4, 8)])
def test_thread_elements_layout(dtype, origin):
    src = np.arange(256, dtype=np.float32).reshape(16, 16)  # exact in every element type
    if dtype == "bfloat16":
        data, out = runner.float_to_bfloat16(src), np.zeros(128, np.uint16)
    else:
        data, out = src.astype(dtype), np.zeros(128, dtype)
    got = runner.run(
        MATRIX,
        f"fragment_layout_{dtype}",
        grid=1,
        threadgroup=32,
        buffers={0: data, 1: out, 2: np.array(origin, np.uint32)},
    )[1]
    got = runner.bfloat16_to_float(got) if dtype == "bfloat16" else got.astype(np.float32)
    x, y = origin
    block = src[y : y + 8, x : x + 8]
    for lane in range(32):
        r, c = layout(lane)
        assert list(got[lane * 2 : lane * 2 + 2]) == [
            block[r, c],
            block[r, c + 1],
        ], f"lane {lane}"
        assert list(got[64 + lane * 2 : 64 + lane * 2 + 2]) == [
            block.T[r, c],
            block.T[r, c + 1],
        ], f"lane {lane}, transposed"


def test_store_multiply_and_diagonal():
    rng = np.random.default_rng(5)
    a, b, c = (rng.standard_normal((8, 8)).astype(np.float32) for _ in range(3))
    out = runner.run(
        MATRIX,
        "store_and_multiply",
        grid=1,
        threadgroup=32,
        buffers={0: np.concatenate([a, b, c]).ravel(), 1: np.zeros(256, np.float32)},
    )[1]
    out = out.reshape(16, 16)
    np.testing.assert_array_equal(out[:8, :8], 2 * np.eye(8))
    np.testing.assert_allclose(out[:8, 8:], a.astype(np.float64) @ b + c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[8:, :8], (a.astype(np.float64) @ b).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[8:, 8:], -1.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_products_accumulate_in_fp32(dtype):
    # 1 + eps/2 summed with 1: in fp32 the small terms survive; accumulating in the input type would drop them.
    a = np.ones((8, 8), np.float32)
    b = np.full((8, 8), 2.0**-9, np.float32)
    b[0] = 1.0
    data = np.concatenate([a, b]).ravel()
    data = runner.float_to_bfloat16(data) if dtype == "bfloat16" else data.astype(np.float16)
    out = runner.run(
        MATRIX,
        f"multiply_{dtype}",
        grid=1,
        threadgroup=32,
        buffers={0: data, 1: np.zeros(64, np.float32)},
    )[1]
    np.testing.assert_array_equal(out.reshape(8, 8), np.full((8, 8), 1 + 7 * 2.0**-9, np.float32))
