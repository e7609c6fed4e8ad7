# Copyright © 2026 mlx-lowbit contributors.

import itertools
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

# The one conftest of the suite (a second one elsewhere under tests/ would
# shadow this module for `from conftest import ...`): tools/msl holds the
# Metal-on-Linux runner that the kernel tests import.
TOOLS_MSL = Path(__file__).resolve().parents[1] / "tools" / "msl"
if str(TOOLS_MSL) not in sys.path:
    sys.path.insert(0, str(TOOLS_MSL))

# Every format with the options worth covering: binary with and without
# bias, codebook at both vector sizes and a straddling index width.
FORMATS = [
    ("ternary", {}),
    ("binary", {}),
    ("binary", {"biases": True}),
    ("codebook", {"vector_size": 16, "index_bits": 12}),
    ("codebook", {"vector_size": 8, "index_bits": 5}),
]
DTYPES = [mx.float16, mx.bfloat16, mx.float32]

# Relative tolerance of a result in each dtype against an fp32 reference:
# dominated by rounding the output itself.
RTOL = {mx.float32: 2e-5, mx.float16: 2e-3, mx.bfloat16: 1.6e-2}


def format_id(f):
    fmt, opts = f
    return fmt + "".join(f"-{k}{v}" for k, v in opts.items())


def assert_close(out: mx.array, ref, dtype, what=""):
    """out vs ref, relative to ref's largest magnitude (entries near zero
    carry the rounding of much larger partial sums)."""
    out = np.asarray(out.astype(mx.float32), dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(out - ref).max() / scale
    assert err <= RTOL[dtype], f"{what}: max relative error {err:.3g} > {RTOL[dtype]}"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def product(*axes):
    return list(itertools.product(*axes))


# Tests that compile or emulate (the Metal emulator, sanitizers, qemu) or run
# a whole model or benchmark: `pytest -m "not slow"` skips them for a quick
# loop; CI runs everything.
SLOW_FILES = {
    "test_lm_demo.py",
    "test_bench.py",
    "test_metal_kernels.py",
    "test_metal_sanitizers.py",
    "test_cost_model.py",
}
SLOW_TESTS = {"test_neon_kernels_under_qemu"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if path.name in SLOW_FILES or path.parent.name == "msl" or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
