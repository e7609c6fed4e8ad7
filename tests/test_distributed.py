# Copyright © 2026 mlx-lowbit contributors.
"""Tensor parallelism of the low-bit layers: each rank's share of a weight
(split along N, or along K on group boundaries) gives its part of the
product exactly; and two processes on 127.0.0.1 (mlx.launch, ring backend)
running mlx-lm's sharded_load on converted dense and MoE models (tensor
parallel, and two pipeline stages for the MoE model) give the
single-process logits."""

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import reference
from conftest import FORMATS, assert_close, format_id
from helpers import make_weight, make_x
from lm_models import VOCAB, dense_model_dir, llama_config, tokens

import mlx_lowbit as lb
from mlx_lowbit.distributed import ShardedLowBitLinear, _sharded_arrays, shard_switch_inplace
from mlx_lowbit.nn import LowBitLinear, LowBitSwitchLinear


class FakeGroup:
    """The two calls the slicing makes of a group."""

    def __init__(self, rank, size):
        self._rank, self._size = rank, size

    def rank(self):
        return self._rank

    def size(self):
        return self._size


@pytest.mark.parametrize("f", FORMATS, ids=format_id)
@pytest.mark.parametrize("ranks", [2, 3])
def test_shares_reassemble_the_product(f, ranks):
    # K = 192 in groups of 32 over 3 ranks: codebook index runs that start
    # mid-word (v8 c5) must be repacked.
    qw = make_weight(f, 12, 192 if ranks == 3 else 128, 32)
    n, k = qw.shape
    x = make_x((3, k), mx.float32)
    w = reference.dequantize(qw)
    xs = np.asarray(x, dtype=np.float64)
    rows, total = [], 0
    for r in range(ranks):
        g = FakeGroup(r, ranks)
        by_n = lb.QuantizedWeight(**_sharded_arrays(qw, "all-to-sharded", 1, g))
        rows.append(np.asarray(lb.matmul(x, by_n)))
        by_k = lb.QuantizedWeight(**_sharded_arrays(qw, "sharded-to-all", 1, g))
        lo, hi = r * k // ranks, (r + 1) * k // ranks
        np.testing.assert_array_equal(reference.dequantize(by_k), w[:, lo:hi])
        total = total + np.asarray(lb.matmul(x[:, lo:hi], by_k), dtype=np.float64)
    assert_close(mx.array(np.concatenate(rows, -1)), xs @ w.T, mx.float32)
    assert_close(mx.array(total), xs @ w.T, mx.float32)


def test_fused_segments_and_bad_splits():
    # A fused q/k/v weight: each segment is split on its own.
    qw = make_weight(FORMATS[0], 12, 64, 32)
    w = reference.dequantize(qw)
    shard = lb.QuantizedWeight(**_sharded_arrays(qw, "all-to-sharded", 3, FakeGroup(1, 2)))
    np.testing.assert_array_equal(reference.dequantize(shard), w[[2, 3, 6, 7, 10, 11]])
    with pytest.raises(
        ValueError, match="K = 64 cannot be split across 3 ranks in multiples of 32"
    ):
        _sharded_arrays(qw, "sharded-to-all", 1, FakeGroup(0, 3))
    layer = LowBitLinear.from_qweight(qw, rotation=None)
    with pytest.raises(ValueError, match="Unknown sharding"):
        ShardedLowBitLinear.from_lowbit_linear(layer, "rows", group=FakeGroup(0, 2))


@pytest.mark.parametrize("f", [FORMATS[2], FORMATS[4]], ids=format_id)
def test_switch_layer_shards_in_place(f):
    fmt, opts = f
    w = mx.random.normal((3, 8, 128), key=mx.random.key(0))
    dense = lb.dequantize_experts(lb.quantize_experts(w, fmt, 32, **opts))
    for sharding, axis in (("all-to-sharded", 1), ("sharded-to-all", 2)):
        parts = []
        for r in range(2):
            layer = LowBitSwitchLinear.from_qweight(lb.quantize_experts(w, fmt, 32, **opts))
            shard_switch_inplace(layer, sharding, group=FakeGroup(r, 2))
            parts.append(np.asarray(lb.dequantize_experts(layer.qweight)))
        np.testing.assert_array_equal(np.concatenate(parts, axis), np.asarray(dense))


def _mlx_launch():
    """MLX's launcher, installed next to this interpreter."""
    launcher = Path(sys.executable).with_name("mlx.launch")
    return str(launcher if launcher.is_file() else shutil.which("mlx.launch"))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANK_SCRIPT = """
import sys
import mlx.core as mx
import numpy as np
from mlx_lm.utils import sharded_load

group = mx.distributed.init(strict=True, backend="ring")
for i, path in enumerate(sys.argv[2:]):
    model, _ = sharded_load(path)  # tensor parallel over the whole group
    # Every projection of layer 0 holds this rank's half of its weight.
    attention = model.model.layers[0].self_attn
    assert type(attention.q_proj).__name__ == "ShardedLowBitLinear", attention
    assert attention.q_proj.qweight.shape[0] == 32 and attention.o_proj.qweight.shape[1] == 32
    mlp = model.model.layers[0].mlp
    if hasattr(mlp, "switch_mlp"):
        assert mlp.switch_mlp.up_proj.qweight.shape == (4, 32, 64)
        assert mlp.switch_mlp.down_proj.qweight.shape == (4, 64, 32)
    with mx.stream(mx.cpu):
        logits = model(mx.array(np.load(sys.argv[1])))
    np.save(f"{path}.rank{group.rank()}.npy", np.asarray(logits))
    if hasattr(model.model, "pipeline"):  # qwen3_moe: also two pipeline stages
        model, _ = sharded_load(path, pipeline_group=group)
        assert len(model.model.pipeline_layers) == 1
        with mx.stream(mx.cpu):
            logits = model(mx.array(np.load(sys.argv[1])))
        np.save(f"{path}.pipeline.rank{group.rank()}.npy", np.asarray(logits))
"""


def test_two_processes_ring_backend(tmp_path):
    # Heads and widths that split over 2 ranks on group boundaries.
    common = {"num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256}
    dense = llama_config(**common, rope_theta=10000.0)
    moe = {
        **llama_config(**common),
        "model_type": "qwen3_moe",
        "moe_intermediate_size": 64,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "head_dim": 32,
        "norm_topk_prob": True,
        "rope_theta": 10000.0,
    }
    assert dense["vocab_size"] == moe["vocab_size"] == VOCAB
    models = {
        "dense": lb.lm.convert(
            dense_model_dir(tmp_path / "d", dense),
            tmp_path / "dense",
            "ternary",
            32,
            dtype=mx.float32,
        ),
        "moe": lb.lm.convert(
            dense_model_dir(tmp_path / "m", moe),
            tmp_path / "moe",
            "codebook",
            32,
            dtype=mx.float32,
            vector_size=8,
            index_bits=5,
        ),
    }
    x = np.asarray(tokens(9))
    np.save(tmp_path / "tokens.npy", x)
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    command = [
        _mlx_launch(),
        "--backend",
        "ring",
        "-n",
        "2",
        "--starting-port",
        str(_free_port()),
        sys.executable,
        str(script),
        str(tmp_path / "tokens.npy"),
        *[str(p) for p in models.values()],
    ]
    # Its own session, so that a hung rank is killed with the launcher.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the two ranks did not finish in 240 s:\n{output}")
    assert proc.returncode == 0, output
    for name, path in models.items():
        model, _ = lb.lm.load(path)
        with mx.stream(mx.cpu):
            ref = np.asarray(model(mx.array(x)), dtype=np.float64)
        for rank, kind in itertools.product(range(2), ("", ".pipeline")):
            if kind and name != "moe":
                continue
            result = Path(f"{path}{kind}.rank{rank}.npy")
            assert result.is_file(), output
            out = np.load(result)
            assert_close(mx.array(out), ref, mx.float32, f"{name}{kind} rank {rank}")
