# Copyright © 2026 mlx-lowbit contributors.
"""SmolLM2-135M in every format: size, perplexity, speed, kernel error, answer."""

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten

from . import nn as lbnn
from .lm.evaluate import chat_prompt, encode, eval_text, greedy_completion, perplexity
from .lm.gguf import from_gguf, smollm2_path
from .nn import LowBitLinear
from .stats import layer_bits, model_bytes, parameter_count, weight_shape

QUESTION = "What is the capital of France?"

# (label, format, group size, quantizer options). SmolLM2's widths (576,
# 1536) are not multiples of 128: 64 and 192 divide both.
RECIPES: List[Tuple[str, str, int, Dict[str, Any]]] = [
    ("ternary g64", "ternary", 64, {}),
    ("binary+bias g64", "binary", 64, {"biases": True}),
    ("codebook v8 c6 g192", "codebook", 192, {"vector_size": 8, "index_bits": 6}),
]
# Clustering 2^16 patterns per layer takes minutes for the whole model here.
FULL_ONLY_RECIPES = [
    ("codebook v16 c12 g192", "codebook", 192, {"vector_size": 16, "index_bits": 12}),
]
# The source is Q4_1 (4-bit affine, 32 per group): at group 32 the MLX
# 4-bit row keeps the model (at group 64, RTN already breaks its answers).
MLX_4BIT_GROUP = 32

# (evaluation tokens, generated tokens, tokens for the kernel check)
QUICK_SIZES = (128, 16, 16)
FULL_SIZES = (None, 32, 32)


@dataclass
class Row:
    label: str
    activations: str
    bits_model: float  # every stored byte of the whole model per weight
    bits_layers: Optional[float]  # the quantized layers only
    megabytes: float
    perplexity: float
    prefill_tps: float
    decode_tps: float
    max_logit_diff: Optional[float]
    completion: str
    notes: List[str] = field(default_factory=list)


def _is_linear(path: str, module: nn.Module) -> bool:
    # The same layers for every row: all projections; the embedding (tied
    # to the output head) stays float16.
    return isinstance(module, nn.Linear)


def _dequantized_float32(model: nn.Module, fresh: Callable[[], nn.Module]) -> nn.Module:
    """The model with every quantized layer replaced by its dequantized
    weight as a dense float32 matrix."""
    dense = []
    for path, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(m, LowBitLinear):
            dense.append((path, m.to_linear(mx.float32)))
        elif isinstance(m, nn.QuantizedLinear):
            n, k = weight_shape(m)
            linear = nn.Linear(k, n, bias=False)
            linear.weight = mx.dequantize(m.weight, m.scales, m.biases, m.group_size, m.bits)
            dense.append((path, linear))
    ref = fresh()
    ref.update_modules(tree_unflatten(dense))
    ref.set_dtype(mx.float32)
    return ref


def _max_logit_diff(model: nn.Module, fresh: Callable[[], nn.Module], tokens: List[int]) -> float:
    ref = _dequantized_float32(model, fresh)
    lbnn.set_dtype(model, mx.float32)  # the last use of this model
    x = mx.array(tokens)[None]
    return mx.abs(model(x) - ref(x)).max().item()


def _measure(
    label: str,
    model: nn.Module,
    tokenizer: Any,
    fresh: Callable[[], nn.Module],
    eval_tokens: List[int],
    new_tokens: int,
    check_tokens: int,
    activations: mx.Dtype,
    kernel_check: bool,
) -> Row:
    # Sizes as stored (float16), before any cast for running.
    bits_model = 8 * model_bytes(model) / parameter_count(model)
    bits_layers, megabytes = layer_bits(model), model_bytes(model) / 1e6
    if activations != mx.float16:  # the model is stored in float16
        lbnn.set_dtype(model, activations)
    mx.eval(model.parameters())
    perplexity(model, eval_tokens[:8])  # warm-up
    start = time.perf_counter()
    ppl = perplexity(model, eval_tokens)
    prefill_tps = len(eval_tokens) / (time.perf_counter() - start)
    answer = greedy_completion(model, tokenizer, chat_prompt(tokenizer, QUESTION), new_tokens)
    row = Row(
        label=label,
        activations=str(activations).split(".")[-1],
        bits_model=bits_model,
        bits_layers=bits_layers,
        megabytes=megabytes,
        perplexity=ppl,
        prefill_tps=prefill_tps,
        decode_tps=answer.generation_tps,
        max_logit_diff=None,
        completion=answer.text,
    )
    if kernel_check:
        row.max_logit_diff = _max_logit_diff(model, fresh, eval_tokens[:check_tokens])
    return row


def run_demo(quick: bool = False, device: Optional[str] = None) -> Tuple[List[Row], Dict[str, Any]]:
    """Measure every row of the demo table.

    Returns:
        ``(rows, info)``: the rows and the run's settings (device, token counts).
    """
    from mlx_lm.models import llama

    if device is not None:
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    on_cpu = mx.default_device() == mx.cpu
    n_eval, n_new, n_check = QUICK_SIZES if quick else FULL_SIZES
    print(
        f"Loading SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float16) from {smollm2_path()}"
    )
    base, tokenizer, config = from_gguf(smollm2_path(), mx.float16)
    weights = tree_flatten(base.parameters())

    def fresh() -> nn.Module:
        model = llama.Model(llama.ModelArgs.from_dict(config))
        model.load_weights(weights)
        model.eval()
        return model

    eval_tokens = encode(tokenizer, eval_text(), n_eval)
    sizes = (eval_tokens, n_new, n_check)
    rows = []
    print("measuring float16 ...", flush=True)
    rows.append(_measure("float16 (dense)", base, tokenizer, fresh, *sizes, mx.float16, False))

    # MLX's CPU quantized_matmul is ~40x slower with float16 activations than
    # with float32 ones, so on the CPU the quantized rows all run in float32
    # (the same dtype for all, so the float16 embedding/head, which these
    # rows share, costs them the same).
    run_dtype = mx.float32 if on_cpu else mx.float16
    print("measuring MLX affine 4-bit ...", flush=True)
    q4 = fresh()
    nn.quantize(q4, MLX_4BIT_GROUP, 4, class_predicate=_is_linear)
    rows.append(
        _measure(f"MLX 4-bit g{MLX_4BIT_GROUP}", q4, tokenizer, fresh, *sizes, run_dtype, True)
    )

    for label, fmt, group, opts in RECIPES + ([] if quick else FULL_ONLY_RECIPES):
        print(f"quantizing to {label} ...", flush=True)
        model = fresh()
        lbnn.quantize(model, fmt, group, class_predicate=_is_linear, progress=True, **opts)
        rows.append(_measure(label, model, tokenizer, fresh, *sizes, run_dtype, True))
    info = {
        "device": "cpu" if on_cpu else "gpu",
        "eval_tokens": len(eval_tokens),
        "new_tokens": n_new,
        "check_tokens": n_check,
    }
    return rows, info


def format_table(rows: List[Row], info: Dict[str, Any]) -> str:
    header = (
        f"{'format':<22}{'act':>8}{'bits/w':>8}{'layers':>8}{'MB':>7}{'ppl':>12}"
        f"{'prefill/s':>10}{'decode/s':>9}{'max|dlogit|':>12}  greedy answer"
    )
    lines = [header, "-" * (len(header) + 30)]
    for r in rows:
        layers = f"{r.bits_layers:.3f}" if r.bits_layers is not None else "-"
        diff = f"{r.max_logit_diff:.2e}" if r.max_logit_diff is not None else "-"
        answer = r.completion.replace("\n", " ")
        lines.append(
            f"{r.label:<22}{r.activations:>8}{r.bits_model:>8.3f}{layers:>8}{r.megabytes:>7.1f}"
            f"{r.perplexity:>12.4g}{r.prefill_tps:>10.1f}{r.decode_tps:>9.1f}{diff:>12}  {answer!r}"
        )
    return "\n".join(lines)


def honest_note(info: Dict[str, Any]) -> str:
    return f"""
Read this table with care:
- QUALITY: round-to-nearest 1-2 bit quantization destroys a 135M model. The
  perplexities of the low-bit rows (thousands to millions, against ~30 for
  float16) and their answers show it. These rows measure our kernels and file
  formats on a real model, not a usable low-bit SmolLM2: that needs a model
  trained for it (e.g. BitNet b1.58) or calibrated quantizers: the last
  table cites what distillation (`convert --method distill`) reaches.
- ppl: {info["eval_tokens"]} tokens of mlx_lowbit/data/eval_text.txt, all
  predicted, no BOS. prefill/s: that forward pass; decode/s: mlx-lm's
  generation speed for the {info["new_tokens"]}-token greedy answer to
  "{QUESTION}". Device: {info["device"]}; others' load on the machine moves
  these numbers.
- act: activation dtype. On the CPU the quantized rows run in float32,
  because MLX's CPU quantized_matmul is pathologically slow in float16; the
  embedding and tied head (float16 as stored) are cast with them, so every
  quantized row pays the same for those. The MLX 4-bit group of 32 is the
  GGUF source's own Q4_1 grid, so that row stays close to the source.
- bits/w: every stored byte of the whole model (including the float16
  embedding tied to the output head, which dominates a 135M model at 1-2 bits)
  per weight; layers: the quantized projections alone (codes, scales, biases,
  codebooks).
- max|dlogit|: the low-bit model against the same model holding the
  dequantized weights as dense float32 matrices, both with float32
  activations, first {info["check_tokens"]} tokens: the kernels compute what the
  format stores (logits are ~10-30 in size), nothing about quality."""


REFERENCE = "quality_reference.json"


def reference_table() -> str:
    """The calibrated rows of the committed quality result (shipped in
    mlx_lowbit/data): too slow to run on a small CPU here, so cited with
    their date and host, never mixed into the table measured above."""
    import json
    from importlib import resources

    ref = json.loads(
        resources.files("mlx_lowbit").joinpath("data", REFERENCE).read_text(encoding="utf-8")
    )
    lines = [
        f"Calibrated quantizers, NOT run by this demo: `mlx-lowbit bench quality` on {ref['host']},",
        f"{ref['date']} ({ref['eval_tokens']} tokens of the same text; {ref['source']}):",
        f"{'row':<30}{'layers':>8}{'ppl':>12}{'x fp16':>9}{'time s':>8}  greedy answer",
    ]
    for r in ref["rows"]:
        answer = r["answer_question"].replace("\n", " ")
        lines.append(
            f"{r['name']:<30}{r['bpw_layers'] or 16:>8.3f}{r['perplexity']:>12.4g}"
            f"{r['ppl_ratio']:>9.3g}{r['quantize_s']:>8.0f}  {answer!r}"
        )
    return "\n".join(lines)


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-lowbit demo", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SIZES[0]} evaluation tokens, {QUICK_SIZES[1]} generated tokens, "
        "and no v16 codebook row (about a minute on a 2-core CPU).",
    )
    p.add_argument(
        "--device", choices=["cpu", "gpu"], default=None, help="Default: MLX's default device."
    )
    return p


def main(argv=None) -> None:
    args = setup_arg_parser().parse_args(argv)
    rows, info = run_demo(quick=args.quick, device=args.device)
    print()
    print(format_table(rows, info))
    print(honest_note(info))
    print()
    print(reference_table())


if __name__ == "__main__":
    main()
