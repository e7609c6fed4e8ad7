# Copyright © 2026 mlx-lowbit contributors.
"""BitNet b1.58 checkpoints, as mlx-lm loads them, on the ternary format.

mlx-lm keeps a BitNet projection (``mlx_lm.models.bitlinear_layers.BitLinear``)
as uint8 ``weight`` of shape (ceil(N / 4), K): byte ``[r, k]`` holds, in bits
``2s, 2s + 1``, the code of output row ``s * ceil(N / 4) + r`` (s = 0..3), and
the value is ``code - 1``. One per-tensor ``weight_scale`` divides the product
(``invert_weight_scales``) or multiplies it. We unpack the codes once, pack
them in our ternary layout, and turn the per-tensor scale into one scale per
row (group_size = K).
"""

from typing import Any

import mlx.core as mx
import numpy as np

from .. import _ext
from ..nn import LowBitLinear
from ..quantized_weight import QuantizedWeight

_ROWS_PER_BYTE = 4


def bitnet_codes(packed: np.ndarray, out_features: int) -> np.ndarray:
    """The (N, K) int8 values in {-1, 0, 1} of a BitNet uint8 weight.

    Raises:
        ValueError: a code of 3, which BitNet never writes.
    """
    rows, k = packed.shape
    shifts = (2 * np.arange(_ROWS_PER_BYTE, dtype=np.uint8))[:, None, None]
    codes = ((packed[None] >> shifts) & 3).reshape(_ROWS_PER_BYTE * rows, k)[:out_features]
    if np.any(codes == 3):
        raise ValueError("The BitNet weight contains the invalid code 3.")
    return codes.astype(np.int8) - 1


def ternary_from_bitlinear(layer: Any) -> QuantizedWeight:
    """The ternary weight (one scale per row) equal to an mlx-lm ``BitLinear``.

    The scale is computed in float32 as mlx-lm's kernel does
    (``1 / weight_scale`` or ``weight_scale``) and stored as float16 only if
    float16 holds it exactly.

    Raises:
        ValueError: a malformed layer (wrong dtype or shape, code 3, a scale
          that is not one positive finite number).
    """
    packed = np.asarray(layer.weight)
    n, k = layer.out_features, layer.in_features
    if packed.dtype != np.uint8 or packed.shape != (-(-n // _ROWS_PER_BYTE), k):
        raise ValueError(
            f"BitNet weight must be uint8 of shape ({-(-n // _ROWS_PER_BYTE)}, {k}), "
            f"got {packed.dtype} {packed.shape}."
        )
    ws = np.asarray(layer.weight_scale.astype(mx.float32)).reshape(-1)
    if ws.size != 1 or not np.isfinite(ws[0]) or ws[0] <= 0:
        raise ValueError(f"weight_scale must be one positive number, got {ws.tolist()}.")
    scale = np.float32(1.0) / ws[0] if layer.invert_weight_scales else ws[0]
    return per_tensor_ternary(bitnet_codes(packed, n), scale)


def per_tensor_ternary(t: np.ndarray, scale: np.float32) -> QuantizedWeight:
    """``t * scale`` (t: (N, K) int8 in {-1, 0, 1}, one float32 scale) as
    our ternary format with one scale per row (group_size = K), stored as
    float16 only if float16 holds the scale exactly, else as float32: the
    same values, bit for bit."""
    n, k = t.shape
    with np.errstate(over="ignore"):  # a scale beyond float16's range stays float32
        exact_in_fp16 = np.float32(np.float16(scale)) == scale
    return QuantizedWeight(
        fmt="ternary",
        group_size=k,
        packed=_ext.pack_ternary(mx.array(t)),
        scales=mx.array(np.full((n, 1), scale, dtype=np.float16 if exact_in_fp16 else np.float32)),
    )


def from_bitlinear(layer: Any, activation_bits: int = 0) -> LowBitLinear:
    """A :class:`LowBitLinear` holding an mlx-lm ``BitLinear``'s weight.
    ``activation_bits=0`` computes what mlx-lm's kernel computes (float
    activations); ``8`` rounds them per token to int8, as BitNet b1.58 was
    trained (W1.58A8)."""
    return LowBitLinear.from_qweight(
        ternary_from_bitlinear(layer), layer.get("bias"), activation_bits
    )
