# Copyright © 2026 mlx-lowbit contributors.
"""Load mlx-lowbit models and existing low-bit checkpoints with mlx-lm."""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from .._checks import check_activation_bits, check_bool, check_int, check_str
from ..nn import MODE, LowBitLayer
from ..quantized_weight import read_safetensors_header
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
    check_values: bool = True,
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
        check_values (bool): Scan every low-bit layer's values (ternary code
          3, NaN or Inf scales and biases); ``False`` skips that read of the
          weights, for speed. Default: ``True``.

    Returns:
        ``(model, tokenizer)`` or ``(model, tokenizer, config)``.

    Raises:
        FileNotFoundError: a local path (not a Hub repository id) that does
          not exist.
        ValueError: config.json or a safetensors file is damaged, or the
          weights disagree with config.json; the message names the file, the
          layer and the field (docs/MLX_LM.md, "Bad input").
    """
    from mlx_lm.utils import _download, load_model, load_tokenizer

    if activation_bits is not None:
        check_activation_bits(activation_bits, "mlx_lowbit.lm.load")
    install_bitlinear()
    path = Path(_download(str(local_or_repo(path_or_hf_repo))))  # local dirs pass unchanged
    check_model_dir(path)
    where = f"[mlx_lowbit.lm.load] {path}"
    try:
        model, config = load_model(
            path, lazy=True, model_config=model_config, trust_remote_code=trust_remote_code
        )
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        # mlx-lm's own messages name neither the directory nor, for a
        # KeyError, the problem.
        raise ValueError(f"{where}: mlx-lm cannot build the model: {e!r}") from e
    replace_legacy_layers(model, 8 if activation_bits is None else activation_bits)
    check_layers(model, config, where=where, check_values=check_values)
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


def local_or_repo(path: Union[str, Path]) -> Union[str, Path]:
    """``path`` unchanged if it exists or reads as a Hub repository id
    (``owner/name``); otherwise FileNotFoundError, rather than asking the
    Hub for a local path that was mistyped."""
    text = str(path)
    if Path(text).exists():
        return path
    parts = text.split("/")
    if isinstance(path, str) and len(parts) == 2 and all(parts) and not text.startswith("."):
        return path
    raise FileNotFoundError(f"[mlx_lowbit.lm] {text}: no such file or directory.")


def _entry_error(config_path: Path, layer: str, field: str, problem: str) -> ValueError:
    return ValueError(f"[mlx_lowbit.lm.load] {config_path}: layer {layer!r}: {field} {problem}")


def check_config(config_path: Path) -> Dict[str, Any]:
    """config.json read and its ``quantization`` entries checked field by
    field, before mlx-lm builds anything (its errors name neither the file
    nor the field: an ``AttributeError`` for a config that is not an object,
    a ``TypeError`` about ``fmt`` for a mistyped mode)."""
    try:
        config = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"[mlx_lowbit.lm.load] {config_path}: not valid JSON ({e}).") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"[mlx_lowbit.lm.load] {config_path}: must hold a JSON object, "
            f"got {type(config).__name__}."
        )
    quantization = config.get("quantization")
    if quantization is None:
        qc = config.get("quantization_config")
        if isinstance(qc, dict) and any(
            isinstance(v, dict) and v.get("mode") == MODE for v in qc.values()
        ):
            raise ValueError(
                f"[mlx_lowbit.lm.load] {config_path}: 'quantization' is missing, but "
                f"'quantization_config' holds {MODE!r} layers: the file is damaged."
            )
        return config
    if not isinstance(quantization, dict):
        raise ValueError(
            f"[mlx_lowbit.lm.load] {config_path}: 'quantization' must be an object, "
            f"got {type(quantization).__name__}."
        )
    for layer, entry in quantization.items():
        if not isinstance(entry, dict):
            continue  # top-level group_size / bits / mode, or a bool per layer
        if entry.get("mode") != MODE:
            if "fmt" in entry:
                raise _entry_error(
                    config_path,
                    layer,
                    "mode",
                    f"is {entry.get('mode')!r}; an entry with 'fmt' must have mode {MODE!r}.",
                )
            continue
        _check_lowbit_entry(config_path, layer, entry)
    return config


def _check_lowbit_entry(config_path: Path, layer: str, entry: Dict[str, Any]) -> None:
    from ..ops import FORMAT_OPTIONS

    fmt = entry.get("fmt")
    if fmt not in FORMAT_OPTIONS:
        raise _entry_error(
            config_path, layer, "fmt", f"is {fmt!r}; expected one of {', '.join(FORMAT_OPTIONS)}."
        )
    checks = {
        "group_size": lambda v, w: check_int(v, "group_size", w, 1),
        "vector_size": lambda v, w: check_int(v, "vector_size", w, 0),
        "index_bits": lambda v, w: check_int(v, "index_bits", w, 0),
        "biases": lambda v, w: check_bool(v, "biases", w),
        "scale_dtype": lambda v, w: check_str(v, "scale_dtype", w),
        "output_dtype": lambda v, w: check_str(v, "output_dtype", w),
        "activation_bits": check_activation_bits,
    }
    for field, check in checks.items():
        if field in entry:
            try:
                check(entry[field], "config.json")
            except ValueError as e:
                problem = str(e).split("] ", 1)[-1]  # without check_*'s "[config.json]"
                raise _entry_error(config_path, layer, field, f"is invalid: {problem}") from None


def check_model_dir(path: Path) -> None:
    """config.json and every safetensors header of a local model directory
    checked (names the file) before any reader touches them."""
    if not path.is_dir():
        raise ValueError(f"[mlx_lowbit.lm.load] {path}: not a model directory.")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ValueError(f"[mlx_lowbit.lm.load] {path}: no config.json.")
    check_config(config_path)
    for f in sorted(path.glob("*.safetensors")):
        read_safetensors_header(f)


def check_layers(
    model: nn.Module,
    config: Dict[str, Any],
    where: str = "[mlx_lowbit.lm]",
    check_values: bool = True,
) -> None:
    """Check every low-bit layer's arrays against its config entry.

    ``load_weights`` checks names and shapes but not dtypes, and not the
    values a format never writes (ternary code 3) or that turn every output
    into NaN (NaN or Inf scales and biases); ``check_values=False`` skips
    the values.

    Raises:
        ValueError: naming the layer and what disagrees.
    """
    entries = config.get("quantization") or {}
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if not isinstance(module, LowBitLayer):
            continue
        try:
            qw = module.qweight  # validates arrays against the metadata
            if check_values:
                qw.check_values()
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
