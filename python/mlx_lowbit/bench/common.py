# Copyright © 2026 mlx-lowbit contributors.
"""What every benchmark shares: dtype names, format recipes, the error measure."""

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import mlx.core as mx
import numpy as np

DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}

# (label, format, options): every format setting a per-layer report covers.
RECIPES = [
    ("ternary", "ternary", {}),
    ("binary", "binary", {}),
    ("binary+bias", "binary", {"biases": True}),
    ("codebook v16 c12", "codebook", {"vector_size": 16, "index_bits": 12}),
    ("codebook v8 c6", "codebook", {"vector_size": 8, "index_bits": 6}),
]


def rel_error(a, b) -> float:
    """||a - b|| / ||b|| in float64 (arrays of any framework numpy reads)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@dataclass(frozen=True)
class Timing:
    """How long to time one op: at least ``min_time`` seconds of timed runs,
    at most ``max_repeats`` of them (kernels.Plan carries the same fields)."""

    min_time: float
    max_repeats: int


def time_op(
    make: Callable[[], Any], plan: "Timing", limit: Optional[float] = None
) -> Dict[str, Any]:
    """Median and spread of `make()`'s evaluation time.

    One warm-up call, then repeated timed regions of mx.eval + mx.synchronize;
    calls shorter than a millisecond run several per region so per-call
    overhead does not dominate. An op slower than `limit` seconds is timed
    once (its warm-up call) and flagged. `cpu` is the process CPU time per
    op (all threads): on a machine shared with other work it estimates a
    single-threaded op's uncontended time better than the wall clock."""
    start, cpu_start = time.perf_counter(), time.process_time()
    mx.eval(make())
    mx.synchronize()
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if limit is not None and first > limit:
        return {
            "median": first,
            "p10": first,
            "p90": first,
            "cpu": first_cpu,
            "repeats": 1,
            "per_region": 1,
            "note": "1 run (slow)",
        }
    per_region = max(1, min(64, int(2e-3 / max(first, 1e-7))))
    repeats = int(plan.min_time / max(first * per_region, 1e-7))
    repeats = max(3, min(plan.max_repeats, repeats))
    samples, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        mx.eval([make() for _ in range(per_region)])
        mx.synchronize()
        samples.append((time.perf_counter() - start) / per_region)
        cpu.append((time.process_time() - cpu_start) / per_region)
    q10, q50, q90 = np.percentile(samples, [10, 50, 90])
    return {
        "median": float(q50),
        "p10": float(q10),
        "p90": float(q90),
        "cpu": float(np.median(cpu)),
        "repeats": repeats,
        "per_region": per_region,
    }
