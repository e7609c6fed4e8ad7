# Copyright © 2026 mlx-lowbit contributors.
"""Mixture-of-experts models built from mlx-lm's own classes (qwen3_moe and
mixtral, 4 experts, top-2): nn.quantize turns their SwitchLinear experts
into LowBitSwitchLinear and leaves the router alone; the outputs equal the
same model with dequantized expert weights; convert writes config entries
that our loader and plain mlx_lm.load rebuild."""

import copy
import json
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import assert_close
from lm_models import VOCAB, dense_model_dir, tiny_model, tokens
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lowbit as lb
from mlx_lowbit.nn import LowBitLinear, LowBitSwitchLinear

COMMON = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "rms_norm_eps": 1e-5,
    "vocab_size": VOCAB,
    "tie_word_embeddings": False,
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
}
MODELS = {
    "qwen3_moe": {
        "model_type": "qwen3_moe",
        "intermediate_size": 128,
        "moe_intermediate_size": 96,  # down_proj's K: 3 groups of 32
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "head_dim": 32,
        "norm_topk_prob": True,
    },
    "mixtral": {
        "model_type": "mixtral",
        "intermediate_size": 96,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    },
}
ROUTER = {"qwen3_moe": "mlp.gate", "mixtral": "block_sparse_moe.gate"}
EXPERTS = {"qwen3_moe": "mlp.switch_mlp", "mixtral": "block_sparse_moe.switch_mlp"}


def config_of(name):
    return {**COMMON, **MODELS[name]}


def dequantized(model):
    """The same model with every low-bit layer as its dense float32 twin."""
    dense = copy.deepcopy(model)
    swaps = []
    for path, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(m, LowBitSwitchLinear):
            swaps.append((path, m.to_switch_linear(mx.float32)))
        elif isinstance(m, LowBitLinear):
            swaps.append((path, m.to_linear(mx.float32)))
    dense.update_modules(tree_unflatten(swaps))
    return dense


def layers_of(model, cls):
    return [
        p
        for p, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
        if isinstance(m, cls)
    ]


# 7 tokens: 14 routed rows, mlx-lm's unsorted path; 40 tokens: 80 >= 64, its
# sorted path (rows gathered in expert order, sorted_indices=True).
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize(
    "fmt,opts",
    [
        ("ternary", {}),
        ("binary", {"biases": True}),
        ("codebook", {"vector_size": 8, "index_bits": 5}),
    ],
    ids=["ternary", "binary", "codebook"],
)
def test_quantized_moe_matches_dequantized(name, fmt, opts):
    model = tiny_model(config_of(name))
    lb.nn.quantize(model, fmt, 32, **opts)
    switch = layers_of(model, LowBitSwitchLinear)
    assert len(switch) == 3 * COMMON["num_hidden_layers"]  # gate, up, down per layer
    routers = [p for p in layers_of(model, nn.Linear) if p.endswith(ROUTER[name])]
    assert len(routers) == COMMON["num_hidden_layers"]  # the router stays float
    dense = dequantized(model)
    with mx.stream(mx.cpu):
        for n in (7, 40):
            x = tokens(n)
            assert_close(model(x), np.asarray(dense(x), dtype=np.float64), mx.float32, f"{n}")


def test_recipe_and_router_choice():
    # A per-layer dict gives the experts of layer 1 another format; a
    # predicate may quantize the router too, or keep every expert float.
    model = tiny_model(config_of("qwen3_moe"))

    def recipe(path, module):
        if path.endswith("mlp.gate"):
            return {"fmt": "binary"}
        if path.startswith("model.layers.1.mlp.switch_mlp.") and path.endswith("_proj"):
            return {"fmt": "codebook", "vector_size": 8, "index_bits": 4}
        return lb.nn._default_predicate(path, module)

    lb.nn.quantize(model, "ternary", 32, class_predicate=recipe)
    layer1 = model.model.layers[1].mlp
    assert layer1.switch_mlp.up_proj.fmt == "codebook"
    assert model.model.layers[0].mlp.switch_mlp.up_proj.fmt == "ternary"
    assert isinstance(layer1.gate, LowBitLinear) and layer1.gate.fmt == "binary"
    with pytest.raises(ValueError, match="switch_mlp.up_proj.*activation_bits"):
        lb.nn.quantize(
            tiny_model(config_of("qwen3_moe")),
            class_predicate=lambda p, m: {"activation_bits": 8} if p.endswith("up_proj") else False,
        )


def test_mlx_affine_experts_convert():
    # QuantizedSwitchLinear (MLX 4-bit experts) is dequantized, then ours.
    model = tiny_model(config_of("mixtral"))
    nn.quantize(model, 32, 4, class_predicate=lambda p, m: "switch_mlp" in p and p.endswith("proj"))
    assert (
        len(layers_of(model, nn.Module))
        and "scales" in model.model.layers[0].block_sparse_moe.switch_mlp.up_proj
    )
    lb.nn.quantize(model, "ternary", 32)
    assert len(layers_of(model, LowBitSwitchLinear)) == 6


@pytest.mark.parametrize("name", sorted(MODELS))
def test_convert_and_load(name, tmp_path):
    from mlx_lm import load as mlx_lm_load

    src = dense_model_dir(tmp_path / "dense", config_of(name))
    out = lb.lm.convert(src, tmp_path / "low", "ternary", 32, dtype=mx.float32)
    config = json.loads((out / "config.json").read_text())
    entry = config["quantization"][f"model.layers.0.{EXPERTS[name]}.up_proj"]
    assert entry["mode"] == "lowbit" and entry["fmt"] == "ternary"
    assert "model.layers.0." + ROUTER[name] not in config["quantization"]
    ours, _ = lb.lm.load(out)
    theirs, _ = mlx_lm_load(str(out))
    assert len(layers_of(theirs, LowBitSwitchLinear)) == 6
    x = tokens(9)
    with mx.stream(mx.cpu):
        ref = ours(x)
        assert mx.array_equal(ref, theirs(x))
        assert_close(ref, np.asarray(dequantized(ours)(x), dtype=np.float64), mx.float32)
    # mlx-lm's convert --dequantize path turns ours back into SwitchLinear.
    from mlx_lm.utils import dequantize_model

    dense = dequantize_model(ours)
    assert not layers_of(dense, LowBitSwitchLinear)


def test_plain_mlx_lm_load_in_a_fresh_process(tmp_path):
    # Without importing mlx_lowbit: the autoload hook must catch mlx-lm's
    # switch_layers import (it happens only when the model class is built).
    src = dense_model_dir(tmp_path / "dense", config_of("qwen3_moe"))
    out = lb.lm.convert(src, tmp_path / "low", "binary", 32, dtype=mx.float32)
    code = (
        "import sys, mlx.core as mx, numpy as np, mlx_lm\n"
        f"model, _ = mlx_lm.load({str(out)!r})\n"
        "assert 'mlx_lowbit' in sys.modules\n"
        f"x = mx.array(np.asarray({np.asarray(tokens(5)).tolist()}))\n"
        "with mx.stream(mx.cpu):\n"
        "    np.save(sys.argv[1], np.asarray(model(x)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "logits.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    ours, _ = lb.lm.load(out)
    with mx.stream(mx.cpu):
        np.testing.assert_array_equal(np.load(tmp_path / "logits.npy"), np.asarray(ours(tokens(5))))


def test_gptq_rounds_experts_to_nearest():
    # GPTQ calibrates the linear layers; the experts take RTN, as nn.quantize.
    from mlx_lowbit.quant import gptq_model

    model = tiny_model(config_of("qwen3_moe"))
    rtn = copy.deepcopy(model)
    gptq_model(model, mx.concatenate([tokens(16, seed=s) for s in range(2)]), "ternary", 32)
    lb.nn.quantize(rtn, "ternary", 32)
    ours = model.model.layers[0].mlp.switch_mlp.down_proj
    assert isinstance(ours, LowBitSwitchLinear)
    assert mx.array_equal(ours.packed, rtn.model.layers[0].mlp.switch_mlp.down_proj.packed)
    assert isinstance(model.model.layers[0].mlp.gate, nn.Linear)
    assert isinstance(model.model.layers[0].self_attn.q_proj, LowBitLinear)


def test_mlx_lm_generate_runs_a_converted_moe(tmp_path):
    # The stock command, in a fresh process (the autoload hook), gives our
    # loader's greedy text.
    from mlx_lm import generate
    from test_mlx_lm_commands import PROMPT, _generate

    src = dense_model_dir(tmp_path / "dense", config_of("mixtral"))
    out = lb.lm.convert(src, tmp_path / "low", "codebook", 32, vector_size=8, index_bits=5)
    model, tokenizer = lb.lm.load(out)
    assert _generate(out, 8) == generate(model, tokenizer, PROMPT, max_tokens=8)
