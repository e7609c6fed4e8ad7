# Copyright © 2026 mlx-lowbit contributors.
"""Load mlx-lowbit models and existing low-bit checkpoints with mlx-lm."""

from pathlib import Path
from typing import Any, Dict, Optional, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..nn import MODE, LowBitLayer
from .affine import from_affine_layer, is_affine_one_bit
from .bitnet import from_bitlinear
from .hook import install_bitlinear


def load(
    path_or_hf_repo: Union[str, Path],
    *,
    tokenizer_config: Optional[Dict[str, Any]] = None,
    model_config: Optional[Dict[str, Any]] = None,
    lazy: bool = False,
    return_config: bool = False,
    activation_bits: Optional[int] = None,
    trust_remote_code: bool = False,
):
    """Load a model and tokenizer, with low-bit layers on mlx-lowbit's kernels.

    Handles, besides everything ``mlx_lm.load`` handles:

    - models written by :func:`mlx_lowbit.lm.convert` (per-layer
      ``"mode": "lowbit"`` entries in ``config["quantization"]``);
    - BitNet b1.58 checkpoints (``quantization_config.quant_method ==
      "bitnet"``): every mlx-lm ``BitLinear`` is repacked into the ternary
      format, with per-token int8 activations as the model was trained
      (``activation_bits=8``, recorded in each layer's config entry);
    - MLX affine 1-bit checkpoints (``bits: 1``, e.g. Bonsai): every 1-bit
      layer is converted to the binary format with biases (MLX 0.32.4 runs
      them itself too; older releases refuse ``bits=1``).

    Every low-bit layer is then checked against its config entry (array
    dtypes, shapes, codes).

    Args:
        path_or_hf_repo: A local model directory or a Hugging Face repository.
        tokenizer_config (dict, optional): Passed to mlx-lm's tokenizer loader.
        model_config (dict, optional): Overrides for config.json.
        lazy (bool): Leave the weights unevaluated. Default: ``False``.
        return_config (bool): Also return the config. Default: ``False``.
        trust_remote_code (bool): Allow a config.json ``model_file`` (a
          custom architecture in the model directory) to run, as in
          ``mlx_lm.load``. Default: ``False``.
        activation_bits (int, optional): For BitNet checkpoints: ``8`` (the
          default, W1.58A8 as trained) or ``0`` (float activations, what
          mlx-lm's own BitLinear kernel computes).

    Returns:
        ``(model, tokenizer)`` or ``(model, tokenizer, config)``.

    Raises:
        ValueError: the weights disagree with config.json; the message names
          the layer.
    """
    from mlx_lm.utils import _download, load_model, load_tokenizer

    if activation_bits not in (None, 0, 8):
        raise ValueError(
            f"[mlx_lowbit.lm.load] activation_bits must be 0 or 8, got {activation_bits!r}."
        )
    install_bitlinear()
    path = _download(str(path_or_hf_repo))  # local dirs pass through unchanged
    try:
        model, config = load_model(
            path, lazy=True, model_config=model_config, trust_remote_code=trust_remote_code
        )
    except ValueError as e:
        raise ValueError(f"[mlx_lowbit.lm.load] {path}: mlx-lm cannot build the model: {e}") from e
    replace_legacy_layers(model, 8 if activation_bits is None else activation_bits)
    check_layers(model, config, where=f"[mlx_lowbit.lm.load] {path}")
    if not lazy:
        mx.eval(model.parameters())
    tokenizer = load_tokenizer(
        path, tokenizer_config, eos_token_ids=config.get("eos_token_id", None)
    )
    return (model, tokenizer, config) if return_config else (model, tokenizer)


def replace_legacy_layers(model: nn.Module, bitnet_activation_bits: int = 8) -> int:
    """Swap mlx-lm ``BitLinear`` layers (with ``bitnet_activation_bits``) and
    MLX affine 1-bit ``QuantizedLinear`` / ``QuantizedEmbedding`` layers for
    their mlx-lowbit equivalents, in place. Returns how many were swapped.

    Raises:
        ValueError: naming the layer that cannot be converted.
    """
    from mlx_lm.models.bitlinear_layers import BitLinear

    swapped = []
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        try:
            if isinstance(module, BitLinear):
                swapped.append((path, from_bitlinear(module, bitnet_activation_bits)))
            elif is_affine_one_bit(module):
                swapped.append((path, from_affine_layer(module)))
        except ValueError as e:
            raise ValueError(f"[mlx_lowbit.lm] Layer {path!r}: {e}") from e
    if swapped:
        model.update_modules(tree_unflatten(swapped))
    return len(swapped)


def check_layers(model: nn.Module, config: Dict[str, Any], where: str = "[mlx_lowbit.lm]") -> None:
    """Check every low-bit layer's arrays against its config entry.

    ``load_weights`` checks names and shapes but not dtypes, and not the
    values a format never writes (ternary code 3).

    Raises:
        ValueError: naming the layer and what disagrees.
    """
    entries = config.get("quantization") or {}
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if not isinstance(module, LowBitLayer):
            continue
        try:
            qw = module.qweight  # validates arrays against the metadata
            qw.check_codes()
            entry = entries.get(path)
            if isinstance(entry, dict) and entry.get("mode") == MODE:
                _check_entry(module, entry)
        except ValueError as e:
            raise ValueError(f"{where}: layer {path!r}: {e}") from e


def _check_entry(module: LowBitLayer, entry: Dict[str, Any]) -> None:
    actual = module.quantization_config()
    for key, expected in entry.items():
        if key in actual and actual[key] != expected:
            raise ValueError(
                f"config.json says {key}={expected!r} but the weights hold {key}={actual[key]!r}."
            )
