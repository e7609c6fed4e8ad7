# Copyright © 2026 mlx-lowbit contributors.
"""The randomized block-Hadamard rotation (mlx_lowbit.rotation) against an
explicit numpy matrix, rotated LowBitLinear layers against their unrotated
dense weight, and the quantizers with rotate=True."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import DTYPES, FORMATS, assert_close, format_id
from lm_models import llama_config, tiny_model, tokens
from mlx.utils import tree_flatten, tree_unflatten

import mlx_lowbit as lb
from mlx_lowbit.nn import LowBitLinear, dense_weight
from mlx_lowbit.quant import gptq_model
from mlx_lowbit.rotation import Rotation, block_size, pack_signs
from mlx_lowbit.stats import layer_bits


def _sylvester(b):
    h = np.ones((1, 1))
    while h.shape[0] < b:
        h = np.block([[h, h], [h, -h]])
    return h


def _matrix(rotation: Rotation) -> np.ndarray:
    """R = D · blockdiag(H_b / sqrt(b)), built from the definition in float64."""
    words = np.asarray(rotation.sign_bits).reshape(-1)
    bits = (words[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    d = 1.0 - 2.0 * bits.reshape(-1)
    b = rotation.block
    blocks = np.kron(np.eye(rotation.k // b), _sylvester(b) / np.sqrt(b))
    return d[:, None] * blocks


def _np(a):
    return np.asarray(a.astype(mx.float32), dtype=np.float64)


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize(
    "k,max_block,expected",
    [(576, 256, 64), (1536, 256, 256), (1536, 128, 128), (96, 256, 32), (64, 32, 32)],
)
def test_block_size(k, max_block, expected):
    # 576 = 9 * 64 is SmolLM2's hidden size: mx.hadamard_transform has no such size.
    assert block_size(k, max_block) == expected
    assert Rotation.random(k, max_block=max_block).block == expected


# K = 576: blocks of 64; K = 96: blocks of 32; K = 512: two blocks of 256.
@pytest.mark.parametrize("k", [576, 96, 512])
def test_matches_the_explicit_orthogonal_matrix(k):
    rotation = Rotation.random(k, seed=3)
    r = _matrix(rotation)
    assert np.allclose(r @ r.T, np.eye(k), atol=1e-12)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, k)).astype(np.float32)
    w = rng.standard_normal((7, k)).astype(np.float32)
    h = x.T @ x / 5
    assert _rel(_np(rotation.rotate(mx.array(x))), x @ r) < 1e-5
    assert _rel(_np(rotation.unrotate(rotation.rotate(mx.array(x)))), x) < 1e-5
    assert _rel(_np(rotation.rotate_weight(mx.array(w))), w @ r) < 1e-5
    assert _rel(_np(rotation.rotate_hessian(mx.array(h))), r.T @ h @ r) < 1e-5
    # The identity the layers rely on: x W^T = (x R)(W R)^T.
    rotated = _np(rotation.rotate(mx.array(x))) @ _np(rotation.rotate_weight(mx.array(w))).T
    assert _rel(rotated, x @ w.T) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rotate_keeps_dtype_and_leading_dims(dtype):
    rotation = Rotation.random(192)
    r = _matrix(rotation)
    base = mx.random.normal((2, 3, 384), key=mx.random.key(0)).astype(dtype)
    for x in (base[0, 0, :192], base[..., :192], base[..., ::2]):  # 1-D, batch, strided
        y = rotation.rotate(x)
        assert y.dtype == dtype and y.shape == x.shape
        assert_close(y, _np(x) @ r, dtype)


def test_signs_are_deterministic_and_packed_one_bit_each():
    a, b = Rotation.random(320, seed=5), Rotation.random(320, seed=5)
    assert mx.array_equal(a.sign_bits, b.sign_bits)
    assert not mx.array_equal(a.sign_bits, Rotation.random(320, seed=6).sign_bits)
    # Drawn from a seed, a rotation stores the seed and the block (8 bytes);
    # given as signs, one bit per input feature.
    assert a.sign_bits.dtype == mx.uint32 and a.nbytes == 8
    assert a.seed_tensor().tolist() == [5, 64] and Rotation(a.sign_bits).nbytes == 320 // 8
    again = Rotation.from_seed_tensor(a.seed_tensor(), 320)
    assert again.seed == 5 and mx.array_equal(again.sign_bits, a.sign_bits)
    signs = 1 - 2 * np.random.default_rng(1).integers(0, 2, size=64)
    packed = pack_signs(signs, 32)
    assert packed.shape == (2, 1)  # one row per block
    assert np.array_equal(np.asarray(Rotation(packed).signs()), signs)


def test_bad_inputs_raise():
    rotation = Rotation.random(64)
    with pytest.raises(ValueError, match=r"shape \(2, 32\).*K=64"):
        rotation.rotate(mx.zeros((2, 32)))
    with pytest.raises(ValueError, match="floating point"):
        rotation.rotate(mx.zeros((2, 64), mx.int32))
    with pytest.raises(ValueError, match="2-D weight"):
        rotation.rotate_weight(mx.zeros((2, 2, 64)))
    with pytest.raises(ValueError, match=r"Hessian has shape \(64, 32\)"):
        rotation.rotate_hessian(mx.zeros((64, 32)))
    with pytest.raises(ValueError, match=r"2-D uint32 .* got .*int32 of shape \(1, 2\)"):
        Rotation(mx.zeros((1, 2), mx.int32))
    with pytest.raises(ValueError, match="give block 96"):
        Rotation(mx.zeros((1, 3), mx.uint32))
    with pytest.raises(ValueError, match="multiple of 32"):
        block_size(48)
    for limit in (100, 16, 16384):
        with pytest.raises(ValueError, match="block size limit"):
            block_size(64, limit)
    with pytest.raises(ValueError, match="rotation entry"):
        Rotation.from_config({"kind": "givens", "block": 64}, 64)
    with pytest.raises(ValueError, match="Block 128 .* divides K=64"):
        Rotation.from_config({"kind": "hadamard", "block": 128}, 64)
    assert Rotation.from_config({"kind": "hadamard", "block": 32}, 64).block == 32
    with pytest.raises(ValueError, match="1-D vector of \\+1/-1"):
        pack_signs(np.zeros(32), 32)
    with pytest.raises(ValueError, match="Block 64 .* divides K=32"):
        pack_signs(np.ones(32), 64)


def _linear(n, k, bias, seed=0):
    layer = nn.Linear(k, n, bias=bias)
    rng = np.random.default_rng(seed)
    layer.weight = mx.array(rng.normal(size=(n, k)).astype(np.float32) / np.sqrt(k))
    if bias:
        layer.bias = mx.array(rng.normal(size=(n,)).astype(np.float32))
    return layer


# (N, K, group_size): ragged N with K = 3 blocks of 32; N = 1 with K = 2 blocks of 64.
SHAPES = [(33, 96, 32), (1, 128, 64)]


@pytest.mark.parametrize("fmt", FORMATS, ids=format_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n,k,gs", SHAPES)
def test_rotated_linear_matches_its_unrotated_dense_weight(fmt, dtype, n, k, gs, rng):
    name, opts = fmt
    rotation = Rotation.random(k, seed=2, max_block=64)
    layer = LowBitLinear.from_linear(_linear(n, k, True), name, gs, rotation=rotation, **opts)
    # dense_weight is W' R^T, computed here from the definition.
    w = _np(lb.dequantize(layer.qweight)) @ _matrix(rotation).T
    assert _rel(_np(dense_weight(layer)), w) < 1e-5
    assert _rel(_np(layer.to_linear(mx.float32).weight), w) < 1e-5
    bias = np.asarray(layer.bias, dtype=np.float64)
    for shape in [(1, k), (2, 3, k)]:
        x = mx.array(rng.normal(size=shape).astype(np.float32)).astype(dtype)
        y = layer(x)
        assert y.dtype == dtype and y.shape == (*shape[:-1], n)
        assert_close(y, _np(x) @ w.T + bias, dtype, what=f"input {shape}")


def test_rotation_lowers_rtn_error_on_outlier_weight_columns():
    w, x = _outlier_layer()
    plain = LowBitLinear.from_linear(_as_linear(w), "ternary", 64)
    rotated = LowBitLinear.from_linear(_as_linear(w), "ternary", 64, rotation=Rotation.random(256))
    # Measured ratio 0.60 (0.72 -> 0.43); a no-op rotation gives 1.
    assert _output_error(rotated, w, x) < 0.75 * _output_error(plain, w, x)


def test_layer_metadata_bits_and_reloading():
    k, n = 128, 40
    rotation = Rotation.random(k, seed=9, max_block=64)
    layer = LowBitLinear.from_linear(_linear(n, k, True), "ternary", 32, rotation=rotation)
    entry = layer.quantization_config()
    assert entry["rotation"] == {"kind": "hadamard", "block": 64, "seeded": True}
    # The seed and block (two uint32) are part of the stored weight.
    assert layer.nbytes == layer.qweight.nbytes + 8
    assert layer.bits_per_weight == 8 * (layer.qweight.nbytes + 8) / (n * k)
    assert "rotation=hadamard(block=64)" in repr(layer)
    shell = LowBitLinear(k, n, True, "ternary", 32, rotation_block=64, rotation_seeded=True)
    shell.load_weights(list(tree_flatten(layer.parameters())))
    x = mx.random.normal((3, k), key=mx.random.key(1))
    assert shell.rotation.seed == 9 and mx.array_equal(shell(x), layer(x))
    # Signs that come from no seed are stored packed, one bit per input feature.
    packed = LowBitLinear.from_linear(
        _linear(n, k, True), "ternary", 32, rotation=Rotation(rotation.sign_bits)
    )
    assert packed.quantization_config()["rotation"] == {"kind": "hadamard", "block": 64}
    assert packed.nbytes == packed.qweight.nbytes + k // 8
    shell = LowBitLinear(k, n, True, "ternary", 32, rotation_block=64)
    shell.load_weights(list(tree_flatten(packed.parameters())))
    assert shell.rotation.seed is None and mx.array_equal(shell(x), packed(x))
    # Re-quantizing reads the unrotated weight.
    assert LowBitLinear.from_linear(layer, "ternary", 32).rotation is None
    affine = layer.to_quantized(32, 8)
    assert _rel(_np(affine(x)), _np(layer(x))) < 0.05


def test_rotated_layer_under_compile_and_gradients():
    # mlx-lm's trainer compiles its step with the model state as inputs; the
    # cached unpacked signs must neither leak into nor out of the trace.
    layer = LowBitLinear.from_linear(
        _linear(16, 64, True), "ternary", 32, rotation=Rotation.random(64)
    )
    x = mx.random.normal((2, 64), key=mx.random.key(2))
    eager = layer(x)
    assert mx.allclose(mx.compile(layer)(x), eager).item()
    state = [layer.state]
    traced = mx.compile(lambda x: layer(x), inputs=state, outputs=state)
    assert mx.allclose(traced(x), eager).item()
    assert mx.array_equal(layer(x), eager).item()
    grad = mx.grad(lambda x: layer(x).sum())(x)
    expected = mx.ones((2, 16)) @ dense_weight(layer)
    assert mx.allclose(grad, expected, atol=1e-4).item()


def test_missing_or_malformed_seed_raises():
    layer = LowBitLinear(64, 8, False, "ternary", 32, rotation_block=32, rotation_seeded=True)
    assert layer.rotation.block == 32
    layer.rotation_seed = mx.array([3, 64], mx.uint32)
    with pytest.raises(
        ValueError, match="rotation_seed names block 64; the layer's config says 32"
    ):
        layer(mx.zeros((1, 64)))
    layer.rotation_seed = mx.array([3, 48], mx.uint32)
    with pytest.raises(ValueError, match="block 48, not a power of two"):
        layer(mx.zeros((1, 64)))
    layer.rotation_seed = mx.array([3, 32, 0], mx.uint32)
    with pytest.raises(
        ValueError, match=r"2 uint32 values \(seed, block\), got .*uint32 of shape \(3,\)"
    ):
        layer(mx.zeros((1, 64)))
    with pytest.raises(ValueError, match="seed must be an integer in 0..2\\*\\*32 - 1"):
        Rotation.random(64, seed=2**32)
    with pytest.raises(ValueError, match="'seeded' must be true or false"):
        Rotation.from_config({"kind": "hadamard", "block": 32, "seeded": "yes"}, 64)


def test_missing_or_malformed_signs_raise():
    layer = LowBitLinear(64, 8, False, "ternary", 32, rotation_block=64)
    del layer["rotation_signs"]
    with pytest.raises(ValueError, match="rotated .* no rotation_signs"):
        layer(mx.zeros((1, 64)))
    layer.rotation_signs = mx.zeros((3,), mx.uint32)
    with pytest.raises(ValueError, match=r"rotation_signs has shape \(3,\); K=64 .* \(1, 2\)"):
        layer(mx.zeros((1, 64)))
    with pytest.raises(ValueError, match="K=32; the weight has K=64"):
        LowBitLinear.from_qweight(layer.qweight, rotation=Rotation.random(32))


def test_nn_quantize_rotates_linear_layers():
    model = tiny_model(llama_config())
    x = tokens()
    before = model(x)

    def predicate(path, module):
        if path.endswith("v_proj"):
            return {"rotate": False}
        return isinstance(module, nn.Linear) and not path.endswith("lm_head")

    lb.nn.quantize(model, "binary", 32, class_predicate=predicate, rotate=True, biases=True)
    layers = dict(tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module))
    q = layers["model.layers.0.self_attn.q_proj"]
    assert q.rotation.block == 64 and layers["model.layers.0.mlp.down_proj"].rotation.block == 128
    assert layers["model.layers.0.self_attn.v_proj"].rotation is None
    assert isinstance(layers["model.embed_tokens"], nn.Embedding)
    assert layer_bits(model) > 1.25  # signs on top of binary + fp16 scales per 32
    assert mx.all(mx.isfinite(model(x))).item() and model(x).shape == before.shape
    with pytest.raises(ValueError, match="embed_tokens.*no rotation"):
        lb.nn.quantize(
            tiny_model(llama_config()),
            "ternary",
            32,
            class_predicate=lambda p, m: isinstance(m, nn.Embedding),
            rotate=True,
        )


# Layers with a few outlier input features, as LLM layers have: weight
# columns 8x larger than the rest, or activations 20x larger. A group holding
# an outlier weight has its scale set by it, so RTN and GPTQ round most of its
# other weights to zero; an outlier activation multiplies its column's
# rounding error. The rotation spreads each outlier over a Hadamard block.
N, K, OUTLIERS = 64, 256, [5, 70, 140, 200]


def _outlier_layer(weight_factor=8.0, input_factor=1.0, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((N, K)).astype(np.float32)
    w[:, OUTLIERS] *= weight_factor
    mix = np.eye(K) + rng.standard_normal((K, K)) / np.sqrt(K)  # correlated inputs
    x = (rng.standard_normal((1024, K)) @ mix).astype(np.float32)
    x[:, OUTLIERS] *= input_factor
    return w, x


def _as_linear(w):
    linear = nn.Linear(K, N, bias=False)
    linear.weight = mx.array(w)
    return linear


def _output_error(layer, w, x):
    """||X (W - Wq)^T|| / ||X W^T|| with Wq the layer's unrotated weight,
    checked against what the layer computes."""
    wq = _np(dense_weight(layer))
    assert _rel(_np(layer(mx.array(x))), x @ wq.T) < 1e-4
    return np.linalg.norm(x @ (w - wq).T) / np.linalg.norm(x @ w.T)


class _OneLayer(nn.Module):
    """Token ids -> rows of a fixed input table -> the layer under test."""

    def __init__(self, table, w):
        super().__init__()
        self.table = nn.Embedding(*table.shape)
        self.table.weight = mx.array(table)
        self.proj = _as_linear(w)

    def __call__(self, ids):
        return self.proj(self.table(ids))


# (weight factor, input factor, bound on the error ratio); measured ratios
# (seeds 0, 1): 0.75, 0.75 and 0.46, 0.41. A no-op rotation gives 1.
@pytest.mark.parametrize("factors", [(8.0, 1.0, 0.85), (1.0, 20.0, 0.6)], ids=["weight", "input"])
def test_gptq_with_rotation_lowers_output_error_on_outlier_features(factors):
    weight_factor, input_factor, bound = factors
    w, x = _outlier_layer(weight_factor, input_factor)
    calib = mx.array(np.random.default_rng(1).integers(0, x.shape[0], size=(8, 256)))
    errors = {}
    for rotate in (False, True):
        model = _OneLayer(x, w)
        gptq_model(model, calib, "ternary", 64, rotate=rotate)
        assert (model.proj.rotation is not None) == rotate
        errors[rotate] = _output_error(model.proj, w, x)
    assert errors[True] < bound * errors[False], errors


def test_gptq_rotation_errors():
    w, x = _outlier_layer()
    with pytest.raises(ValueError, match="block size limit"):
        gptq_model(_OneLayer(x, w), mx.zeros((1, 4), mx.int32), rotate=True, rotation_block=3)


# Checkpoints: convert -> mlx_lm.load / mlx_lowbit.lm.load.

LAYER = "model.layers.0.self_attn.q_proj"


@pytest.fixture(scope="module")
def rotated_dir(tmp_path_factory):
    from lm_models import dense_model_dir

    root = tmp_path_factory.mktemp("rotated")
    src = dense_model_dir(root / "dense", llama_config())
    return src, lb.lm.convert(src, root / "out", "ternary", 32, rotate=True, rotation_block=64)


def _loaders():
    import mlx_lm

    return {"mlx_lm.load": mlx_lm.load, "mlx_lowbit.lm.load": lb.lm.load}


def test_convert_records_the_rotation(rotated_dir):
    import json

    _, out = rotated_dir
    config = json.loads((out / "config.json").read_text())
    assert config["mlx_lowbit"] == {"method": "rtn", "rotation": "hadamard"}
    q = config["quantization"]
    entry = {"kind": "hadamard", "block": 64, "seeded": True}
    assert q[LAYER]["rotation"] == entry
    assert q["model.layers.1.mlp.down_proj"]["rotation"] == entry
    weights = mx.load(str(out / "model.safetensors"))
    assert weights[f"{LAYER}.rotation_seed"].tolist() == [0, 64]  # (seed, block)
    assert not any(k.endswith("rotation_signs") for k in weights)


@pytest.mark.parametrize("loader", ["mlx_lm.load", "mlx_lowbit.lm.load"])
def test_load_gives_identical_logits(rotated_dir, loader):
    from mlx_lowbit.lm.convert import load_source

    src, out = rotated_dir
    model, _, _ = load_source(src)
    lb.nn.quantize(model, "ternary", 32, rotate=True, rotation_block=64)
    loaded, _ = _loaders()[loader](str(out))
    assert loaded.model.layers[1].mlp.down_proj.rotation.block == 64
    x = tokens()
    assert mx.array_equal(loaded(x), model(x)).item()


@pytest.mark.parametrize("stored", ["seed", "signs"])
@pytest.mark.parametrize("loader", ["mlx_lm.load", "mlx_lowbit.lm.load"])
def test_loaded_signs_come_from_the_checkpoint(rotated_dir, tmp_path, loader, stored):
    # Other seeds than the loader's placeholder signs: equal logits mean the
    # stored seeds (or packed signs, as checkpoints before seeds) were used.
    from mlx_lowbit.lm.convert import load_source, save_model_dir

    src, _ = rotated_dir
    model, tokenizer, config = load_source(src)
    layers = tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)

    def _stored(r):
        return r if stored == "seed" else Rotation(r.sign_bits)

    seeded = [
        (
            path,
            LowBitLinear.from_linear(
                m, "ternary", 32, rotation=_stored(Rotation.random(m.weight.shape[1], seed=i + 1))
            ),
        )
        for i, (path, m) in enumerate(layers)
        if isinstance(m, nn.Linear) and not path.endswith("lm_head")
    ]
    model.update_modules(tree_unflatten(seeded))
    out = save_model_dir(tmp_path / "seeded", model, tokenizer, config)
    weights = mx.load(str(out / "model.safetensors"))
    assert f"{LAYER}.rotation_{'seed' if stored == 'seed' else 'signs'}" in weights
    loaded, _ = _loaders()[loader](str(out))
    x = tokens()
    assert mx.array_equal(loaded(x), model(x)).item()


def mlx_lm_load(path):
    import mlx_lm

    return mlx_lm.load(path)


def _tampered(out, dst, edit_weights=None, edit_entry=None):
    import json
    import shutil

    shutil.copytree(out, dst)
    if edit_weights:
        w = mx.load(str(dst / "model.safetensors"))
        edit_weights(w)
        mx.save_safetensors(str(dst / "model.safetensors"), w)
    if edit_entry:
        config = json.loads((dst / "config.json").read_text())
        edit_entry(config["quantization"][LAYER])
        (dst / "config.json").write_text(json.dumps(config))
    return dst


SEED = f"{LAYER}.rotation_seed"
TAMPERED = {
    "missing seed": (lambda w: w.pop(SEED), None, r"rotation_seed"),
    "wrong shape": (
        lambda w: w.update({SEED: mx.zeros((3,), mx.uint32)}),
        None,
        r"rotation_seed",
    ),
    "config without rotation": (None, lambda e: e.pop("rotation"), r"rotation_seed"),
    "config with another block": (
        None,
        lambda e: e.update(rotation={"kind": "hadamard", "block": 32, "seeded": True}),
        r"rotation_seed",  # the tensor holds the block
    ),
    "config with stored signs": (
        None,
        lambda e: e.update(rotation={"kind": "hadamard", "block": 64}),
        r"rotation_s",
    ),
}


@pytest.mark.parametrize("loader", ["mlx_lm.load", "mlx_lowbit.lm.load"])
@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_rotation_raises(rotated_dir, tmp_path, case, loader):
    _, out = rotated_dir
    edit_weights, edit_entry, message = TAMPERED[case]
    bad = _tampered(out, tmp_path / "bad", edit_weights, edit_entry)
    if (case, loader) == ("config with another block", "mlx_lm.load"):
        # The tensor's shape agrees; mlx-lm's loader checks no values, so
        # the first call refuses.
        model, _ = mlx_lm_load(str(bad))
        with pytest.raises(ValueError, match=message):
            model(tokens())
        return
    with pytest.raises(ValueError, match="(?s)" + message):
        _loaders()[loader](str(bad))


def test_signs_of_the_wrong_dtype_raise_at_load_and_call(rotated_dir, tmp_path):
    import mlx_lm

    _, out = rotated_dir
    bad = _tampered(out, tmp_path / "bad", lambda w: w.update({SEED: w[SEED].astype(mx.int32)}))
    with pytest.raises(ValueError, match="(?s)q_proj.*uint32"):
        lb.lm.load(str(bad))
    model, _ = mlx_lm.load(str(bad))  # no dtype check there, so the call refuses
    with pytest.raises(ValueError, match="uint32"):
        model(tokens())


def test_cli_convert_with_rotation(tmp_path):
    import json

    from lm_models import dense_model_dir

    from mlx_lowbit.cli import main

    src = dense_model_dir(tmp_path / "dense", llama_config())
    out = tmp_path / "out"
    main(
        ["convert", str(src), str(out), "--group-size", "32", "--rotate", "--rotation-block", "32"]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["mlx_lowbit"]["rotation"] == "hadamard"
    model, _ = lb.lm.load(str(out))
    assert model.model.layers[0].mlp.down_proj.rotation.block == 32


def test_convert_with_gptq_and_rotation(tmp_path):
    import json

    import mlx_lm
    from lm_models import dense_model_dir

    src = dense_model_dir(tmp_path / "dense", llama_config())
    out = lb.lm.convert(
        src,
        tmp_path / "out",
        "ternary",
        32,
        method="gptq",
        calib_samples=4,
        calib_length=32,
        rotate=True,
    )
    record = json.loads((out / "config.json").read_text())["mlx_lowbit"]
    assert record["method"] == "gptq" and record["rotation"] == "hadamard"
    ours, _ = lb.lm.load(str(out))
    theirs, _ = mlx_lm.load(str(out))
    assert ours.model.layers[0].self_attn.q_proj.rotation.block == 64
    x = tokens()
    assert mx.array_equal(ours(x), theirs(x)).item()
    with pytest.raises(ValueError, match="block size limit"):
        lb.lm.convert(src, tmp_path / "bad", "ternary", 32, rotate=True, rotation_block=48)
    assert not (tmp_path / "bad").exists()
