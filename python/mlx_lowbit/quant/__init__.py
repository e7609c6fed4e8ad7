# Copyright © 2026 mlx-lowbit contributors.
"""Quantizers that use calibration data (issue 11): one module per method."""

from .gptq import gptq_quantize, input_hessian

__all__ = ["gptq_quantize", "input_hessian"]
