# Copyright © 2026 mlx-lowbit contributors.
"""Ternary, binary and sub-1-bit weights for MLX."""

import mlx.core  # noqa: F401  (loads libmlx before the extension needs it)

# After the core: nn builds on ops, and importing lm registers our layers with
# mlx.nn's to_quantized, which mlx_lm.load uses.
from . import lm, nn  # noqa: E402, F401
from ._ext import cpu_isa, cpu_isas, num_threads, set_cpu_isa
from .experts import QuantizedExperts, dequantize_experts, gather_matmul, quantize_experts
from .ops import FORMAT_OPTIONS, dequantize, matmul, quantize, set_num_threads
from .quantized_weight import QuantizedWeight

__all__ = [
    "FORMAT_OPTIONS",
    "QuantizedExperts",
    "QuantizedWeight",
    "cpu_isa",
    "cpu_isas",
    "dequantize",
    "dequantize_experts",
    "gather_matmul",
    "matmul",
    "num_threads",
    "quantize",
    "quantize_experts",
    "set_cpu_isa",
    "set_num_threads",
]
