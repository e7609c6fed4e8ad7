# Copyright © 2026 mlx-lowbit contributors.
"""mlx-lm's bitnet feed-forward with SiLU, for llama.cpp's ``bitnet``
architecture (1bitLLM's bitnet_b1_58 checkpoints): mlx-lm's own computes the
squared ReLU of microsoft/bitnet-b1.58-2B-4T.

A module of its own because it subclasses an mlx-lm class, and mlx-lm is
imported only where it is used (:mod:`mlx_lowbit.lm`).
"""

import mlx.core as mx
import mlx.nn as nn
from mlx_lm.models.bitnet import MLP


class SiLUMLP(MLP):
    """``down_proj(ffn_sub_norm(silu(gate_proj(x)) * up_proj(x)))``: the same
    modules and weight names as mlx-lm's ``MLP``, another activation."""

    def __call__(self, x: mx.array) -> mx.array:
        x = nn.silu(self.gate_proj(x)) * self.up_proj(x)
        return self.down_proj(self.ffn_sub_norm(x))
