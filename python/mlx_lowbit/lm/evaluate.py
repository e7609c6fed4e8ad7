# Copyright © 2026 mlx-lowbit contributors.
"""Perplexity, greedy completions and speed of an mlx-lm model."""

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, List, Optional, Union

import mlx.core as mx
import mlx.nn as nn

# A short English text shipped with the package (written for it, no
# copyright elsewhere), for perplexity.
EVAL_TEXT = "eval_text.txt"


def eval_text() -> str:
    """The evaluation text shipped in ``mlx_lowbit/data``."""
    return resources.files("mlx_lowbit").joinpath("data", EVAL_TEXT).read_text(encoding="utf-8")


def encode(tokenizer: Any, text: str, max_tokens: Optional[int] = None) -> List[int]:
    """Token ids of ``text`` without special tokens (no BOS), optionally cut
    to the first ``max_tokens``."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[:max_tokens] if max_tokens else ids


def perplexity(model: nn.Module, tokens: List[int]) -> float:
    """exp of the mean next-token cross-entropy over all ``len(tokens) - 1``
    predictions of one forward pass (no BOS is added).

    Raises:
        ValueError: fewer than two tokens.
    """
    if len(tokens) < 2:
        raise ValueError("[perplexity] Need at least two tokens.")
    x = mx.array(tokens)[None]
    logits = model(x[:, :-1]).astype(mx.float32)
    loss = nn.losses.cross_entropy(logits, x[:, 1:], reduction="mean")
    return math.exp(loss.item())


@dataclass
class Completion:
    text: str
    tokens: List[int]
    prompt_tokens: int
    prompt_tps: float  # prefill tokens per second, as mlx-lm measures it
    generation_tps: float  # decode tokens per second, as mlx-lm measures it


def greedy_completion(
    model: nn.Module,
    tokenizer: Any,
    prompt: Any,
    max_tokens: int = 16,
    stream: Optional[Union[mx.Stream, mx.Device]] = None,
) -> Completion:
    """Greedy (argmax) decoding with ``mlx_lm.stream_generate``.

    Args:
        prompt: A string or a list of token ids (e.g. from
          ``tokenizer.apply_chat_template``).
        stream: Where to decode. Default: mlx-lm's generation stream, which
          is on the default device of the moment mlx-lm was imported.
    """
    from mlx_lm import stream_generate

    kwargs = {} if stream is None else {"stream": stream}
    tokens, text, last = [], "", None
    for last in stream_generate(model, tokenizer, prompt, max_tokens=max_tokens, **kwargs):
        text += last.text
        if last.token is not None:
            tokens.append(last.token)
    return Completion(
        text=text,
        tokens=tokens,
        prompt_tokens=last.prompt_tokens,
        prompt_tps=last.prompt_tps,
        generation_tps=last.generation_tps,
    )


def chat_prompt(tokenizer: Any, question: str) -> List[int]:
    """Token ids of a one-turn chat asking ``question``."""
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)
