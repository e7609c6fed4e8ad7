# Copyright © 2026 mlx-lowbit contributors.
"""mlx-lm's dense families beyond llama through the generic path: a tiny
synthetic model of each converts, loads with our loader and with plain
mlx_lm.load to the same logits, and its low-bit layers match the dense
reference (dequantized weights) to fp32 rounding."""

import copy

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import assert_close
from lm_models import dense_model_dir, llama_config, tokens
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lowbit as lb

# llama_config's dimensions, with the fields these families read.
COMMON = {"max_position_embeddings": 256, "rope_theta": 10000.0}
FAMILIES = {
    "qwen2": {"tie_word_embeddings": True},
    "qwen3": {"head_dim": 32, "tie_word_embeddings": False},
    "mistral": {"tie_word_embeddings": False},
    "gemma": {"head_dim": 32},
    "phi3": {"num_key_value_heads": 2, "tie_word_embeddings": False},
    "starcoder2": {"norm_epsilon": 1e-5, "tie_word_embeddings": True},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_converts_and_loads(family, tmp_path):
    from mlx_lm import load as mlx_lm_load

    config = llama_config(model_type=family, **COMMON, **FAMILIES[family])
    src = dense_model_dir(tmp_path / "dense", config)
    out = lb.lm.convert(src, tmp_path / "ternary", "ternary", 32, dtype=mx.float32)
    ours, _ = lb.lm.load(out)
    theirs, _ = mlx_lm_load(str(out))
    modules = tree_flatten(ours.leaf_modules(), is_leaf=nn.Module.is_module)
    lowbit = [(p, m) for p, m in modules if isinstance(m, lb.nn.LowBitLinear)]
    dense_left = [p for p, m in modules if isinstance(m, nn.Linear)]
    assert len(lowbit) >= 4 * config["num_hidden_layers"]  # phi3 fuses qkv and gate/up
    assert dense_left in ([], ["lm_head"])  # every projection but the head
    x = tokens()
    with mx.stream(mx.cpu):
        assert mx.array_equal(ours(x), theirs(x))
        # The reference: the same model with each low-bit layer dequantized.
        dense = copy.deepcopy(ours)
        dense.update_modules(tree_unflatten([(p, m.to_linear(mx.float32)) for p, m in lowbit]))
        assert_close(ours(x), np.asarray(dense(x), dtype=np.float64), mx.float32, what=family)
