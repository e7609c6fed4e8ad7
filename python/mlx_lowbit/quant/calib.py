# Copyright © 2026 mlx-lowbit contributors.
"""Calibration text: what the learned quantizers see. Never the evaluation text.

Default: the Python standard library's ``pydoc_data.topics`` (the language
reference's topics, ~0.45 MB of English and code, shipped with every CPython),
so calibration needs no download. Users pass their own ``.txt`` or ``.jsonl``
(one object per line with a ``"text"`` field).
"""

import json
from pathlib import Path
from typing import Any, List, Optional, Union

import mlx.core as mx

DEFAULT_CORPUS = "pydoc_data.topics"


def default_text() -> str:
    """The default calibration corpus, in a fixed order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def read_text(path: Union[str, Path]) -> str:
    """A calibration file: plain text, or JSONL with a ``"text"`` field per line.

    Raises:
        ValueError: missing or empty file, or a JSONL line without text.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"[calib] Calibration file {path} does not exist.")
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        texts = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"[calib] {path}:{i} is not valid JSON ({e.msg}).") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f'[calib] {path}:{i} has no string "text" field.')
            texts.append(record["text"])
        raw = "\n\n".join(texts)
    if not raw.strip():
        raise ValueError(f"[calib] Calibration file {path} holds no text.")
    return raw


def calibration_batches(
    tokenizer: Any,
    source: Optional[Union[str, Path]] = None,
    *,
    num_samples: int = 64,
    sequence_length: int = 256,
    held_out: Optional[str] = None,
) -> mx.array:
    """``(num_samples, sequence_length)`` token ids of calibration text.

    Args:
        tokenizer: The model's tokenizer.
        source: A ``.txt``/``.jsonl`` file; default: :data:`DEFAULT_CORPUS`.
        num_samples, sequence_length: How much text (consecutive windows).
        held_out (str, optional): The evaluation text; a calibration text that
          contains any 200-character passage of it is refused.

    Raises:
        ValueError: too little text, or overlap with ``held_out``.
    """
    if num_samples < 1 or sequence_length < 2:
        raise ValueError("[calib] num_samples must be >= 1 and sequence_length >= 2.")
    text = default_text() if source is None else read_text(source)
    if held_out:
        step = 200
        for i in range(0, max(1, len(held_out) - step), step):
            if held_out[i : i + step] in text:
                raise ValueError("[calib] The calibration text contains the evaluation text.")
    ids: List[int] = tokenizer.encode(text, add_special_tokens=False)
    need = num_samples * sequence_length
    if len(ids) < need:
        raise ValueError(
            f"[calib] The calibration text has {len(ids)} tokens; {num_samples} x "
            f"{sequence_length} = {need} are needed (pass fewer samples or more text)."
        )
    return mx.array(ids[:need]).reshape(num_samples, sequence_length)


def chat_prefix(tokenizer: Any) -> Optional[List[int]]:
    """The tokens that open a one-turn chat, up to where the user's message
    begins (system prompt and all), or None without a chat template.

    Data-free distillation starts sampling here: the float model writes a
    user's message and, after its end-of-turn, usually the assistant's
    answer, so the student also sees the chat format it is asked in."""
    if getattr(tokenizer, "chat_template", None) is None:
        return None
    marker = "\x00mlx-lowbit-user\x00"
    text = tokenizer.apply_chat_template([{"role": "user", "content": marker}], tokenize=False)
    if marker not in text:
        return None
    head = text.split(marker)[0]
    ids = tokenizer.encode(head, add_special_tokens=False)
    return ids or None
