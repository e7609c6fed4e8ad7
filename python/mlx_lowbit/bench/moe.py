# Copyright © 2026 mlx-lowbit contributors.
"""The MoE section of ``mlx-lowbit bench``: one expert projection of a
mixture-of-experts layer (E experts of (N, K), top-k routing) through
:func:`mlx_lowbit.experts.gather_matmul`, against ``mx.gather_qmm`` (MLX
affine 4-bit) and dense ``mx.gather_mm`` timed in the same run, at the call
shapes mlx-lm's SwitchGLU makes."""

from typing import Any, Callable, Dict, List

import mlx.core as mx
import numpy as np

from ..experts import gather_matmul, quantize_experts
from .common import time_op
from .kernels import FORMATS, Plan

# MLX's 4-bit affine experts, the baseline mlx-lm's QuantizedSwitchLinear runs.
AFFINE = {"group_size": 64, "bits": 4}


def _routing(m: int, experts: int, top_k: int, seed: int = 0) -> np.ndarray:
    """(m, top_k) distinct experts per token, uniformly at random."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(experts, top_k, replace=False) for _ in range(m)])


def _call(x: mx.array, indices: np.ndarray) -> Dict[str, Any]:
    """x and indices as mlx-lm's SwitchGLU passes them: (m, 1, 1, K) with
    (m, k) indices, or, from 64 routed rows on, rows gathered in expert order
    ((m*k, 1, K) with sorted (m*k,) indices)."""
    x = mx.expand_dims(x, (-2, -3))
    if indices.size < 64:
        return {"x": x, "indices": mx.array(indices), "sorted": False}
    flat = indices.reshape(-1)
    order = np.argsort(flat, kind="stable")
    rows = x.reshape(-1, 1, x.shape[-1])[mx.array(order // indices.shape[1])]
    return {"x": rows, "indices": mx.array(flat[order]), "sorted": True}


def run_moe(plan: Plan, stream, on_gpu: bool) -> List[Dict[str, Any]]:
    """Rows of time per call for each format and baseline, M tokens each."""
    e, n, k = plan.moe_shape
    top_k = plan.moe_top_k
    # MLX's CPU gather_mm takes float32 only, and its CPU quantized kernels
    # are slow in half precision: float32 activations there for every row.
    dtype = mx.float16 if on_gpu else mx.float32
    shape = f"{e}x{n}x{k} top-{top_k}"
    w = (mx.random.normal((e, n, k), key=mx.random.key(0)) / np.sqrt(k)).astype(dtype)
    wq, scales, biases = mx.quantize(w, **AFFINE)
    dense_t = w.swapaxes(-1, -2)
    mx.eval(w, wq, scales, biases, dense_t)
    products: Dict[str, Callable[[Dict[str, Any]], mx.array]] = {
        "mx.gather_qmm 4-bit g64": lambda c: mx.gather_qmm(
            c["x"],
            wq,
            scales,
            biases,
            rhs_indices=c["indices"],
            transpose=True,
            sorted_indices=c["sorted"],
            **AFFINE,
        ),
        f"mx.gather_mm {'float16' if on_gpu else 'float32'}": lambda c: mx.gather_mm(
            c["x"], dense_t, rhs_indices=c["indices"], sorted_indices=c["sorted"]
        ),
    }
    baselines = list(products)
    for label, fmt, opts in FORMATS[: plan.moe_formats]:
        qe = quantize_experts(w.astype(mx.float32), fmt, 128, **opts)
        mx.eval(qe.arrays())
        products[label] = lambda c, qe=qe: gather_matmul(
            c["x"], qe, rhs_indices=c["indices"], sorted_indices=c["sorted"]
        )
    rows = []
    for m in plan.moe_ms:
        x = mx.random.normal((m, k), key=mx.random.key(1)).astype(dtype)
        call = _call(x, _routing(m, e, top_k))
        mx.eval(call["x"], call["indices"])
        times = {}
        with mx.stream(stream):
            for name, product in products.items():
                t = time_op(lambda: product(call), plan)
                times[name] = t["median"]
                rows.append(
                    {
                        "kind": "moe",
                        "shape": shape,
                        "M": m,
                        "dtype": str(dtype).split(".")[-1],
                        "name": name,
                        "sorted": call["sorted"],
                        "median_s": t["median"],
                        "p10_s": t["p10"],
                        "p90_s": t["p90"],
                        "repeats": t["repeats"],
                    }
                )
                print(f"  {shape} M={m} {name}: {t['median'] * 1e3:.3f} ms", flush=True)
        for r in rows[-len(products) :]:
            for b in baselines:
                r[f"x {b}"] = times[b] / r["median_s"]
    return rows


def moe_section(rows: List[Dict[str, Any]]) -> List[str]:
    """The report's table: time per call and speed-ups over the baselines."""
    baselines = [k[2:] for k in rows[0] if k.startswith("x ")]
    header = ["shape", "M", "dtype", "weights", "time"] + [f"vs {b}" for b in baselines]
    table = [
        [r["shape"], r["M"], r["dtype"], r["name"], f"{r['median_s'] * 1e3:.3f} ms"]
        + [f"{r[f'x {b}']:.2f}x" for b in baselines]
        for r in rows
    ]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table]
    note = (
        "One expert projection (gate or up) per call: M tokens, each routed to top-k of E "
        "experts, as mlx-lm's SwitchGLU calls it (from 64 routed rows on, rows sorted by expert "
        "and sorted_indices=True). 'vs X' is X's time over this row's (above 1: faster than X). "
        "On a GPU ours is metal/gather.h's kernel."
    )
    return ["## Mixture-of-experts gather", ""] + lines + ["", note, ""]
