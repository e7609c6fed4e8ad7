"""The reference simdgroup_matrix GEMM in float, half and bfloat, and the bugs the harness catches in it."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS, kernel_source, mutate, pack

M, N, K = 32, 64, 48  # 2 x 1 threadgroups of 32 x 32, three K-steps of 16
THREADGROUP = 128  # 2 x 2 simdgroups


def inputs(dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(np.float32) / np.sqrt(K)
    b = rng.standard_normal((K, N)).astype(np.float32)
    return a, b


def launch(source, kernel, a, b, c, sanitizer=None, name=None):
    return runner.run(
        source,
        kernel,
        grid=(N // 32, M // 32),
        threadgroup=THREADGROUP,
        buffers={0: a, 1: b, 2: c, 3: pack("3i", M, N, K)},
        sanitizer=sanitizer,
        name=name,
    )[2]


def run_dtype(source, dtype, sanitizer=None, name=None):
    """(result as float64, reference from the inputs as rounded to dtype)."""
    a, b = inputs(dtype)
    if dtype == "bfloat16":
        a16, b16 = runner.float_to_bfloat16(a), runner.float_to_bfloat16(b)
        c = launch(
            source,
            "gemm_bfloat16",
            a16,
            b16,
            np.zeros((M, N), np.uint16),
            sanitizer,
            name,
        )
        ref = runner.bfloat16_to_float(a16).astype(np.float64) @ runner.bfloat16_to_float(
            b16
        ).astype(np.float64)
        return runner.bfloat16_to_float(c).astype(np.float64), ref
    kernel = {np.float32: "gemm_float32", np.float16: "gemm_float16"}[dtype]
    a, b = a.astype(dtype), b.astype(dtype)
    c = launch(source, kernel, a, b, np.zeros((M, N), dtype), sanitizer, name)
    return c.astype(np.float64), a.astype(np.float64) @ b.astype(np.float64)


# fp32 accumulation: the error is the output's rounding (plus fp32 sums for float).
TOLERANCE = {np.float32: 1e-5, np.float16: 2e-3, "bfloat16": 1.6e-2}


@pytest.mark.parametrize(
    "dtype",
    [np.float32, np.float16, "bfloat16"],
    ids=["float32", "float16", "bfloat16"],
)
def test_reference_gemm_matches_numpy(dtype):
    c, ref = run_dtype(KERNELS / "gemm.metal", dtype)
    np.testing.assert_allclose(c, ref, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("sanitizer", ["thread", "address"])
def test_reference_gemm_is_clean_under_sanitizers(sanitizer):
    c, ref = run_dtype(KERNELS / "gemm.metal", np.float16, sanitizer)
    np.testing.assert_allclose(c, ref, rtol=TOLERANCE[np.float16], atol=TOLERANCE[np.float16])


def test_wrong_simdgroup_matrix_origin_gives_wrong_results():
    # (x, y) = (column, row): swapping them loads the wrong 8x8 block of the A tile.
    source = mutate(kernel_source("gemm.metal"), "ulong2(kk, sm + 8 * i)", "ulong2(sm + 8 * i, kk)")
    c, ref = run_dtype(source, np.float32, name="gemm_wrong_origin.metal")
    assert np.abs(c - ref).max() > 0.5


def test_threadgroup_pointer_passed_as_device_pointer_does_not_type_check():
    source = mutate(
        kernel_source("gemm.metal"),
        "load_tile(const device T* src, int ld, threadgroup T* dst, uint tid)",
        "load_tile(const device T* src, int ld, device T* dst, uint tid)",
    )
    with pytest.raises(runner.MSLCheckError) as e:
        runner.check(source, name="gemm_tg_as_device.metal")
    assert "gemm_tg_as_device.metal:" in e.value.diagnostics
    assert (
        "no known conversion from '__local float[512]' to '__global float *'" in e.value.diagnostics
    )


def test_implicit_float2_to_half2_does_not_type_check():
    source = mutate(kernel_source("gemm.metal"), "= vec<T, 2>(e);", "= e;")
    with pytest.raises(runner.MSLCheckError) as e:
        runner.check(source, name="gemm_implicit_half2.metal")
    line = next(i + 1 for i, l in enumerate(source.splitlines()) if l.strip().endswith("= e;"))
    assert f"gemm_implicit_half2.metal:{line}:" in e.value.diagnostics
    assert (
        "assigning to 'vec<_Float16, [...]>' from incompatible type 'const vec<float, [...]>'"
        in e.value.diagnostics
    )
    # float -> float is fine, so only the half and bfloat instantiations fail.
    assert (
        "'vec<__bf16, [...]>' from incompatible type 'const vec<float, [...]>'"
        in e.value.diagnostics
    )


def test_reference_gemm_type_checks():
    runner.check(KERNELS / "gemm.metal")
    assert runner.kernel_names(KERNELS / "gemm.metal") == [
        "gemm_float32",
        "gemm_float16",
        "gemm_bfloat16",
    ]
