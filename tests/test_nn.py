# Copyright © 2026 mlx-lowbit contributors.
"""LowBitLinear, LowBitEmbedding and mlx_lowbit.nn.quantize against the
independent decoder (tests/reference.py)."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import reference
from conftest import DTYPES, FORMATS, assert_close, format_id
from lm_models import llama_config, tiny_model, tokens
from mlx.utils import tree_flatten

import mlx_lowbit as lb
from mlx_lowbit.nn import LowBitEmbedding, LowBitLinear

# (N, K, group_size): ragged N; K with a partial 128-block; one group per row.
SHAPES = [(48, 64, 32), (33, 96, 32), (1, 128, 128)]


def _linear(n, k, bias, seed=0):
    layer = nn.Linear(k, n, bias=bias)
    rng = np.random.default_rng(seed)
    layer.weight = mx.array(rng.normal(size=(n, k)).astype(np.float32) / np.sqrt(k))
    if bias:
        layer.bias = mx.array(rng.normal(size=(n,)).astype(np.float32))
    return layer


def _inputs(k, dtype, rng):
    """x of shape (1, K), with batch dims (2, 3, K), and non-contiguous."""
    base = rng.normal(size=(5, 2 * k)).astype(np.float32)
    return [
        mx.array(base[:1, :k]).astype(dtype),
        mx.array(base[:, :k].reshape(5, k)[None].repeat(2, 0)[:, :3]).astype(dtype),
        mx.array(base).astype(dtype)[:, ::2],  # strided view
        mx.array(base[:, :k]).astype(dtype).T.T,
    ]


def _ref_linear(layer: LowBitLinear, x: mx.array) -> np.ndarray:
    w = reference.dequantize(layer.qweight)
    y = np.asarray(x.astype(mx.float32), dtype=np.float64) @ w.T
    if "bias" in layer:
        y = y + np.asarray(layer.bias, dtype=np.float64)
    return y


@pytest.mark.parametrize("fmt", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,k,gs", SHAPES)
def test_linear_matches_reference(fmt, dtype, n, k, gs, rng):
    name, opts = fmt
    layer = LowBitLinear.from_linear(_linear(n, k, bias=True), name, gs, **opts)
    for i, x in enumerate(_inputs(k, dtype, rng)):
        y = layer(x)
        assert y.dtype == dtype and y.shape == (*x.shape[:-1], n)
        assert_close(y, _ref_linear(layer, x), dtype, what=f"input {i}")


@pytest.mark.parametrize("fmt", FORMATS, ids=format_id)
def test_from_linear_is_quantize_of_the_weight(fmt):
    name, opts = fmt
    linear = _linear(40, 64, bias=False)
    layer = LowBitLinear.from_linear(linear, name, 32, **opts)
    qw = lb.quantize(linear.weight, name, 32, **opts)
    for key, a in qw.arrays().items():
        assert mx.array_equal(layer.qweight.arrays()[key], a), key
    assert "bias" not in layer and layer.bits_per_weight == qw.bits_per_weight


def test_sources_quantized_linear_and_lowbit_are_dequantized_first():
    linear = _linear(64, 128, bias=True)
    affine = nn.QuantizedLinear.from_linear(linear, group_size=64, bits=4)
    dense = nn.Linear(128, 64)
    dense.weight = mx.dequantize(affine.weight, affine.scales, affine.biases, 64, 4)
    a = LowBitLinear.from_linear(affine, "binary", 64, biases=True)
    b = LowBitLinear.from_linear(dense, "binary", 64, biases=True)
    assert mx.array_equal(a.packed, b.packed) and mx.array_equal(a.group_scales, b.group_scales)
    assert mx.array_equal(a.bias, linear.bias)
    # LowBitLinear -> another format, through its dequantized weight.
    c = LowBitLinear.from_linear(a, "ternary", 64)
    d = lb.quantize(lb.dequantize(a.qweight), "ternary", 64)
    assert mx.array_equal(c.packed, d.packed) and mx.array_equal(c.group_scales, d.scales)


def test_to_linear_and_to_quantized():
    layer = LowBitLinear.from_linear(
        _linear(40, 64, bias=True), "codebook", 32, vector_size=8, index_bits=5
    )
    linear = layer.to_linear(mx.float32)
    assert isinstance(linear, nn.Linear)
    np.testing.assert_array_equal(
        np.asarray(linear.weight), reference.dequantize(layer.qweight).astype(np.float32)
    )
    assert mx.array_equal(linear.bias, layer.bias)
    assert layer.to_linear().weight.dtype == mx.float16  # the scales' dtype
    q4 = layer.to_quantized(group_size=32, bits=4)
    assert isinstance(q4, nn.QuantizedLinear) and q4.bits == 4
    # nn.Linear.to_quantized knows our mode (registered by import mlx_lowbit).
    again = linear.to_quantized(32, mode="lowbit", fmt="ternary")
    assert isinstance(again, LowBitLinear) and again.fmt == "ternary"
    assert mx.array_equal(again.packed, lb.quantize(linear.weight, "ternary", 32).packed)


def test_constructor_makes_loadable_shell():
    layer = LowBitLinear(
        96, 33, bias=True, fmt="binary", group_size=32, biases=True, scale_dtype="float32"
    )
    src = LowBitLinear.from_linear(
        _linear(33, 96, bias=True), "binary", 32, biases=True, scale_dtype=mx.float32
    )
    shapes = {k: (v.shape, v.dtype) for k, v in tree_flatten(layer.parameters())}
    assert shapes == {k: (v.shape, v.dtype) for k, v in tree_flatten(src.parameters())}
    layer.load_weights(list(tree_flatten(src.parameters())))
    x = mx.random.normal((2, 96))
    assert mx.array_equal(layer(x), src(x))
    assert layer.quantization_config() == {
        "mode": "lowbit",
        "fmt": "binary",
        "group_size": 32,
        "scale_dtype": "float32",
        "biases": True,
    }


def test_module_behaviour(tmp_path):
    layer = LowBitLinear.from_linear(_linear(48, 64, bias=True), "ternary", 32)
    names = sorted(k for k, _ in tree_flatten(layer.parameters()))
    assert names == ["bias", "group_scales", "packed"]
    assert tree_flatten(layer.trainable_parameters()) == []  # frozen, like QuantizedLinear
    assert not hasattr(layer, "bits")  # mlx-lm would count weight.size * 32 // bits
    mx.eval(layer)
    layer.save_weights(str(tmp_path / "w.safetensors"))
    other = LowBitLinear(64, 48, bias=True, fmt="ternary", group_size=32)
    other.load_weights(str(tmp_path / "w.safetensors"))
    x = mx.random.normal((3, 64))
    assert mx.array_equal(other(x), layer(x))
    assert "fmt=ternary" in repr(layer) and "bits_per_weight=2.500" in repr(layer)


def test_gradient_flows_to_the_input():
    layer = LowBitLinear.from_linear(_linear(48, 64, bias=False), "binary", 32)
    x = mx.random.normal((2, 64))
    g = mx.grad(lambda x: layer(x).sum())(x)
    w = reference.dequantize(layer.qweight)
    np.testing.assert_allclose(
        np.asarray(g), np.broadcast_to(w.sum(0), (2, 64)), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("fmt", FORMATS, ids=format_id)
def test_embedding_matches_reference(fmt):
    name, opts = fmt
    emb = nn.Embedding(37, 64)
    layer = LowBitEmbedding.from_embedding(emb, name, 32, **opts)
    w = reference.dequantize(layer.qweight)
    ids = mx.array([[0, 5, 36], [7, 7, 1]])
    out = layer(ids)
    assert out.shape == (2, 3, 64) and out.dtype == mx.float32  # the source's dtype
    np.testing.assert_allclose(
        np.asarray(out.astype(mx.float32)), w[np.asarray(ids)], rtol=1e-3, atol=1e-3
    )
    x = mx.random.normal((2, 64))
    assert_close(layer.as_linear(x), np.asarray(x, dtype=np.float64) @ w.T, mx.float32)
    back = layer.to_embedding(mx.float32)
    np.testing.assert_array_equal(np.asarray(back.weight), w.astype(np.float32))


def _dequantized_copy(config, model):
    """The same model with every low-bit layer replaced by its dequantized
    float32 weight: what the kernels must reproduce."""
    from mlx.utils import tree_unflatten

    ref = tiny_model(config)
    ref.load_weights(tree_flatten(model.parameters()), strict=False)
    dense = []
    for path, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(m, LowBitLinear):
            dense.append((path, m.to_linear(mx.float32)))
        elif isinstance(m, LowBitEmbedding):
            dense.append((path, m.to_embedding(mx.float32)))
    ref.update_modules(tree_unflatten(dense))
    return ref


def test_quantize_tiny_llama_default_predicate():
    config = llama_config()
    model = tiny_model(config)
    lb.nn.quantize(model, "ternary", 32)
    kinds = {
        p: type(m).__name__
        for p, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
    }
    assert kinds["model.embed_tokens"] == "Embedding" and kinds["lm_head"] == "Linear"
    assert kinds["model.layers.1.mlp.down_proj"] == "LowBitLinear"
    assert sum(k == "LowBitLinear" for k in kinds.values()) == 14
    ref = _dequantized_copy(config, model)
    x = tokens()
    assert_close(model(x), np.asarray(ref(x), dtype=np.float64), mx.float32, what="logits")


def test_quantize_per_layer_options():
    config = llama_config(tie_word_embeddings=True)
    model = tiny_model(config)

    def recipe(path, module):
        if path.endswith("embed_tokens"):
            # float32 scales: the lookup returns the scales' dtype (as MLX's
            # QuantizedEmbedding does), and this model runs in float32.
            return {"fmt": "binary", "biases": True, "scale_dtype": "float32"}
        if ".mlp." in path:
            return {"fmt": "codebook", "vector_size": 8, "index_bits": 6, "group_size": 64}
        if path.endswith("v_proj"):
            return {"scale_dtype": "float32"}
        return isinstance(module, nn.Linear)

    lb.nn.quantize(model, "ternary", 32, class_predicate=recipe)
    layers = model.model.layers[0]
    assert layers.mlp.up_proj.quantization_config() == {
        "mode": "lowbit",
        "fmt": "codebook",
        "group_size": 64,
        "scale_dtype": "float16",
        "vector_size": 8,
        "index_bits": 6,
    }
    assert layers.self_attn.q_proj.quantization_config()["fmt"] == "ternary"
    assert layers.self_attn.v_proj.group_scales.dtype == mx.float32
    emb = model.model.embed_tokens
    assert isinstance(emb, LowBitEmbedding) and "group_biases" in emb
    ref = _dequantized_copy(config, model)
    x = tokens()
    assert_close(model(x), np.asarray(ref(x), dtype=np.float64), mx.float32, what="logits")


def test_quantize_errors_name_the_layer():
    model = tiny_model(llama_config())
    with pytest.raises(ValueError, match=r"model.layers.0.self_attn.q_proj.*group"):
        lb.nn.quantize(model, "ternary", 96)  # 96 does not divide K = 64
    with pytest.raises(ValueError, match=r"q_proj.*Unknown option.*vector_size"):
        lb.nn.quantize(model, "ternary", 32, vector_size=8)
    with pytest.raises(ValueError, match=r"input_layernorm.*RMSNorm"):
        lb.nn.quantize(model, class_predicate=lambda p, m: p.endswith("input_layernorm"))
    # Nothing was replaced by the failed calls.
    assert isinstance(model.model.layers[0].self_attn.q_proj, nn.Linear)


def test_to_quantized_lowbit_mode_arguments():
    linear = _linear(40, 64, bias=False)
    with pytest.raises(ValueError, match="needs fmt"):
        linear.to_quantized(32, mode="lowbit")
    with pytest.raises(ValueError, match="not bits=4"):
        linear.to_quantized(32, 4, mode="lowbit", fmt="ternary")
    # mlx.nn.quantize(model, mode="lowbit") with a predicate dict works too.
    model = nn.Sequential(_linear(40, 64, bias=True))
    nn.quantize(
        model,
        class_predicate=lambda p, m: {
            "mode": "lowbit",
            "fmt": "binary",
            "group_size": 32,
            "biases": True,
        },
    )
    assert isinstance(model.layers[0], LowBitLinear) and "group_biases" in model.layers[0]
    # Other modes still reach MLX.
    assert isinstance(linear.to_quantized(32, 4), nn.QuantizedLinear)


def test_set_dtype_keeps_low_bit_scales():
    model = tiny_model(llama_config())
    lb.nn.quantize(model, "ternary", 32)
    x = tokens()
    before = model(x)
    lb.nn.set_dtype(model, mx.bfloat16)
    q = model.model.layers[0].self_attn.q_proj
    assert q.group_scales.dtype == mx.float16  # the format allows no bfloat16 scales
    assert model.model.embed_tokens.weight.dtype == mx.bfloat16
    out = model(x)
    assert out.dtype == mx.bfloat16
    # A bfloat16 model: loose agreement with the float32 run.
    assert (
        np.abs(np.asarray(out.astype(mx.float32)) - np.asarray(before)).max()
        < 0.1 * np.abs(np.asarray(before)).max()
    )


@pytest.mark.parametrize("source", [mx.bfloat16, mx.float32, mx.float16])
def test_embedding_lookups_keep_the_source_dtype(source, tmp_path):
    """Quantizing an embedding does not change the dtype the model's
    activations start in (as MLX's quantized embedding), whatever dtype the
    scales are; the entry records it and both loaders rebuild it."""
    emb = nn.Embedding(64, 128)
    emb.set_dtype(source)
    for scale_dtype in (mx.float16, mx.float32):
        layer = lb.nn.LowBitEmbedding.from_embedding(emb, "binary", 64, scale_dtype=scale_dtype)
        out = layer(mx.array([[1, 2, 3]]))
        assert out.dtype == source and out.shape == (1, 3, 128)
        ref = lb.dequantize(layer.qweight, mx.float32)[mx.array([1, 2, 3])]
        assert mx.array_equal(out[0].astype(mx.float32), ref.astype(source).astype(mx.float32))
        entry = layer.quantization_config()
        assert entry.get("output_dtype") == (
            None
            if source == scale_dtype
            else {mx.bfloat16: "bfloat16", mx.float32: "float32", mx.float16: "float16"}[source]
        )
    with pytest.raises(ValueError, match="output_dtype must be one of"):
        lb.nn.LowBitEmbedding(64, 128, "binary", 64, output_dtype="int8")
