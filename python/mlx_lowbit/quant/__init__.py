# Copyright © 2026 mlx-lowbit contributors.
"""Quantizers that use calibration data (issue 11): one module per method."""

from .calib import DEFAULT_CORPUS, calibration_batches, chat_prefix, default_text, read_text
from .capture import input_hessians
from .gptq import gptq_model, gptq_quantize, input_hessian

__all__ = [
    "DEFAULT_CORPUS",
    "calibration_batches",
    "chat_prefix",
    "default_text",
    "gptq_model",
    "gptq_quantize",
    "input_hessian",
    "input_hessians",
    "read_text",
]
