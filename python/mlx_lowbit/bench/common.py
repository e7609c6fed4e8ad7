# Copyright © 2026 mlx-lowbit contributors.
"""What every benchmark shares: dtype names, format recipes, the error measure."""

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
