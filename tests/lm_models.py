# Copyright © 2026 mlx-lowbit contributors.
"""Tiny mlx-lm models, a byte-level tokenizer and model directories for the
mlx-lm integration tests (test_nn.py, test_lm_*.py)."""

import json
from pathlib import Path
from typing import Any, Dict

import mlx.core as mx
import mlx.nn as nn
import numpy as np

VOCAB = 260  # 256 byte tokens, <eos>, and spare rows


def llama_config(**overrides: Any) -> Dict[str, Any]:
    """A 2-layer llama whose dimensions exercise ragged N (k/v: 32, vocab: 260)
    and K = 64 / 128."""
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "rms_norm_eps": 1e-5,
        "vocab_size": VOCAB,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return config


def tiny_model(config: Dict[str, Any], seed: int = 0) -> nn.Module:
    """An mlx-lm model of the config's type, with random float32 weights."""
    from mlx_lm.utils import _get_classes

    model_class, args_class = _get_classes(config)
    mx.random.seed(seed)
    model = model_class(args_class.from_dict(config))
    mx.eval(model.parameters())
    return model


def tiny_tokenizer():
    """A byte-level BPE tokenizer with no merges (one token per byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def write_model_dir(path: Path, config: Dict[str, Any], weights: Dict[str, mx.array]) -> Path:
    """config.json + model.safetensors + tokenizer files, as on disk."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    mx.save_safetensors(str(path / "model.safetensors"), weights, metadata={"format": "mlx"})
    tiny_tokenizer().save_pretrained(str(path))
    return path


def dense_model_dir(path: Path, config: Dict[str, Any], seed: int = 0) -> Path:
    """An unquantized mlx-lm model directory."""
    from mlx.utils import tree_flatten

    model = tiny_model(config, seed)
    return write_model_dir(path, config, dict(tree_flatten(model.parameters())))


def tokens(n: int = 7, seed: int = 1) -> mx.array:
    return mx.array(np.random.default_rng(seed).integers(0, 256, size=(1, n)))
