# Copyright © 2026 mlx-lowbit contributors.
"""LoRA on frozen low-bit layers: the adapters get the same gradients as on
the dense dequantized model, training lowers the loss, the base never moves."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from conftest import FORMATS, format_id
from lm_models import llama_config, tiny_model
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lowbit as lb
from mlx_lowbit.lora import LoRALowBitLinear, apply_lora

KEYS = ["self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"]


def lora_models(fmt, opts):
    """The low-bit model with adapters, and its twin: every base layer a dense
    nn.Linear of its dequantized weight, adapters by mlx-lm's own LoRALinear
    holding the same values."""
    from mlx_lm.tuner.lora import LoRALinear

    model = tiny_model(llama_config())
    lb.nn.quantize(model, fmt, 32, **opts)
    mx.random.seed(1)
    assert apply_lora(model, r=4, keys=KEYS) == 2 * len(KEYS)
    dense = tiny_model(llama_config())
    swaps = []
    modules = model.named_modules()
    bases = {id(m.base) for _, m in modules if isinstance(m, LoRALowBitLinear)}
    for path, m in modules:
        if isinstance(m, LoRALowBitLinear):
            # Non-zero B so that every adapter parameter has a gradient.
            m.lora_b = mx.random.normal(m.lora_b.shape) * 0.1
            twin = LoRALinear.from_base(m.base.to_linear(mx.float32), r=4, scale=m.scale)
            twin.lora_a, twin.lora_b = m.lora_a, m.lora_b
            swaps.append((path, twin))
        elif isinstance(m, lb.nn.LowBitLinear) and id(m) not in bases:
            swaps.append((path, m.to_linear(mx.float32)))
    dense.update_modules(tree_unflatten(swaps))
    dense.freeze()
    dense.unfreeze(keys=["lora_a", "lora_b"])
    return model, dense


def loss_fn(model, tokens):
    logits = model(tokens[:, :-1]).astype(mx.float32)
    return nn.losses.cross_entropy(logits, tokens[:, 1:]).mean()


@pytest.mark.parametrize("f", FORMATS[:2] + FORMATS[3:4], ids=format_id)
def test_adapter_gradients_match_the_dense_model(f):
    model, dense = lora_models(*f)
    tokens = mx.random.randint(0, 256, (2, 12), key=mx.random.key(4))
    trainable = dict(tree_flatten(model.trainable_parameters()))
    assert trainable and all(k.endswith(("lora_a", "lora_b")) for k in trainable)
    _, g = nn.value_and_grad(model, loss_fn)(model, tokens)
    _, gd = nn.value_and_grad(dense, loss_fn)(dense, tokens)
    g, gd = dict(tree_flatten(g)), dict(tree_flatten(gd))
    assert set(g) == set(trainable)
    for name in g:
        a, b = np.asarray(g[name]), np.asarray(gd[name])
        assert np.abs(b).max() > 0, name
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=name)


def test_training_lowers_the_loss_and_leaves_the_base_alone():
    model, _ = lora_models("ternary", {})
    base_before = {k: np.asarray(v) for k, v in tree_flatten(model.parameters()) if "lora" not in k}
    tokens = mx.random.randint(0, 256, (4, 16), key=mx.random.key(5))
    opt = optim.Adam(learning_rate=1e-2)
    step = nn.value_and_grad(model, loss_fn)
    losses = []
    for _ in range(8):
        loss, grads = step(model, tokens)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses
    for k, v in tree_flatten(model.parameters()):
        if "lora" not in k:
            np.testing.assert_array_equal(np.asarray(v), base_before[k], err_msg=k)


def test_fuse_gives_the_dense_equivalent():
    base = lb.nn.LowBitLinear.from_linear(nn.Linear(64, 48), "binary", 32, biases=True)
    layer = LoRALowBitLinear.from_base(base, r=4, scale=2.0)
    layer.lora_b = mx.random.normal(layer.lora_b.shape, key=mx.random.key(2))
    x = mx.random.normal((3, 64), key=mx.random.key(3))
    fused = layer.fuse(mx.float32)
    np.testing.assert_allclose(np.asarray(fused(x)), np.asarray(layer(x)), rtol=1e-5, atol=1e-5)


def test_apply_lora_twice_wraps_only_new_layers():
    model = tiny_model(llama_config())
    lb.nn.quantize(model, "ternary", 32)
    assert apply_lora(model, keys=["q_proj"]) == 2
    assert apply_lora(model, keys=["k_proj"]) == 2
    wrappers = [m for _, m in model.named_modules() if isinstance(m, LoRALowBitLinear)]
    assert len(wrappers) == 4 and not any(isinstance(w.base, LoRALowBitLinear) for w in wrappers)
    trainable = [k for k, _ in tree_flatten(model.trainable_parameters())]
    assert len(trainable) == 8 and all(k.endswith(("lora_a", "lora_b")) for k in trainable)


def test_apply_lora_needs_a_low_bit_layer():
    with pytest.raises(ValueError, match="No LowBitLinear layer matched"):
        apply_lora(tiny_model(llama_config()))
    with pytest.raises(ValueError, match="rank r must be >= 1"):
        LoRALowBitLinear(64, 32, r=0)
