# Copyright © 2026 mlx-lowbit contributors.
"""LoRA adapters on frozen low-bit layers.

mlx-lm's ``linear_to_lora_layers`` recognises only ``nn.Linear`` and
``nn.QuantizedLinear``, so it leaves ``LowBitLinear`` layers alone.
:func:`apply_lora` wraps them instead. The base weight stays frozen in its
low-bit format; gradients reach the adapters through ``LowBitMatmul``'s
gradient with respect to x. The result trains with mlx-lm's trainer
(``mlx_lm.tuner.trainer.train``) or any MLX optimizer loop.
"""

import math
from typing import Callable, Optional, Sequence

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from .nn import LowBitLinear, dense_weight, quantizer_options


class LoRALowBitLinear(nn.Module):
    """``base(x) + scale * dropout(x) @ A @ B`` with ``base`` a frozen
    :class:`~mlx_lowbit.nn.LowBitLinear`. A starts random and B at zero, so
    the wrapped layer starts out equal to the base (as in mlx-lm's LoRA)."""

    @classmethod
    def from_base(
        cls, base: LowBitLinear, r: int = 8, dropout: float = 0.0, scale: float = 20.0
    ) -> "LoRALowBitLinear":
        output_dims, input_dims = base.qweight.shape
        layer = cls(input_dims, output_dims, r=r, dropout=dropout, scale=scale)
        layer.base = base
        return layer

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        r: int = 8,
        dropout: float = 0.0,
        scale: float = 20.0,
    ):
        super().__init__()
        if r < 1:
            raise ValueError(f"[LoRALowBitLinear] The rank r must be >= 1, got {r}.")
        self.dropout = nn.Dropout(p=dropout)
        self.scale = scale
        bound = 1.0 / math.sqrt(input_dims)
        self.lora_a = mx.random.uniform(-bound, bound, (input_dims, r))
        self.lora_b = mx.zeros((r, output_dims))

    def __call__(self, x: mx.array) -> mx.array:
        y = self.base(x)
        z = (self.dropout(x) @ self.lora_a.astype(x.dtype)) @ self.lora_b.astype(x.dtype)
        return y + (self.scale * z).astype(y.dtype)

    def fuse(self, dtype: mx.Dtype = mx.float16, dequantize: bool = True) -> nn.Module:
        """A dense ``nn.Linear`` holding the base weight plus the adapter.

        With ``dequantize=False`` (what ``mlx_lm fuse`` asks for unless given
        ``--dequantize``) the sum goes back into the base's format, group
        size, options and rotation (round to nearest, which rounds the
        adapter's change too), so the layer keeps its config.json entry.
        Default: ``True``, the exact dense layer."""
        weight = dense_weight(self.base) + self.scale * (self.lora_a @ self.lora_b).T
        bias = "bias" in self.base
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
        linear.weight = weight.astype(dtype)
        if bias:
            linear.bias = self.base.bias.astype(dtype)
        if dequantize:
            return linear
        entry = self.base.quantization_config()
        fmt, group_size = entry.pop("fmt"), entry.pop("group_size")
        for key in ("mode", "rotation"):
            entry.pop(key, None)
        return LowBitLinear.from_linear(
            linear,
            fmt,
            group_size,
            scale_dtype=entry.pop("scale_dtype"),
            activation_bits=entry.pop("activation_bits", 0),
            rotation=self.base.rotation,
            **quantizer_options(fmt, **entry),
        )


def apply_lora(
    model: nn.Module,
    r: int = 8,
    scale: float = 20.0,
    dropout: float = 0.0,
    keys: Optional[Sequence[str]] = None,
    predicate: Optional[Callable[[str, nn.Module], bool]] = None,
) -> int:
    """Freeze ``model`` and wrap its ``LowBitLinear`` layers with trainable
    LoRA adapters, in place.

    Args:
        model (nn.Module): A model holding ``LowBitLinear`` layers.
        r, scale, dropout: Rank, output scale and input dropout of the adapters.
        keys (sequence of str, optional): Only layers whose path ends with one
          of these (e.g. ``["self_attn.q_proj", "self_attn.v_proj"]``).
        predicate (callable, optional): ``(path, module) -> bool`` for any
          other selection.

    Returns:
        int: how many layers were wrapped.

    Raises:
        ValueError: no layer matched.
    """
    model.freeze()
    modules = model.named_modules()
    # A second call must not wrap the bases of the first call's adapters.
    bases = {id(m.base) for _, m in modules if isinstance(m, LoRALowBitLinear)}
    wrapped = []
    for path, module in modules:
        if not isinstance(module, LowBitLinear) or id(module) in bases:
            continue
        if keys is not None and not any(path.endswith(k) for k in keys):
            continue
        if predicate is not None and not predicate(path, module):
            continue
        wrapped.append(
            (path, LoRALowBitLinear.from_base(module, r=r, dropout=dropout, scale=scale))
        )
    if not wrapped:
        raise ValueError(
            "[apply_lora] No LowBitLinear layer matched; quantize the model first "
            "(mlx_lowbit.nn.quantize) or check keys/predicate."
        )
    model.update_modules(tree_unflatten(wrapped))
    # Only adapters train, this call's and any earlier call's.
    for _, m in model.named_modules():
        if isinstance(m, LoRALowBitLinear):
            m.freeze()
            m.unfreeze(keys=["lora_a", "lora_b"], recurse=False)
    return len(wrapped)
