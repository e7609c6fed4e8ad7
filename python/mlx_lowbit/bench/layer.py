# Copyright © 2026 mlx-lowbit contributors.
"""Quantize one random layer in every format: error, bits per weight, speed."""

import argparse
import time
from typing import List

import mlx.core as mx

from ..ops import dequantize, matmul, quantize
from .common import DTYPES, RECIPES, Timing, rel_error, time_op


def _median(fn, repeats: int) -> float:
    return time_op(fn, Timing(min_time=0.05, max_repeats=repeats))["median"]


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-lowbit layer", description=__doc__)
    p.add_argument("--n", type=int, default=4096, help="Output features N.")
    p.add_argument("--k", type=int, default=4096, help="Input features K.")
    p.add_argument("--m", type=int, default=1, help="Rows of x (tokens).")
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="Timed runs per kernel.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="float16",
        help="Activation and baseline dtype (LLMs run in float16/bfloat16).",
    )
    return p


def layer_report(
    n: int, k: int, m: int, group_size: int, repeats: int, seed: int, dtype: str
) -> List[dict]:
    key_w, key_x = mx.random.split(mx.random.key(seed))
    w = (mx.random.normal((n, k), key=key_w) * (k**-0.5)).astype(DTYPES[dtype])
    x = mx.random.normal((m, k), key=key_x).astype(DTYPES[dtype])
    dense = x @ w.T
    mx.eval(w, x, dense)
    t_dense = _median(lambda: x @ w.T, repeats)
    wq4, s4, b4 = mx.quantize(w, group_size=group_size, bits=4)
    t_q4 = _median(
        lambda: mx.quantized_matmul(x, wq4, s4, b4, group_size=group_size, bits=4), repeats
    )
    print(
        f"Random Gaussian layer N={n} K={k}, x of {m} rows in {dtype}, group {group_size}, "
        f"device {mx.default_device()}.\n"
        f"Baselines: dense {dtype} x @ W.T {t_dense * 1e3:.2f} ms; "
        f"mx.quantized_matmul 4-bit {t_q4 * 1e3:.2f} ms.\n"
    )
    header = f"{'format':<18}{'bits/weight':>12}{'quant s':>9}{'weight err':>12}{'output err':>12}{'time ms':>10}{'vs dense':>9}{'vs 4-bit':>10}"
    print(header)
    print("-" * len(header))
    rows = []
    for label, fmt, opts in RECIPES:
        start = time.perf_counter()
        qw = quantize(w, fmt, group_size, **opts)
        t_quant = time.perf_counter() - start
        y = matmul(x, qw)
        t = _median(lambda: matmul(x, qw), repeats)
        row = dict(
            format=label,
            bits_per_weight=qw.bits_per_weight,
            quantize_s=t_quant,
            weight_err=rel_error(dequantize(qw), w.astype(mx.float32)),
            output_err=rel_error(y.astype(mx.float32), dense.astype(mx.float32)),
            time_ms=t * 1e3,
            speedup_dense=t_dense / t,
            speedup_q4=t_q4 / t,
        )
        rows.append(row)
        print(
            f"{label:<18}{row['bits_per_weight']:>12.3f}{t_quant:>9.2f}{row['weight_err']:>12.3f}"
            f"{row['output_err']:>12.3f}{row['time_ms']:>10.2f}{row['speedup_dense']:>8.1f}x{row['speedup_q4']:>9.1f}x"
        )
    print(
        "\nErrors are relative Frobenius norms against the unquantized layer. A Gaussian\n"
        "matrix is the hardest case for 1-2 bit rounding (no outliers to exploit), so\n"
        "these errors are an upper bound on what real checkpoints show, not a quality\n"
        "claim; bits/weight count every stored byte (codes, scales, biases, codebook)."
    )
    return rows


def main(argv=None) -> None:
    args = setup_arg_parser().parse_args(argv)
    layer_report(**{k.replace("-", "_"): v for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
