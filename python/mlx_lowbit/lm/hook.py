# Copyright © 2026 mlx-lowbit contributors.
"""Teach ``nn.Linear.to_quantized`` and ``nn.Embedding.to_quantized`` our
layers, so that plain ``mlx_lm.load`` rebuilds mlx-lowbit models.

mlx-lm's loader hands each per-layer entry of ``config["quantization"]`` to
the layer's ``to_quantized``. After :func:`install` (run by
``import mlx_lowbit``):

``mode="lowbit"`` (the entries :func:`mlx_lowbit.lm.convert` writes) gives
a :class:`~mlx_lowbit.nn.LowBitLinear` / ``LowBitEmbedding`` (and, once
mlx-lm has loaded its switch layers, a ``LowBitSwitchLinear`` for a
``SwitchLinear``), quantized from
the layer's weight (an entry's ``rotation`` gives it a rotation whose signs
the checkpoint's ``rotation_seed`` or ``rotation_signs`` tensor fills in);
every other mode goes
to MLX's own method unchanged.
The quantization is lazy, as MLX's own ``to_quantized`` is: a loader that
replaces the arrays with a checkpoint's before using them (mlx-lm's
``load_model``) never runs the quantizer on the placeholder weights.
"""

import functools
import sys
from typing import Any, Callable, Optional

import mlx.nn as nn

from ..nn import MODE, LowBitEmbedding, LowBitLinear, LowBitSwitchLinear, quantizer_options
from ..rotation import Rotation

_ORIGINAL = "_mlx_lowbit_original"
DEFAULT_GROUP_SIZE = 128  # as mlx_lowbit.quantize


def _lowbit_args(group_size: Optional[int], bits: Optional[int], kwargs: dict):
    """(fmt, group_size) of a ``mode="lowbit"`` call; ``fmt`` is taken out
    of ``kwargs``."""
    if bits is not None:
        raise ValueError(
            f"[to_quantized] mode={MODE!r} takes fmt= (ternary, binary, codebook), not bits={bits}."
        )
    if "fmt" not in kwargs:
        raise ValueError(f"[to_quantized] mode={MODE!r} needs fmt= (ternary, binary or codebook).")
    return kwargs.pop("fmt"), group_size or DEFAULT_GROUP_SIZE


def _linear_to_quantized(original: Callable) -> Callable:
    @functools.wraps(original)
    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs: Any,
    ):
        if mode == MODE:
            fmt, group_size = _lowbit_args(group_size, bits, kwargs)
            return LowBitLinear.from_linear(
                self,
                fmt,
                group_size,
                lazy=True,
                rotation=_rotation(kwargs, self.weight.shape[1]),
                **quantizer_options(fmt, **kwargs),
            )
        return original(self, group_size, bits, mode=mode, **kwargs)

    return to_quantized


def _rotation(kwargs: dict, k: int) -> Optional[Rotation]:
    """The entry's ``rotation`` (taken out of ``kwargs``), with placeholder
    signs: the checkpoint's ``rotation_seed`` (or ``rotation_signs``) replace
    them, and a strict ``load_weights`` refuses a checkpoint that lacks it."""
    config = kwargs.pop("rotation", None)
    return None if config is None else Rotation.from_config(config, k)


def _embedding_to_quantized(original: Callable) -> Callable:
    @functools.wraps(original)
    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs: Any,
    ):
        if mode == MODE:
            fmt, group_size = _lowbit_args(group_size, bits, kwargs)
            # The entry says the lookups' dtype (absent: the scales'); the
            # placeholder embedding mlx-lm builds says nothing.
            output_dtype = kwargs.pop("output_dtype", None)
            return LowBitEmbedding.from_embedding(
                self,
                fmt,
                group_size,
                lazy=True,
                output_dtype=output_dtype,
                **quantizer_options(fmt, **kwargs),
            )
        return original(self, group_size, bits, mode=mode, **kwargs)

    return to_quantized


def _bitlinear_to_quantized(
    self,
    group_size: Optional[int] = None,
    bits: Optional[int] = None,
    mode: str = "affine",
    **kwargs: Any,
):
    """mlx-lm's BitLinear has no ``to_quantized``; mlx-lm's own ``bitnet``
    architecture builds its projections as BitLinear, so a converted BitNet
    model needs one to be rebuilt."""
    from .bitnet import from_bitlinear

    if mode != MODE:
        raise ValueError(f"[to_quantized] A BitLinear converts only to mode={MODE!r}.")
    fmt, group_size = _lowbit_args(group_size, bits, kwargs)
    linear = from_bitlinear(self)
    return LowBitLinear.from_linear(
        linear,
        fmt,
        group_size,
        lazy=True,
        rotation=_rotation(kwargs, linear.qweight.shape[1]),
        **quantizer_options(fmt, **kwargs),
    )


def _switch_to_quantized(original: Callable) -> Callable:
    """mlx-lm's ``SwitchLinear.to_quantized`` (MoE experts), taught
    ``mode="lowbit"``."""

    @functools.wraps(original)
    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        **kwargs: Any,
    ):
        if mode == MODE:
            fmt, group_size = _lowbit_args(group_size, bits, kwargs)
            return LowBitSwitchLinear.from_switch_linear(
                self, fmt, group_size, lazy=True, **quantizer_options(fmt, **kwargs)
            )
        # mlx-lm's own signature has explicit defaults (group_size=64, bits=4).
        args = {k: v for k, v in (("group_size", group_size), ("bits", bits)) if v is not None}
        return original(self, mode=mode, **args, **kwargs)

    return to_quantized


def _dequantize_model(original: Callable) -> Callable:
    """mlx-lm's ``dequantize_model`` (``mlx_lm convert --dequantize``) knows
    MLX's quantized layers only: ours become ``nn.Linear`` / ``nn.Embedding``
    first (dequantized and unrotated, in their scales' dtype)."""

    @functools.wraps(original)
    def dequantize_model(model: nn.Module) -> nn.Module:
        from mlx.utils import tree_flatten, tree_unflatten

        dense = []
        for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
            if isinstance(module, LowBitLinear):
                dense.append((path, module.to_linear()))
            elif isinstance(module, LowBitEmbedding):
                dense.append((path, module.to_embedding()))
            elif isinstance(module, LowBitSwitchLinear):
                dense.append((path, module.to_switch_linear()))
        if dense:
            model.update_modules(tree_unflatten(dense))
        return original(model)

    return dequantize_model


def install() -> None:
    """Wrap the two ``to_quantized`` methods (once; calling again is a no-op),
    give mlx-lm's BitLinear one if mlx-lm has loaded it, and teach mlx-lm's
    ``dequantize_model`` our layers if mlx-lm's utils are loaded."""
    for cls, wrap in ((nn.Linear, _linear_to_quantized), (nn.Embedding, _embedding_to_quantized)):
        if not hasattr(cls.to_quantized, _ORIGINAL):
            wrapped = wrap(cls.to_quantized)
            setattr(wrapped, _ORIGINAL, cls.to_quantized)
            cls.to_quantized = wrapped
    from .. import distributed

    distributed.install()  # shard_linear / shard_inplace learn our layers
    switch = sys.modules.get("mlx_lm.models.switch_layers")
    if switch is not None and not hasattr(switch.SwitchLinear.to_quantized, _ORIGINAL):
        wrapped = _switch_to_quantized(switch.SwitchLinear.to_quantized)
        setattr(wrapped, _ORIGINAL, switch.SwitchLinear.to_quantized)
        switch.SwitchLinear.to_quantized = wrapped
    bitlinear = sys.modules.get("mlx_lm.models.bitlinear_layers")
    if bitlinear is not None:
        bitlinear.BitLinear.to_quantized = _bitlinear_to_quantized
    utils = sys.modules.get("mlx_lm.utils")
    if utils is not None and not hasattr(utils.dequantize_model, _ORIGINAL):
        wrapped = _dequantize_model(utils.dequantize_model)
        setattr(wrapped, _ORIGINAL, utils.dequantize_model)
        utils.dequantize_model = wrapped


def install_bitlinear() -> None:
    """Give mlx-lm's BitLinear a ``to_quantized`` and teach its switch
    (expert) layers ours (imports mlx-lm)."""
    import mlx_lm.models.bitlinear_layers  # noqa: F401
    import mlx_lm.models.switch_layers  # noqa: F401

    install()
