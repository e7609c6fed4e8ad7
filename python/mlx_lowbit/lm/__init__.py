# Copyright © 2026 mlx-lowbit contributors.
"""mlx-lm integration: load and convert models, existing low-bit checkpoints
(BitNet b1.58, MLX affine 1-bit), GGUF import, evaluation helpers.

mlx-lm (the ``lm`` extra) is imported inside the functions that use it, so
``import mlx_lowbit`` stays fast and works without it.
"""

from . import hook
from .convert import convert, quantize_model
from .evaluate import eval_text, greedy_completion, perplexity
from .gguf import from_gguf, smollm2_path
from .load import load

hook.install()

__all__ = [
    "convert",
    "eval_text",
    "from_gguf",
    "greedy_completion",
    "load",
    "perplexity",
    "quantize_model",
    "smollm2_path",
]
