# Copyright © 2026 mlx-lowbit contributors.
"""Model statistics, counted one way for convert, the demo and the reports:
the weights a model represents and the bytes it stores."""

from typing import List, Optional, Tuple

import mlx.nn as nn
from mlx.utils import tree_flatten

from .nn import LowBitLayer

# Layers whose stored arrays are not one parameter per weight.
QUANTIZED_LAYERS = (LowBitLayer, nn.QuantizedLinear, nn.QuantizedEmbedding)


def _leaf_modules(model: nn.Module) -> List[nn.Module]:
    return [m for _, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)]


def weight_shape(module: nn.Module) -> Tuple[int, int]:
    """The (out, in) shape of the matrix a quantized layer represents. MLX's
    quantized layers pack ``32 // bits`` weights per uint32 word along ``in``."""
    if isinstance(module, LowBitLayer):
        *experts, n, k = module.qweight.shape
        return n * (experts[0] if experts else 1), k  # experts stacked along out
    n, words = module.weight.shape
    return n, words * 32 // module.bits


def parameter_count(model: nn.Module) -> int:
    """Weights the model represents: N * K for every (quantized) matrix, not
    the number of stored words."""
    total = 0
    for m in _leaf_modules(model):
        if isinstance(m, QUANTIZED_LAYERS):
            n, k = weight_shape(m)
            total += n * k + (m["bias"].size if "bias" in m else 0)
        else:
            total += sum(v.size for _, v in tree_flatten(m.parameters()))
    return total


def model_bytes(model: nn.Module) -> int:
    """Every stored byte of the model's parameters."""
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))


def layer_bits(model: nn.Module) -> Optional[float]:
    """Stored bits per weight of the quantized linear layers and embeddings
    alone (codes, scales, biases, codebook, rotation signs; no bias vector);
    None when the model has none."""
    stored, weights = 0, 0
    for m in _leaf_modules(model):
        if isinstance(m, LowBitLayer):
            stored += m.nbytes
        elif isinstance(m, nn.QuantizedLinear):
            stored += sum(m[k].nbytes for k in ("weight", "scales", "biases"))
        else:
            continue
        n, k = weight_shape(m)
        weights += n * k
    return 8 * stored / weights if weights else None
