# Copyright © 2026 mlx-lowbit contributors.
"""MLX affine 1-bit layers (``bits: 1``, e.g. the Bonsai family) on the
binary format.

An affine 1-bit weight is ``a * b + c`` with ``b`` in {0, 1}, its bits packed
32 per uint32 along K, LSB first: the bits of our binary format. With
``s = 2 * b - 1`` it is ``(a / 2) * s + (c + a / 2)``, so the codes stay and
only the scales and biases change (docs/FORMATS.md).
"""

from typing import Union

import mlx.core as mx
import mlx.nn as nn

from ..nn import LowBitEmbedding, LowBitLinear
from ..quantized_weight import QuantizedWeight


def _fp16_exact(a: mx.array) -> bool:
    return bool(mx.array_equal(a.astype(mx.float16).astype(mx.float32), a).item())


def binary_from_affine(
    weight: mx.array, scales: mx.array, biases: mx.array, group_size: int
) -> QuantizedWeight:
    """The binary-with-biases weight equal to an MLX affine 1-bit weight.

    The new scales ``a / 2`` and biases ``c + a / 2`` are computed in float32
    and stored as float16 when float16 holds them exactly (as for Bonsai,
    whose biases are ``-a / 2``, so ours are 0), as float32 otherwise.

    Args:
        weight (mx.array): uint32 codes, shape (N, K / 32).
        scales (mx.array): ``a``, shape (N, K / group_size).
        biases (mx.array): ``c``, same shape.
        group_size (int): Weights per scale.

    Raises:
        ValueError: arrays that do not form a valid 1-bit weight.
    """
    half = scales.astype(mx.float32) * 0.5
    offset = biases.astype(mx.float32) + half
    if _fp16_exact(half) and _fp16_exact(offset):
        half, offset = half.astype(mx.float16), offset.astype(mx.float16)
    return QuantizedWeight("binary", group_size, weight, half, offset)


def is_affine_one_bit(module: nn.Module) -> bool:
    return (
        isinstance(module, (nn.QuantizedLinear, nn.QuantizedEmbedding))
        and module.mode == "affine"
        and module.bits == 1
    )


def from_affine_layer(
    module: Union[nn.QuantizedLinear, nn.QuantizedEmbedding],
) -> Union[LowBitLinear, LowBitEmbedding]:
    """The binary :class:`LowBitLinear` / :class:`LowBitEmbedding` equal to an
    MLX affine 1-bit ``QuantizedLinear`` / ``QuantizedEmbedding``."""
    qw = binary_from_affine(module.weight, module.scales, module.biases, module.group_size)
    if isinstance(module, nn.QuantizedEmbedding):
        # Lookups in the checkpoint's dtype (bfloat16 for Bonsai), whichever
        # dtype holds the scales exactly.
        source = module.scales.dtype
        return LowBitEmbedding.from_qweight(qw, None if source == qw.scales.dtype else source)
    return LowBitLinear.from_qweight(qw, module.get("bias"))
