# Copyright © 2026 mlx-lowbit contributors.
"""Distillation: the training layer packs back to exactly the weight it
trained, its gradients are the straight-through ones, and training lowers the
KL to the float model on held-out windows."""

import copy
import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from lm_models import llama_config, tiny_model, tiny_tokenizer
from mlx.utils import tree_flatten

import mlx_lowbit as lb
from mlx_lowbit.quant.distill import (
    FakeQuantLinear,
    distill_model,
    kl_divergence,
    learning_rate_at,
    sample_text,
)

CASES = [
    ("ternary", {}),
    ("binary", {}),
    ("binary", {"biases": True}),
    ("codebook", {"vector_size": 8, "index_bits": 6}),
    ("codebook", {"vector_size": 16, "index_bits": 8}),
]
IDS = ["ternary", "binary", "binary+bias", "codebook-v8", "codebook-v16"]


def _weight(fmt, opts, n=24, k=128, gs=32, seed=0, scale_dtype=mx.float16):
    w = mx.random.normal((n, k), key=mx.random.key(seed))
    return w, lb.quantize(w, fmt, gs, scale_dtype=scale_dtype, **opts)


@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
@pytest.mark.parametrize("scale_dtype", [mx.float16, mx.float32])
def test_packs_back_to_the_weight_it_started_from(fmt, opts, scale_dtype):
    _, qw = _weight(fmt, opts, scale_dtype=scale_dtype)
    back = FakeQuantLinear.from_qweight(qw).to_qweight()
    assert back.fmt == qw.fmt and back.scales.dtype == scale_dtype
    for name, a in qw.arrays().items():
        if name == "packed" and fmt == "codebook":
            # Indices of equal patterns may differ; the weight may not.
            continue
        assert mx.array_equal(back.arrays()[name], a), name
    assert mx.array_equal(lb.dequantize(back, mx.float32), lb.dequantize(qw, mx.float32))


@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32])
def test_forward_matches_the_packed_kernel(fmt, opts, dtype):
    _, qw = _weight(fmt, opts)
    bias = mx.random.normal((qw.shape[0],), key=mx.random.key(3))
    layer = FakeQuantLinear.from_qweight(qw, bias)
    x = (mx.random.normal((2, 3, qw.shape[1]), key=mx.random.key(4)) / 11).astype(dtype)
    want = (lb.matmul(x.astype(mx.float32), qw) + bias).astype(mx.float32)
    got = layer(x.astype(mx.float32))
    assert got.shape == (2, 3, qw.shape[0])
    assert mx.allclose(got, want, atol=1e-4, rtol=1e-4)
    assert layer(x).dtype == dtype


@pytest.mark.parametrize("fmt,opts", CASES, ids=IDS)
def test_gradients_are_straight_through(fmt, opts):
    _, qw = _weight(fmt, opts)
    layer = FakeQuantLinear.from_qweight(qw)
    x = mx.random.normal((5, qw.shape[1]), key=mx.random.key(5))
    g_out = mx.random.normal((5, qw.shape[0]), key=mx.random.key(6))

    def loss(params):
        layer.update(params)
        return (layer(x) * g_out).sum()

    grads = mx.grad(loss)(layer.trainable_parameters())
    g_w = g_out.T @ x  # d loss / d dense weight
    assert mx.allclose(grads["weight"], g_w, atol=1e-4, rtol=1e-4)
    # d / d scale = sum over the group of g * code (codes as +-1 / 0 per weight).
    t = layer._code_weights(layer.codes())
    n, g = layer.scales.shape
    want = (g_w * t).reshape(n, g, -1).sum(-1)
    assert mx.allclose(grads["scales"], want, atol=1e-3, rtol=1e-4)
    if "biases" in opts:
        assert mx.allclose(grads["biases"], g_w.reshape(n, g, -1).sum(-1), atol=1e-3, rtol=1e-4)
    assert "patterns" not in grads


def test_codes_follow_the_latent_weight():
    _, qw = _weight("ternary", {})
    layer = FakeQuantLinear.from_qweight(qw)
    s = np.repeat(np.asarray(layer.scales), 32, axis=1)
    # Moving a weight past half a step flips its code, as the packed layer will see.
    layer.weight = mx.array(np.asarray(layer.weight) + 0.6 * s)
    t = np.asarray(layer.codes())
    assert set(np.unique(t)) <= {-1.0, 0.0, 1.0}
    before = np.asarray(lb.dequantize(qw, mx.float32)) / s
    assert np.array_equal(t, np.clip(np.round(before + 0.6), -1, 1))
    assert mx.array_equal(
        lb.dequantize(layer.to_qweight(), mx.float32),
        mx.array(t * np.asarray(layer.scales.astype(mx.float16)).repeat(32, 1).astype(np.float32)),
    )


@pytest.fixture(scope="module")
def tiny():
    from mlx_lowbit.quant import calibration_batches

    teacher = tiny_model(llama_config())
    tok = tiny_tokenizer()  # one token per byte
    batches = calibration_batches(tok, None, num_samples=96, sequence_length=32)
    # Held-out windows of other text: the shipped evaluation text.
    held = mx.array(tok.encode(lb.lm.eval_text(), add_special_tokens=False)[:256]).reshape(8, 32)
    return teacher, batches, held


def _kl(model, teacher, held):
    return kl_divergence(model(held), teacher(held)).item()


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
def test_trains_in_a_lower_compute_dtype_on_float32_parameters(tiny, monkeypatch, dtype):
    teacher, batches, held = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32)
    before = {k: v.dtype for k, v in tree_flatten(model.parameters())}
    seen = []
    call = FakeQuantLinear.__call__

    def spy(self, x):
        # Each low-bit layer gets x in the compute dtype (float32 only for
        # the held-out KL) while its own latent weight stays float32.
        seen.append((x.dtype, self.weight.dtype, self.scales.dtype))
        return call(self, x)

    monkeypatch.setattr(FakeQuantLinear, "__call__", spy)
    norms = []
    result = distill_model(
        model,
        teacher,
        batches,
        held_out=held,
        steps=30,
        batch_size=8,
        learning_rate=3e-4,
        compute_dtype=dtype,
        compile=False,
        progress=lambda i, _: norms.append(model.model.norm.weight.dtype),
    )
    assert {s[0] for s in seen} == {mx.float32, dtype}
    assert {s[1:] for s in seen} == {(mx.float32, mx.float32)}
    # Between steps the trained parameters are float32 (the optimizer's).
    assert set(norms) == {mx.float32}
    assert result.kl_after < 0.8 * result.kl_before and all(np.isfinite(result.losses))
    # Packed back, in the dtypes it started with.
    assert {k: v.dtype for k, v in tree_flatten(model.parameters())} == before
    assert _kl(model, teacher, held) == pytest.approx(result.kl_after, rel=0.05)
    with pytest.raises(ValueError, match="compute_dtype must be"):
        distill_model(model, teacher, batches, steps=1, compute_dtype=mx.int8)


@pytest.mark.parametrize("fmt,opts", CASES[::2] + CASES[3:4], ids=IDS[::2] + IDS[3:4])
def test_lowers_held_out_kl_and_packs_what_it_trained(tiny, fmt, opts):
    teacher, batches, held = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, fmt, 32, **opts)
    rtn_kl = _kl(model, teacher, held)
    result = distill_model(
        model, teacher, batches, held_out=held, steps=30, batch_size=8, learning_rate=3e-4
    )
    assert result.kl_before == pytest.approx(rtn_kl, rel=1e-3)
    assert result.kl_after < 0.8 * result.kl_before
    assert len(result.losses) == 30 and all(np.isfinite(result.losses))
    # The model is back in the packed format, and runs what training measured
    # (up to the scales' rounding to float16).
    layers = [m for _, m in model.named_modules() if isinstance(m, lb.nn.LowBitLinear)]
    assert len(layers) == 14 and all(m.qweight.fmt == fmt for m in layers)
    assert not any(isinstance(m, FakeQuantLinear) for _, m in model.named_modules())
    assert _kl(model, teacher, held) == pytest.approx(result.kl_after, rel=0.05)
    assert model.model.norm.weight.dtype == teacher.model.norm.weight.dtype
    assert model.trainable_parameters()["model"]["norm"]["weight"] is not None


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
def test_micro_batches_take_the_same_steps(tiny, compiled):
    """Gradient accumulation over micro-batches is the same step as the whole
    batch at once (up to float32 summation order)."""
    teacher, batches, held = tiny
    base = copy.deepcopy(teacher)
    lb.nn.quantize(base, "ternary", 32)
    runs = []
    for micro in (None, 2):
        model = copy.deepcopy(base)
        result = distill_model(
            model,
            teacher,
            batches,
            held_out=held,
            steps=3,
            batch_size=4,
            learning_rate=1e-3,
            train_weights=False,
            compile=compiled,
            micro_batch=micro,
        )
        runs.append((result, model.model.layers[0].mlp.down_proj.qweight.scales))
    (whole, s0), (micro, s1) = runs
    assert micro.losses == pytest.approx(whole.losses, rel=1e-4)
    assert micro.kl_after == pytest.approx(whole.kl_after, rel=1e-4)
    np.testing.assert_allclose(np.array(s1, np.float32), np.array(s0, np.float32), rtol=1e-3)
    with pytest.raises(ValueError, match="micro_batch=3 must be >= 1 and divide batch_size=4"):
        distill_model(copy.deepcopy(base), teacher, batches, batch_size=4, micro_batch=3)


def test_time_limit_stops_early_and_records_the_steps_done(tiny):
    teacher, batches, held = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32)
    # Any step takes longer than a microsecond: one step, then the limit.
    result = distill_model(
        model, teacher, batches, held_out=held, steps=50, batch_size=2, time_limit=1e-6
    )
    assert result.steps == 1 and len(result.losses) == 1
    assert result.tokens == 2 * batches.shape[1]
    assert all(isinstance(m, lb.nn.LowBitLinear) for m in [model.model.layers[0].mlp.up_proj])
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="time_limit must be > 0"):
            distill_model(copy.deepcopy(teacher), teacher, batches, time_limit=bad)


def test_learning_rate_warms_up_then_decays_by_steps_or_by_the_clock():
    lr = 1e-3
    # Warmup: linear up to the full rate at the last warmup step.
    assert learning_rate_at(0, 0.0, 100, 10, lr) == pytest.approx(lr / 10)
    assert learning_rate_at(9, 0.0, 100, 10, lr) == pytest.approx(lr)
    # Cosine from the full rate to a tenth over the remaining steps.
    assert learning_rate_at(10, 0.0, 100, 10, lr) == pytest.approx(lr)
    assert learning_rate_at(55, 0.0, 100, 10, lr) == pytest.approx(0.55 * lr)
    assert learning_rate_at(100, 0.0, 100, 10, lr) == pytest.approx(lr / 10)
    # With a time limit the decay follows whichever runs out first: halfway
    # through the clock at a tenth of the steps is the halfway rate, and at
    # the limit the rate is the low one whatever the step count.
    assert learning_rate_at(19, 30.0, 100, 10, lr, time_limit=60.0) == pytest.approx(0.55 * lr)
    assert learning_rate_at(20, 60.0, 100, 10, lr, time_limit=60.0) == pytest.approx(lr / 10)
    assert (
        learning_rate_at(20, 1.0, 100, 10, lr, time_limit=60.0)
        > learning_rate_at(20, 1.0, 100, 10, lr) * 0.99
    )
    # More warmup than steps: the warmup is cut to the run.
    assert learning_rate_at(0, 0.0, 1, 10, lr) == pytest.approx(lr)


def test_a_run_stopped_by_the_clock_decays_by_the_clock(tiny, monkeypatch):
    import mlx_lowbit.quant.distill as distill

    teacher, batches, held = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32)
    calls = []

    def spy(step, elapsed, *rest):
        calls.append((elapsed, learning_rate_at(step, elapsed, *rest)))
        return calls[-1][1]

    monkeypatch.setattr(distill, "learning_rate_at", spy)
    limit = 0.5
    result = distill_model(
        model,
        teacher,
        batches,
        held_out=held,
        steps=10_000,
        batch_size=2,
        warmup=1,
        learning_rate=1e-3,
        time_limit=limit,
    )
    assert 2 <= result.steps < 10_000
    # By steps alone the rate would still be ~1e-3; each step's rate is the
    # cosine of the time fraction instead, so it has fallen with the clock.
    for elapsed, rate in calls[2:]:
        expect = 1e-4 + 9e-4 * 0.5 * (1 + np.cos(np.pi * min(1.0, elapsed / limit)))
        assert rate == pytest.approx(expect, rel=1e-2)
    assert calls[-1][1] < calls[1][1]


def test_scales_only_keeps_the_codes(tiny):
    teacher, batches, _ = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32)
    before = model.model.layers[0].mlp.up_proj.qweight
    result = distill_model(
        model, teacher, batches, steps=10, batch_size=4, learning_rate=1e-3, train_weights=False
    )
    after = model.model.layers[0].mlp.up_proj.qweight
    assert mx.array_equal(after.packed, before.packed)
    assert not mx.array_equal(after.scales, before.scales)
    assert result.kl_after < result.kl_before


def test_sample_text_continues_the_prompts(tiny):
    teacher, batches, _ = tiny
    out = sample_text(teacher, batches[:3, :4], 12, seed=1)
    assert out.shape == (3, 12) and mx.array_equal(out[:, :4], batches[:3, :4])
    assert mx.array_equal(out, sample_text(teacher, batches[:3, :4], 12, seed=1))
    chunked = sample_text(teacher, batches[:5, :4], 12, seed=1, chunk=2)
    assert chunked.shape == (5, 12) and mx.array_equal(chunked[:, :4], batches[:5, :4])
    with pytest.raises(ValueError, match="length must exceed"):
        sample_text(teacher, batches[:3, :4], 4)


def test_bad_input_errors(tiny):
    teacher, batches, _ = tiny
    with pytest.raises(ValueError, match="no low-bit linear layers"):
        distill_model(copy.deepcopy(teacher), teacher, batches, steps=1)
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32)
    with pytest.raises(ValueError, match=r"batches must be \(S, L\)"):
        distill_model(model, teacher, batches[0], steps=1)
    with pytest.raises(ValueError, match="steps and batch_size"):
        distill_model(model, teacher, batches, steps=0)
    with pytest.raises(ValueError, match="learning_rate and temperature"):
        distill_model(model, teacher, batches, steps=1, learning_rate=float("nan"))
    model = copy.deepcopy(teacher)
    model.model.layers[0].mlp.up_proj = lb.nn.LowBitLinear.from_linear(
        teacher.model.layers[0].mlp.up_proj, "ternary", 32, activation_bits=8
    )
    with pytest.raises(ValueError, match="activation_bits=8"):
        distill_model(model, teacher, batches, steps=1)


def test_convert_with_distill_records_it_and_loads(tmp_path):
    from lm_models import dense_model_dir
    from mlx_lm import load as mlx_lm_load

    src = dense_model_dir(tmp_path / "src", llama_config())
    out = lb.lm.convert(
        src,
        tmp_path / "out",
        "binary",
        32,
        method="distill",
        calib_samples=9,
        calib_length=32,
        distill={"steps": 4, "batch_size": 2, "generated": 3, "learning_rate": 1e-3},
        biases=True,
    )
    record = json.loads((out / "config.json").read_text())["mlx_lowbit"]
    assert record["method"] == "distill" and record["init"] == "gptq"
    assert record["calibration"] == "pydoc_data.topics" and record["calibration_tokens"] == 9 * 32
    assert record["generated_tokens"] == 3 * 32 and record["steps"] == 4
    assert len(record["loss_curve"]) == 4 and record["kl_after"] > 0
    x = mx.array([[1, 2, 3, 4, 5]])
    ours, _ = lb.lm.load(out)
    theirs, _ = mlx_lm_load(str(out))
    assert mx.array_equal(ours(x), theirs(x))
    layer = ours.model.layers[1].self_attn.o_proj
    assert isinstance(layer, lb.nn.LowBitLinear) and layer.qweight.biases is not None


def test_convert_distill_setting_errors(tmp_path):
    src = tmp_path / "missing"
    with pytest.raises(ValueError, match="Unknown distill setting"):
        lb.lm.convert(src, tmp_path / "o", method="distill", distill={"stepz": 3})
    with pytest.raises(ValueError, match="apply to method='distill' only"):
        lb.lm.convert(src, tmp_path / "o", method="gptq", distill={"steps": 3})
    with pytest.raises(ValueError, match="init must be 'rtn' or 'gptq'"):
        lb.lm.convert(src, tmp_path / "o", method="distill", distill={"init": "awq"})
    with pytest.raises(ValueError, match="micro_batch=3 must be >= 1 and divide batch_size=8"):
        lb.lm.convert(src, tmp_path / "o", method="distill", distill={"micro_batch": 3})
    with pytest.raises(ValueError, match="time_limit must be > 0 seconds"):
        lb.lm.convert(src, tmp_path / "o", method="distill", distill={"time_limit": 0})
    with pytest.raises(ValueError, match="compute_dtype must be one of float32, bfloat16"):
        lb.lm.convert(src, tmp_path / "o", method="distill", distill={"compute_dtype": "int8"})
    assert not (tmp_path / "o").exists()


def test_tokenizer_fixture_is_byte_level():
    # The conversion test above relies on one token per byte of the corpus.
    assert len(tiny_tokenizer().encode("abc", add_special_tokens=False)) == 3


def test_fake_quant_layer_is_a_module():
    _, qw = _weight("binary", {"biases": True})
    layer = FakeQuantLinear.from_qweight(qw)
    assert isinstance(layer, nn.Module)
    assert set(layer.trainable_parameters()) == {"weight", "scales", "biases"}


def test_cli_convert_with_distill(tmp_path):
    from lm_models import dense_model_dir

    from mlx_lowbit.lm.convert import main

    src = dense_model_dir(tmp_path / "src", llama_config())
    out = tmp_path / "out"
    args = [str(src), str(out), "--fmt", "ternary", "--group-size", "32", "--method", "distill"]
    args += ["--calib-samples", "9", "--calib-length", "32", "--steps", "3", "--batch-size", "2"]
    args += ["--init", "rtn", "--scales-only", "--micro-batch", "1", "--time-limit", "600"]
    main(args + ["--compute-dtype", "bfloat16"])
    record = json.loads((out / "config.json").read_text())["mlx_lowbit"]
    assert record["init"] == "rtn" and record["steps"] == 3 and record["train_weights"] is False
    assert record["micro_batch"] == 1 and record["steps_asked"] == 3
    assert record["compute_dtype"] == "bfloat16"
    with pytest.raises(SystemExit, match="need --method distill"):
        main([str(src), str(tmp_path / "o2"), "--method", "gptq", "--steps", "3"])
    assert not (tmp_path / "o2").exists()


def test_a_rotated_layer_trains_rotated_and_keeps_its_rotation(tiny):
    teacher, batches, held = tiny
    model = copy.deepcopy(teacher)
    lb.nn.quantize(model, "ternary", 32, rotate=True)
    rtn_kl = _kl(model, teacher, held)
    result = distill_model(
        model, teacher, batches, held_out=held, steps=20, batch_size=8, learning_rate=3e-4
    )
    # The training layer rotated its inputs as the packed one does: same KL at the start.
    assert result.kl_before == pytest.approx(rtn_kl, rel=1e-3)
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.rotation is not None and result.kl_after < result.kl_before
    assert _kl(model, teacher, held) == pytest.approx(result.kl_after, rel=0.05)


def test_half_the_sampled_windows_open_a_chat(tiny, monkeypatch):
    """With a chat template, distillation samples half its generated windows
    from the chat's opening, the other half from calibration text."""
    import copy

    from lm_models import tiny_tokenizer
    from test_calib import CHAT_TEMPLATE

    from mlx_lowbit.quant import distill as distill_module

    model = tiny[0]
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    prefix = tokenizer.encode("<user>", add_special_tokens=False)
    seen = []
    real = distill_module.sample_text

    def spy(m, prompts, length, **kw):
        seen.append(prompts.tolist())
        return real(m, prompts, length, **kw)

    monkeypatch.setattr(distill_module, "sample_text", spy)
    record = lb.lm.quantize_model(
        copy.deepcopy(model),
        tokenizer,
        "ternary",
        32,
        method="distill",
        calib_samples=9,
        calib_length=32,
        distill={"steps": 2, "batch_size": 2, "generated": 5},
        progress=False,
    )
    assert record["generated_chat_windows"] == 2
    text_prompts, chat_prompts = seen
    assert len(text_prompts) == 3 and chat_prompts == [prefix, prefix]
