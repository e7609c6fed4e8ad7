# Copyright © 2026 mlx-lowbit contributors.
"""convert -> mlx-lm model directory -> mlx_lm.load / mlx_lowbit.lm.load,
and the errors a damaged directory gives."""

import json
import os

import mlx.core as mx
import mlx.nn as nn
import mlx_lm
import pytest
from lm_models import dense_model_dir, llama_config, tokens
from mlx.utils import tree_flatten

import mlx_lowbit  # noqa: F401  (registers our layers with mlx.nn)
from mlx_lowbit import lm
from mlx_lowbit.nn import LowBitEmbedding, LowBitLinear

LAYER = "model.layers.0.self_attn.q_proj"


def _recipe(path, module):
    if ".mlp." in path:
        return {"fmt": "codebook", "vector_size": 8, "index_bits": 6}
    if path.endswith("v_proj"):
        return {"fmt": "binary", "biases": True}
    return isinstance(module, nn.Linear) and not path.endswith("lm_head")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A dense tiny llama converted with a mixed recipe, and the in-memory
    model that convert saved."""
    root = tmp_path_factory.mktemp("convert")
    src = dense_model_dir(root / "dense", llama_config())
    out = lm.convert(src, root / "lowbit", "ternary", 32, class_predicate=_recipe)
    model, _, _ = lm.convert.__globals__["load_source"](src)
    mlx_lowbit.nn.quantize(model, "ternary", 32, class_predicate=_recipe)
    return out, model


def test_directory_layout(converted):
    out, _ = converted
    files = sorted(os.listdir(out))
    assert "config.json" in files and "model.safetensors" in files and "tokenizer.json" in files
    config = json.loads((out / "config.json").read_text())
    q = config["quantization"]
    assert q["mode"] == "affine"  # the top level stays a built-in mode
    assert q[LAYER] == {
        "mode": "lowbit",
        "fmt": "ternary",
        "group_size": 32,
        "scale_dtype": "float16",
    }
    assert q["model.layers.1.self_attn.v_proj"]["biases"] is True
    assert q["model.layers.1.mlp.up_proj"]["index_bits"] == 6
    assert "lm_head" not in q and "model.embed_tokens" not in q
    weights = mx.load(str(out / "model.safetensors"))
    assert f"{LAYER}.packed" in weights and f"{LAYER}.weight" not in weights


@pytest.mark.parametrize("loader", ["mlx_lm.load", "mlx_lowbit.lm.load"])
def test_load_gives_identical_logits(converted, loader):
    out, model = converted
    loaded, tokenizer = (mlx_lm.load if loader == "mlx_lm.load" else lm.load)(str(out))
    q = loaded.model.layers[1].mlp.down_proj
    assert isinstance(q, LowBitLinear) and q.fmt == "codebook"
    x = tokens()
    assert mx.array_equal(loaded(x), model(x))
    # mlx-lm's generation works unchanged on the loaded model.
    steps = list(mlx_lm.stream_generate(loaded, tokenizer, "hi", max_tokens=4))
    assert len(steps) == 4 and all(s.token is not None for s in steps)


def test_parameter_count_is_honest(converted):
    out, model = converted
    index = json.loads((out / "model.safetensors.index.json").read_text())
    expected = 0
    for _, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(m, LowBitLinear):
            n, k = m.qweight.shape
            expected += n * k
        else:
            expected += sum(v.size for _, v in tree_flatten(m.parameters()))
    assert index["metadata"]["total_parameters"] == expected


def test_convert_never_leaves_a_partial_directory(tmp_path, monkeypatch):
    src = dense_model_dir(tmp_path / "dense", llama_config())
    import mlx_lm.utils

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(mlx_lm.utils, "save_config", broken)
    with pytest.raises(OSError, match="disk full"):
        lm.convert(src, tmp_path / "out", "binary", 32)
    assert sorted(os.listdir(tmp_path)) == ["dense"]
    with pytest.raises(FileExistsError):
        lm.convert(src, tmp_path / "dense", "binary", 32)


def test_cli_convert(tmp_path, capsys):
    from mlx_lowbit.cli import main

    src = dense_model_dir(tmp_path / "dense", llama_config())
    main(
        [
            "convert",
            str(src),
            str(tmp_path / "out"),
            "--fmt",
            "binary",
            "--group-size",
            "64",
            "--biases",
        ]
    )
    assert "bits per weight" in capsys.readouterr().out
    model, _ = lm.load(str(tmp_path / "out"))
    layer = model.model.layers[0].mlp.gate_proj
    assert layer.fmt == "binary" and layer.group_size == 64 and "group_biases" in layer


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_cli_convert_with_a_recipe(tmp_path, capsys, method):
    """--recipe: globs -> per-layer settings, first match wins, false keeps
    a layer dense; the result loads with plain mlx_lm.load."""
    from mlx_lowbit.cli import main

    src = dense_model_dir(tmp_path / "dense", llama_config())
    recipe = {
        "model.layers.0.*": False,  # the first block stays dense
        "*.mlp.down_proj": {"fmt": "binary", "biases": True, "group_size": 64},
        "*.v_proj": {"fmt": "codebook", "group_size": 64, "vector_size": 8, "index_bits": 6},
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    args = ["convert", str(src), str(out), "--fmt", "ternary", "--group-size", "32"]
    args += ["--recipe", str(tmp_path / "recipe.json"), "--method", method]
    main(args + (["--calib-samples", "4", "--calib-length", "32"] if method == "gptq" else []))
    assert "bits per weight" in capsys.readouterr().out
    entries = json.loads((out / "config.json").read_text())["quantization"]
    assert not any(k.startswith("model.layers.0.") for k in entries if isinstance(entries[k], dict))
    down, v, q = (
        entries[f"model.layers.1.{k}"]
        for k in ("mlp.down_proj", "self_attn.v_proj", "self_attn.q_proj")
    )
    assert (down["fmt"], down["group_size"], down["biases"]) == ("binary", 64, True)
    assert (v["fmt"], v["vector_size"], v["index_bits"]) == ("codebook", 8, 6)
    assert (q["fmt"], q["group_size"]) == ("ternary", 32)
    ours, _ = lm.load(str(out))
    theirs, _ = mlx_lm.load(str(out))
    assert isinstance(ours.model.layers[0].mlp.down_proj, nn.Linear)
    assert mx.array_equal(ours(tokens()), theirs(tokens()))


def test_bad_recipes_are_named(tmp_path):
    from mlx_lowbit.lm.convert import recipe_predicate

    with pytest.raises(ValueError, match="does not exist"):
        recipe_predicate(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        recipe_predicate(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        recipe_predicate(tmp_path / "list.json")
    with pytest.raises(ValueError, match="'\\*.q_proj' maps to 3"):
        recipe_predicate({"*.q_proj": 3})


def _tamper(src, dst, edit_weights=None, edit_config=None):
    import shutil

    shutil.copytree(src, dst)
    if edit_weights:
        w = mx.load(str(dst / "model.safetensors"))
        edit_weights(w)
        mx.save_safetensors(str(dst / "model.safetensors"), w)
    if edit_config:
        config = json.loads((dst / "config.json").read_text())
        edit_config(config["quantization"])
        (dst / "config.json").write_text(json.dumps(config))
    return dst


def _set(key, fn):
    def edit(w):
        w[key] = fn(w[key])

    return edit


TAMPERED = {
    "missing tensor": (
        lambda w: w.pop(f"{LAYER}.group_scales"),
        None,
        r"Missing.*q_proj\.group_scales",
    ),
    "wrong shape": (_set(f"{LAYER}.packed", lambda a: a[:, :2]), None, r"shape.*q_proj\.packed"),
    "wrong packed dtype": (
        _set(f"{LAYER}.packed", lambda a: a.astype(mx.int32)),
        None,
        r"q_proj.*packed",
    ),
    "wrong scale dtype": (
        _set(f"{LAYER}.group_scales", lambda a: a.astype(mx.float32)),
        None,
        r"q_proj.*scale_dtype='float16'.*'float32'",
    ),
    "ternary code 3": (_set(f"{LAYER}.packed", lambda a: a | 3), None, r"q_proj.*code 3"),
    "config says binary": (None, lambda q: q[LAYER].update(fmt="binary"), r"q_proj\.packed"),
    "config says codebook": (
        None,
        lambda q: q[LAYER].update(fmt="codebook", vector_size=8, index_bits=6),
        r"q_proj\.codebook",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_checkpoint_errors_name_the_layer(converted, tmp_path, case):
    out, _ = converted
    edit_weights, edit_config, message = TAMPERED[case]
    bad = _tamper(out, tmp_path / "bad", edit_weights, edit_config)
    with pytest.raises(ValueError, match="(?s)" + message):
        lm.load(str(bad))


def test_bfloat16_model_keeps_bfloat16_activations_through_a_saved_embedding(tmp_path):
    """A bfloat16 model whose embedding is quantized (float16 scales) still
    starts its activations in bfloat16 after convert and either loader."""
    import mlx.nn as nn
    import mlx_lm
    from lm_models import dense_model_dir, llama_config

    src = dense_model_dir(tmp_path / "src", llama_config())

    def everything(path, module):
        return isinstance(module, (nn.Linear, nn.Embedding)) and not path.endswith("lm_head")

    out = lm.convert(
        src, tmp_path / "out", "ternary", 32, dtype=mx.bfloat16, class_predicate=everything
    )
    entry = json.loads((out / "config.json").read_text())["quantization"]["model.embed_tokens"]
    assert entry["output_dtype"] == "bfloat16" and entry["scale_dtype"] == "float16"
    for load in (mlx_lm.load, lm.load):
        model, _ = load(str(out))
        emb = model.model.embed_tokens
        assert isinstance(emb, LowBitEmbedding), load
        assert emb(mx.array([[1, 2]])).dtype == mx.bfloat16, load


def test_cli_convert_sequential_gptq_is_recorded(tmp_path):
    from mlx_lowbit.cli import main

    src = dense_model_dir(tmp_path / "dense", llama_config())
    out = tmp_path / "out"
    args = ["convert", str(src), str(out), "--fmt", "ternary", "--group-size", "32"]
    main(
        args + ["--method", "gptq", "--sequential", "--calib-samples", "4", "--calib-length", "32"]
    )
    assert json.loads((out / "config.json").read_text())["mlx_lowbit"]["sequential"] is True
    ours, _ = lm.load(str(out))
    theirs, _ = mlx_lm.load(str(out))
    assert mx.array_equal(ours(tokens()), theirs(tokens()))
    with pytest.raises(ValueError, match="sequential applies to method='gptq' or 'distill'"):
        lm.convert(src, tmp_path / "o2", "ternary", 32, sequential=True)
    assert not (tmp_path / "o2").exists()
