# Copyright © 2026 mlx-lowbit contributors.
"""Checkpoints that exist today, built here in their exact on-disk layouts:
BitNet b1.58 as mlx-lm loads it, and MLX affine 1-bit (the Bonsai family)."""

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
import numpy as np
import pytest
from conftest import assert_close
from lm_models import VOCAB, llama_config, tiny_model, tokens, write_model_dir
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lowbit  # noqa: F401  (registers our layers with mlx.nn)
from mlx_lowbit import lm
from mlx_lowbit.nn import LowBitEmbedding, LowBitLinear
from mlx_lowbit.ops import dequantize as lb_dequantize

# ---------------------------------------------------------------- BitNet

BITNET_CONFIGS = {
    # mlx-lm's own BitNet architecture: its BitLinear layers multiply by
    # weight_scale (invert_weight_scales=False).
    "bitnet": {
        "model_type": "bitnet",
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "modules_to_not_convert": [],
        },
        "tie_word_embeddings": True,
    },
    # A llama whose every nn.Linear (lm_head too) mlx-lm turns into a
    # BitLinear that divides by weight_scale (linear_class != autobitlinear).
    "llama": {
        "model_type": "llama",
        "quantization_config": {
            "quant_method": "bitnet",
            "linear_class": "bitlinear",
            "modules_to_not_convert": [],
        },
        "tie_word_embeddings": False,
    },
}


def pack_bitnet(t: np.ndarray) -> np.ndarray:
    """BitNet's layout, written from its description: uint8 of shape
    (ceil(N / 4), K); bits 2s..2s+1 of byte [r, k] hold t[s * ceil(N / 4) + r, k] + 1."""
    n, k = t.shape
    rows = -(-n // 4)
    out = np.zeros((rows, k), np.uint8)
    for s in range(4):
        block = (t[s * rows : (s + 1) * rows] + 1).astype(np.uint8)
        out[: block.shape[0]] |= block << (2 * s)
    return out


def _bitlinear_layers(model):
    from mlx_lm.models.bitlinear_layers import BitLinear

    return [
        (p, m)
        for p, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
        if isinstance(m, BitLinear)
    ]


@pytest.fixture(scope="module", params=sorted(BITNET_CONFIGS))
def bitnet_checkpoint(request, tmp_path_factory):
    """(directory, dense reference model): the reference holds each BitLinear
    as an nn.Linear with weight t * scale (or t / scale), decoded by this
    test from the values it packed."""
    from mlx_lm.models.bitlinear_layers import bitnet_quantize

    config = llama_config(**BITNET_CONFIGS[request.param])
    model = tiny_model(config)
    if request.param == "llama":
        bitnet_quantize(model, config["quantization_config"])
    rng = np.random.default_rng(3)
    weights = dict(tree_flatten(model.parameters()))
    dense = []
    for path, layer in _bitlinear_layers(model):
        t = rng.integers(-1, 2, size=(layer.out_features, layer.in_features)).astype(np.int8)
        ws = np.float32(rng.uniform(0.5, 4.0))
        weights[f"{path}.weight"] = mx.array(pack_bitnet(t))
        weights[f"{path}.weight_scale"] = mx.array(np.array([ws], np.float32))
        effective = np.float32(1) / ws if layer.invert_weight_scales else ws
        linear = nn.Linear(layer.in_features, layer.out_features, bias=False)
        linear.weight = mx.array(t.astype(np.float32) * effective)
        dense.append((path, linear))
    path = write_model_dir(tmp_path_factory.mktemp("bitnet") / request.param, config, weights)
    reference = tiny_model(config)
    if request.param == "llama":
        bitnet_quantize(reference, config["quantization_config"])
    reference.update_modules(tree_unflatten(dense))
    reference.load_weights(
        [
            (k, v)
            for k, v in weights.items()
            if not k.endswith(("proj.weight", "weight_scale", "lm_head.weight"))
        ],
        strict=False,
    )
    return path, reference


def test_bitnet_runs_on_our_ternary_kernels(bitnet_checkpoint):
    path, reference = bitnet_checkpoint
    model, tokenizer = lm.load(str(path), activation_bits=0)  # the float reference's activations
    assert not _bitlinear_layers(model)
    layer = model.model.layers[0].mlp.gate_proj
    assert isinstance(layer, LowBitLinear) and layer.fmt == "ternary"
    assert layer.group_size == 64  # one scale per row: the per-tensor scale
    x = tokens()
    with mx.stream(mx.cpu):  # the Metal kernels are separate work
        assert_close(
            model(x), np.asarray(reference(x), dtype=np.float64), mx.float32, what="logits"
        )
        assert len(list(mlx_lm.stream_generate(model, tokenizer, "ab", max_tokens=3))) == 3


@pytest.mark.skipif(not mx.metal.is_available(), reason="mlx-lm's BitLinear is a Metal kernel")
def test_bitnet_agrees_with_mlx_lm_bitlinear(bitnet_checkpoint):
    path, _ = bitnet_checkpoint
    theirs, _ = mlx_lm.load(str(path))
    assert _bitlinear_layers(theirs)
    ours, _ = lm.load(str(path), activation_bits=0)  # mlx-lm's kernel takes float activations
    x = tokens()
    with mx.stream(mx.gpu):
        expected = np.asarray(theirs(x), dtype=np.float64)
    with mx.stream(mx.cpu):
        assert_close(ours(x), expected, mx.float32, what="logits vs mlx-lm BitLinear")


def test_bitnet_loads_as_trained_with_int8_activations(bitnet_checkpoint, tmp_path):
    """W1.58A8 by default: each layer rounds x per token to int8 (checked
    against numpy), and a conversion records it in config.json."""
    import json

    path, _ = bitnet_checkpoint
    model, _ = lm.load(str(path))
    layer = model.model.layers[0].mlp.gate_proj
    assert layer.activation_bits == 8
    x = mx.random.normal((3, layer.qweight.shape[1]), key=mx.random.key(2))
    xs = np.asarray(x, dtype=np.float64)
    amax = np.abs(xs).max(-1, keepdims=True)
    xq = np.clip(np.round(xs * 127 / amax), -127, 127) * amax / 127
    w = np.asarray(lb_dequantize(layer.qweight, mx.float32), dtype=np.float64)
    assert_close(layer(x), xq @ w.T, mx.float32, what="W1.58A8 layer")
    out = lm.convert(path, tmp_path / "converted", "ternary", 64)
    entries = json.loads((out / "config.json").read_text())["quantization"]
    assert entries["model.layers.0.mlp.gate_proj"]["activation_bits"] == 8
    with pytest.raises(ValueError, match=r"activation_bits must be 0 \(float activations\) or 8"):
        lm.load(str(path), activation_bits=4)


def test_bitnet_code_3_is_rejected_naming_the_layer(bitnet_checkpoint, tmp_path):
    import shutil

    path, _ = bitnet_checkpoint
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    w = mx.load(str(bad / "model.safetensors"))
    key = "model.layers.1.self_attn.o_proj.weight"
    w[key] = w[key] | 3
    mx.save_safetensors(str(bad / "model.safetensors"), w)
    with pytest.raises(ValueError, match=r"model.layers.1.self_attn.o_proj.*code 3"):
        lm.load(str(bad))


# ------------------------------------------------------ MLX affine 1-bit

AFFINE_GROUP = 128


def _affine_config():
    return {
        "model_type": "qwen3",
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "intermediate_size": 256,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 64,
        "rms_norm_eps": 1e-6,
        "vocab_size": VOCAB,
        "max_position_embeddings": 512,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "quantization": {"group_size": AFFINE_GROUP, "bits": 1},
    }


def pack_affine_bits(b: np.ndarray) -> np.ndarray:
    """MLX affine 1-bit codes: 32 per uint32 along K, first weight in the LSB."""
    return np.packbits(b.astype(np.uint8), axis=1, bitorder="little").view("<u4")


@pytest.fixture(scope="module", params=["bonsai", "general"])
def affine_checkpoint(request, tmp_path_factory):
    """(directory, dense reference, kind). "bonsai": biases = -scales / 2
    (a symmetric +-scale/2 code, as Bonsai stores it); "general": any bias."""
    config = _affine_config()
    dense_config = {k: v for k, v in config.items() if k != "quantization"}
    reference = tiny_model(dense_config)
    rng = np.random.default_rng(5)
    weights = {}
    for path, module in tree_flatten(reference.leaf_modules(), is_leaf=nn.Module.is_module):
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            weights.update({f"{path}.{k}": v for k, v in tree_flatten(module.parameters())})
            continue
        n, k = module.weight.shape
        b = rng.integers(0, 2, size=(n, k))
        a = rng.uniform(0.01, 0.1, size=(n, k // AFFINE_GROUP)).astype(np.float16)
        c = (-a / 2) if request.param == "bonsai" else rng.uniform(-0.05, 0.05, size=a.shape)
        c = c.astype(np.float16)
        weights[f"{path}.weight"] = mx.array(pack_affine_bits(b))
        weights[f"{path}.scales"] = mx.array(a)
        weights[f"{path}.biases"] = mx.array(c)
        w = np.repeat(a.astype(np.float32), AFFINE_GROUP, 1) * b + np.repeat(
            c.astype(np.float32), AFFINE_GROUP, 1
        )
        module.weight = mx.array(w)
    path = write_model_dir(tmp_path_factory.mktemp("affine") / request.param, config, weights)
    return path, reference, request.param


def test_affine_one_bit_loads_into_binary_format(affine_checkpoint):
    path, reference, kind = affine_checkpoint
    model, tokenizer = lm.load(str(path))
    emb = model.model.embed_tokens
    proj = model.model.layers[1].mlp.down_proj
    assert isinstance(emb, LowBitEmbedding) and isinstance(proj, LowBitLinear)
    assert proj.fmt == "binary" and "group_biases" in proj and proj.group_size == AFFINE_GROUP
    # Bonsai's biases become exactly 0 and its scales a / 2: float16 holds both.
    expected_dtype = mx.float16 if kind == "bonsai" else mx.float32
    assert proj.group_scales.dtype == expected_dtype
    if kind == "bonsai":
        assert not mx.any(proj.group_biases).item()
    # Lookups stay in the checkpoint's dtype (float16 here) when the scales
    # fall back to float32, so the activations are not promoted.
    assert emb(mx.array([1])).dtype == mx.float16
    assert emb.output_dtype == (None if kind == "bonsai" else mx.float16)
    x = tokens()
    with mx.stream(mx.cpu):
        assert_close(
            model(x), np.asarray(reference(x), dtype=np.float64), mx.float16, what="logits"
        )
        assert len(list(mlx_lm.stream_generate(model, tokenizer, "ab", max_tokens=3))) == 3


def test_affine_one_bit_agrees_with_mlx_own_one_bit_path(affine_checkpoint):
    """MLX 0.32.4 runs bits=1 itself (older releases refuse it): plain
    mlx_lm.load keeps MLX's QuantizedLinear, and our binary layers agree."""
    path, _, _ = affine_checkpoint
    theirs, _ = mlx_lm.load(str(path))
    assert isinstance(theirs.model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    ours, _ = lm.load(str(path))
    x = tokens()
    with mx.stream(mx.cpu):
        assert_close(ours(x), np.asarray(theirs(x), dtype=np.float64), mx.float32, what="logits")


def test_affine_bad_tensor_errors_name_the_layer(affine_checkpoint, tmp_path):
    import shutil

    path, _, _ = affine_checkpoint
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    w = mx.load(str(bad / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    w[key] = w[key].astype(mx.int32)  # load_weights checks shapes, not dtypes
    mx.save_safetensors(str(bad / "model.safetensors"), w)
    with pytest.raises(ValueError, match=r"model.layers.0.mlp.up_proj.*uint32"):
        lm.load(str(bad))


def test_convert_keeps_repacked_bitnet_layers_exact(bitnet_checkpoint, tmp_path):
    path, _ = bitnet_checkpoint
    out = lm.convert(str(path), tmp_path / "out", "ternary", 32)
    model, _ = lm.load(str(out))
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.group_size == 64  # still one scale per row, not requantized
    assert layer.activation_bits == 8  # as trained, and as the checkpoint loads
    direct, _ = lm.load(str(path))
    x = tokens()
    with mx.stream(mx.cpu):
        assert mx.array_equal(model(x), direct(x))
    # Plain mlx_lm.load too, once BitLinear has a to_quantized (lm.load gave
    # it one above; install_bitlinear() does it explicitly).
    lm.hook.install_bitlinear()
    again, _ = mlx_lm.load(str(out))
    with mx.stream(mx.cpu):
        assert mx.array_equal(again(x), model(x))
