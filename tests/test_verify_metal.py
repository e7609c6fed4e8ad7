# Copyright © 2026 mlx-lowbit contributors.
"""What verify-metal compares and reports, checked where it can be without a
Mac: the MLX baseline runs on the identical packed bytes (same products on
the CPU), the probe refuses a machine without an Apple GPU, the report
holds every column a PR needs."""

import sys

import mlx.core as mx
import numpy as np
import pytest
from helpers import make_weight, make_x

import mlx_lowbit as lb
from mlx_lowbit import verify_metal as vm


def test_ternary_bytes_are_mlx_2bit_affine():
    qw = make_weight(("ternary", {}), 24, 256, 64)
    x = make_x((3, 256), mx.float32)
    base = vm.mlx_baseline(x, qw, mx.cpu)
    assert vm.mlx_affine_of(qw)["w"] is qw.packed  # the same array, not a re-pack
    np.testing.assert_allclose(
        np.asarray(base()), np.asarray(lb.matmul(x, qw, stream=mx.cpu)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("biases", [False, True])
def test_binary_bytes_are_mlx_1bit_affine_where_mlx_has_it(biases):
    qw = make_weight(("binary", {"biases": biases}), 24, 256, 64)
    x = make_x((3, 256), mx.float32)
    try:
        base = vm.mlx_baseline(x, qw, mx.cpu)
    except ValueError as e:  # MLX without 1-bit affine: the report says so per row
        assert "bits" in str(e).lower() or "1" in str(e)
        return
    np.testing.assert_allclose(
        np.asarray(base()), np.asarray(lb.matmul(x, qw, stream=mx.cpu)), rtol=1e-5, atol=1e-5
    )


def test_codebook_has_no_mlx_equivalent():
    qw = make_weight(("codebook", {"vector_size": 16, "index_bits": 12}), 8, 256, 64)
    assert vm.mlx_affine_of(qw) is None


@pytest.mark.skipif(sys.platform == "darwin", reason="the probe's refusal needs a non-Apple GPU")
def test_probe_refuses_without_an_apple_gpu():
    assert vm.probe_gpu() is not None


def test_peaks_and_report():
    assert vm.chip_peaks("Apple M3 Max", 40) == (400.0, 16.4)
    assert vm.chip_peaks("Apple M3 Max", 30) == (300.0, 12.3)
    assert vm.chip_peaks("Unknown GPU", 8) == (None, None)
    rows = [vm._row("ternary gemv", 1, 4096, 4096, 0.05, 4_456_448, 2, (400.0, 16.4))]
    rows[0].update({"auto picked": "gemv", "fastest": "gemv"})
    meta = {
        "chip": "Apple M3 Max",
        "gpu_cores": 40,
        "cores_source": "IORegistry gpu-core-count",
        "peak_gbs": 400.0,
        "peak_tflops": 16.4,
        "macos": "14.5",
        "mlx": mx.__version__,
        "N": 4096,
        "K": 4096,
        "dtype": "float16",
        "tests": "passed",
    }
    text = vm.report(meta, rows)
    assert "Apple M3 Max (40 GPU cores" in text and "| ternary gemv | 1 | 0.05 |" in text
    assert "`auto` picked the fastest measured schedule in 1 of 1 cases." in text
    # 4.47 MB of weights + x + out in 50 us: ~89 GB/s, 0.22 of 400 GB/s.
    assert abs(rows[0]["GB/s"] - 89.5) < 0.5 and abs(rows[0]["of peak BW"] - 0.224) < 0.002
