# Copyright © 2026 mlx-lowbit contributors.
"""Kernel host names are token-pasted, so grep cannot check them: the set the
router can ask for must equal the set metal/lowbit.metal instantiates.
(tests/msl/test_repo_kernels.py type-checks every metal/*.metal.)"""

import itertools
import re

import mlx.core as mx
from helpers import SCHEDULES

from mlx_lowbit import _ext
from mlx_lowbit.testing import KERNEL_SOURCE, _runner, source_root

# One weight per kernel format token (binary with bias shares binary's
# kernels; codebook's vector size is a template argument).
WEIGHTS = [
    ("ternary", 0, 0, False),
    ("binary", 0, 0, True),
    ("codebook", 8, 5, False),
    ("codebook", 16, 12, False),
]
DTYPES = [mx.float16, mx.bfloat16, mx.float32]
# (M, N, K, cores): decode, small batch, one tile, a wave, many waves.
SHAPES = [
    (1, 64, 256, 8),
    (2, 64, 256, 8),
    (5, 64, 256, 8),
    (40, 40, 4096, 8),
    (300, 700, 512, 4),
    (2048, 2048, 256, 8),
]
TILES = [(0, 0, 0)] + [t[:3] for t in _ext.gemm_tiles()]

GRAMMAR = re.compile(
    r"lowbit_("
    r"gemv_(ternary|binary|codebook_v8|codebook_v16)_(float16|bfloat16|float32)_mr\d+"
    r"|(dataparallel|splitk|streamk)_(ternary|binary|codebook_v8|codebook_v16)_(float16|bfloat16|float32)"
    r"_bm\d+_bn\d+_bk\d+_wm\d+_wn\d+"
    r"|fixup_(float16|bfloat16|float32)_bm\d+_bn\d+"
    r"|dequantize_(ternary|binary|codebook_v8|codebook_v16)_(float16|bfloat16|float32)"
    r")"
)


def routed_names():
    """Every kernel name a plan can contain, from the planner itself."""
    names = set()
    for (fmt, v, c, bias), dtype in itertools.product(WEIGHTS, DTYPES):
        for schedule, fixup, (bm, bn, bk), (m, n, k, cores) in itertools.product(
            SCHEDULES, ["deterministic"], TILES, SHAPES
        ):
            p = _ext.metal_plan(
                fmt,
                32,
                v,
                c,
                bias,
                False,
                dtype,
                m,
                n,
                k,
                schedule=schedule,
                streamk_fixup=fixup,
                bm=bm,
                bn=bn,
                bk=bk,
                gpu_cores=cores,
            )
            names |= {launch["kernel"] for launch in p["launches"]}
        p = _ext.metal_dequantize_plan(fmt, 32, v, c, bias, False, dtype, N=8, K=64)
        names |= {launch["kernel"] for launch in p["launches"]}
    return names


def test_router_names_equal_instantiated_names():
    runner = _runner()
    root = source_root()
    instantiated = runner.kernel_names(root / KERNEL_SOURCE, include_dirs=[root])
    assert len(instantiated) == len(set(instantiated)), "a host name is instantiated twice"
    routed = routed_names()
    assert routed - set(instantiated) == set(), "the router names kernels that are not instantiated"
    assert set(instantiated) - routed == set(), "instantiated kernels the router never uses"
    bad = [name for name in instantiated if not GRAMMAR.fullmatch(name)]
    assert bad == [], f"names outside the grammar of kernel_names.h: {bad}"
