# Copyright © 2026 mlx-lowbit contributors.
"""mlx-lm's own commands on a directory `mlx-lowbit convert` wrote, each in a
fresh process that never imports mlx_lowbit itself: the installed
``mlx_lowbit-autoload.pth`` hook does (python/_mlx_lowbit_autoload.py)."""

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest
from lm_models import dense_model_dir, llama_config

import mlx_lowbit as lb

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
PROMPT = "The low-bit model says"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny llama in ternary with rotated inputs, with a chat template."""
    root = tmp_path_factory.mktemp("commands")
    src = dense_model_dir(root / "dense", llama_config())
    out = lb.lm.convert(src, root / "ternary", "ternary", 32, rotate=True)
    config = out / "tokenizer_config.json"
    config.write_text(
        json.dumps({**json.loads(config.read_text()), "chat_template": CHAT_TEMPLATE})
    )
    return out


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "MLX_LOWBIT_NO_AUTOLOAD"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _mlx_lm(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "mlx_lm", *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=timeout,
    )


def _generated(stdout: str) -> str:
    """The text mlx_lm.generate prints between its two ``==========`` lines."""
    parts = stdout.split("==========\n")
    assert len(parts) >= 3, stdout
    return parts[1].rstrip("\n")


def _generate(model_dir, max_tokens: int, *extra: str) -> str:
    """``mlx_lm generate``'s greedy text for PROMPT (no chat template)."""
    run = _mlx_lm(
        "generate",
        "--model",
        str(model_dir),
        "--prompt",
        PROMPT,
        "--max-tokens",
        str(max_tokens),
        "--ignore-chat-template",
        *extra,
    )
    assert run.returncode == 0, run.stderr
    return _generated(run.stdout)


def test_the_hook_is_installed():
    """pip installs the .pth beside the package (not with `pip install -e`:
    copy python/mlx_lowbit-autoload.pth into site-packages for that)."""
    site = Path(sysconfig.get_paths()["purelib"])
    assert (site / "mlx_lowbit-autoload.pth").is_file(), f"no mlx_lowbit-autoload.pth in {site}"
    code = "import sys; print('_mlx_lowbit_autoload' in sys.modules, 'mlx' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    # Present at start-up, and it loads nothing (not even MLX) until mlx_lm is imported.
    assert probe.stdout.split() == ["True", "False"], probe.stderr


def test_generate_matches_our_loader(converted):
    from mlx_lm import generate

    text = _generate(converted, 12)
    model, tokenizer = lb.lm.load(converted)
    assert isinstance(model.model.layers[0].mlp.up_proj, lb.nn.LowBitLinear)
    assert text == generate(model, tokenizer, PROMPT, max_tokens=12)


def test_without_the_hook_mlx_lm_cannot_load_it(converted):
    run = _mlx_lm(
        "generate",
        "--model",
        str(converted),
        "--prompt",
        PROMPT,
        "--max-tokens",
        "2",
        env=_env(MLX_LOWBIT_NO_AUTOLOAD="1"),
    )
    assert run.returncode != 0 and "fmt" in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_answers_an_openai_chat_request(converted):
    from mlx_lowbit.lm.evaluate import greedy_completion

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlx_lm",
            "server",
            "--model",
            str(converted),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/v1/models", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the server did not come up in 60 s"
                time.sleep(0.3)
        messages = [{"role": "user", "content": "Hello"}]
        body = json.dumps({"messages": messages, "max_tokens": 6, "temperature": 0.0})
        request = urllib.request.Request(
            f"{base}/v1/chat/completions", body.encode(), {"Content-Type": "application/json"}
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    content = answer["choices"][0]["message"]["content"]
    model, tokenizer = lb.lm.load(converted)
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert content == greedy_completion(model, tokenizer, prompt, max_tokens=6).text


def test_chat_answers_like_our_loader(converted):
    from mlx_lowbit.lm.evaluate import greedy_completion

    run = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "chat", "--model", str(converted), "--max-tokens", "6"],
        input="Hello\nq\n",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    model, tokenizer = lb.lm.load(converted)
    messages = [{"role": "user", "content": "Hello"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    answer = greedy_completion(model, tokenizer, prompt, max_tokens=6).text
    assert answer and answer in run.stdout


def test_generate_on_a_converted_bitnet(tmp_path):
    """mlx-lm's bitnet architecture builds BitLinear layers, which get our
    to_quantized when mlx-lm imports them (the hook's second watched module)."""
    import mlx.core as mx
    from mlx_lm import generate
    from mlx_lm.models.bitlinear_layers import BitLinear
    from test_lm_checkpoints import BITNET_CONFIGS

    config = llama_config(**BITNET_CONFIGS["bitnet"])
    config.pop("quantization_config")  # a dense model of mlx-lm's bitnet architecture
    src = dense_model_dir(tmp_path / "dense", config)
    out = lb.lm.convert(src, tmp_path / "ternary", "ternary", 32, dtype=mx.float32)
    text = _generate(out, 8)
    model, tokenizer = lb.lm.load(out)
    layer = model.model.layers[0].mlp.up_proj
    assert isinstance(layer, lb.nn.LowBitLinear) and not isinstance(layer, BitLinear)
    assert text == generate(model, tokenizer, PROMPT, max_tokens=8)


def test_convert_dequantize_writes_the_dense_equivalent(converted, tmp_path):
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import load as mlx_lm_load

    out = tmp_path / "dense"
    run = _mlx_lm("convert", "--hf-path", str(converted), "--mlx-path", str(out), "--dequantize")
    assert run.returncode == 0, run.stderr
    config = json.loads((out / "config.json").read_text())
    assert "quantization" not in config
    dense, _ = mlx_lm_load(str(out))  # no mlx-lowbit layer left to build
    assert isinstance(dense.model.layers[0].mlp.up_proj, nn.Linear)
    ours, _ = lb.lm.load(converted)
    x = mx.array([[1, 2, 3, 4, 5, 6]])
    ref = ours(x).astype(mx.float32)
    err = mx.abs(dense(x).astype(mx.float32) - ref).max().item()
    assert err <= 2e-2 * mx.abs(ref).max().item()  # the weights round to float16 once


def test_lora_trains_adapters_on_our_frozen_layers(converted, tmp_path):
    """``mlx_lm lora`` wraps our layers through LowBitLinear.to_lora; generate
    with the adapters equals ours loaded with mlx-lm's load_adapters."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm import generate
    from mlx_lm.tuner.utils import load_adapters

    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 8), ("valid", 2)):
        rows = [json.dumps({"text": f"Line {i}: the quick brown fox jumps."}) for i in range(n)]
        (data / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    adapters = tmp_path / "adapters"
    run = _mlx_lm(
        "lora",
        "--model",
        str(converted),
        "--train",
        "--data",
        str(data),
        "--iters",
        "4",
        "--batch-size",
        "1",
        "--num-layers",
        "2",
        "--max-seq-length",
        "64",
        "--learning-rate",
        "1e-2",
        "--adapter-path",
        str(adapters),
    )
    assert run.returncode == 0, run.stderr
    weights = mx.load(str(adapters / "adapters.safetensors"))
    b = weights["model.layers.1.mlp.up_proj.lora_b"]
    assert mx.abs(b).max().item() > 0  # trained (B starts at zero)
    assert not any(k.endswith(("weight", "scales")) for k in weights)  # the base stays frozen
    text = _generate(converted, 8, "--adapter-path", str(adapters))
    model, tokenizer = lb.lm.load(converted)
    load_adapters(model, str(adapters))
    layer = model.model.layers[1].mlp.up_proj
    assert isinstance(layer, lb.lora.LoRALowBitLinear)
    assert text == generate(model, tokenizer, PROMPT, max_tokens=8)

    # mlx_lm fuse: back into ternary (the layer keeps its entry), or dense.
    for dequantize in (False, True):
        fused = tmp_path / f"fused-{dequantize}"
        args = ["--dequantize"] if dequantize else []
        run = _mlx_lm(
            "fuse",
            "--model",
            str(converted),
            "--adapter-path",
            str(adapters),
            "--save-path",
            str(fused),
            *args,
        )
        assert run.returncode == 0, run.stderr
        again, _ = lb.lm.load(fused)
        got = again.model.layers[1].mlp.up_proj
        want = layer.fuse(dequantize=dequantize)
        if dequantize:
            assert type(got) is nn.Linear and mx.array_equal(got.weight, want.weight)
        else:
            assert (
                isinstance(got, lb.nn.LowBitLinear)
                and got.rotation_block == layer.base.rotation_block
            )
            assert mx.array_equal(got.qweight.packed, want.qweight.packed)
            assert mx.array_equal(got.qweight.scales, want.qweight.scales)


def test_a_custom_architecture_needs_trust_remote_code(converted, tmp_path):
    """A config.json ``model_file`` (mlx-lm's custom architectures) runs only
    with trust_remote_code, in our loader as in mlx-lm's."""
    import shutil

    custom = tmp_path / "custom"
    shutil.copytree(converted, custom)
    (custom / "arch.py").write_text("from mlx_lm.models.llama import Model, ModelArgs  # noqa\n")
    config = json.loads((custom / "config.json").read_text())
    (custom / "config.json").write_text(json.dumps({**config, "model_file": "arch.py"}))
    with pytest.raises(ValueError, match="trust_remote_code"):
        lb.lm.load(custom)
    model, _ = lb.lm.load(custom, trust_remote_code=True)
    assert isinstance(model.model.layers[0].mlp.up_proj, lb.nn.LowBitLinear)
    run = _mlx_lm(
        "generate",
        "--model",
        str(custom),
        "--prompt",
        PROMPT,
        "--max-tokens",
        "2",
        "--trust-remote-code",
    )
    assert run.returncode == 0, run.stderr


def test_perplexity_matches_our_loader(converted, tmp_path):
    """``mlx_lm perplexity`` on a local dataset (the `datasets` package,
    offline) gives what its own functions give on our loaded model."""
    import re

    import numpy as np
    from mlx_lm.perplexity import eval_ppl, load_data

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "valid"):
        rows = [json.dumps({"text": f"Row {i}: low-bit weights, fp32 sums."}) for i in range(6)]
        (data / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    offline = _env(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    run = _mlx_lm(
        "perplexity",
        "--model",
        str(converted),
        "--data-path",
        str(data),
        "--num-samples",
        "4",
        "--sequence-length",
        "16",
        "--batch-size",
        "2",
        "--seed",
        "5",
        env=offline,
    )
    assert run.returncode == 0, run.stderr
    printed = float(re.search(r"Perplexity: ([0-9.]+)", run.stdout).group(1))
    model, tokenizer = lb.lm.load(converted)
    np.random.seed(5)
    ppl, _ = eval_ppl(model, load_data(tokenizer, str(data), 4, 16), batch_size=2)
    assert printed == pytest.approx(ppl, abs=1e-3)


# A local lm-evaluation-harness task: each row's text scored as a whole
# (loglikelihood_rolling), no download.
LOCAL_TASK = """task: local_text
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: bits_per_byte
"""


def test_evaluate_on_a_local_task(converted, tmp_path):
    """``mlx_lm evaluate`` needs lm-evaluation-harness (``lm_eval``, not in
    our extras), whose own tasks download their data; a task YAML over a
    local file runs offline (lm-eval 0.4.13 takes a YAML path as a task).
    Its bits per byte equal those of the texts' log-likelihood under our
    loaded model."""
    pytest.importorskip("lm_eval")
    import math

    import mlx.core as mx
    import mlx.nn as nn

    texts = [f"Row {i}: ternary weights and int8 sums, {i * 7} times." for i in range(3)]
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    (tmp_path / "task.yaml").write_text(LOCAL_TASK.format(data=data))
    offline = _env(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    # A relative task path: mlx-lm 0.32.2 puts the task into its output
    # file's name, and a "/" there names a directory that does not exist.
    run = subprocess.run(
        [sys.executable, "-m", "mlx_lm", "evaluate", "--model", str(converted)]
        + ["--tasks", "task.yaml", "--no-apply-chat-template", "--output-dir", "results"],
        capture_output=True,
        text=True,
        env=offline,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    (result,) = (tmp_path / "results").iterdir()
    printed = json.loads(result.read_text())["local_text"]["bits_per_byte,none"]
    model, tokenizer = lb.lm.load(converted)
    total = 0.0
    for text in texts:
        ids = mx.array([tokenizer.encode(text)])  # with special tokens, as --no-apply-chat-template
        logprobs = nn.log_softmax(model(ids[:, :-1]).astype(mx.float32))
        total += mx.take_along_axis(logprobs, ids[:, 1:, None], axis=-1).sum().item()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert printed == pytest.approx(-total / n_bytes / math.log(2), rel=1e-4)
