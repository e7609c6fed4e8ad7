# Copyright © 2026 mlx-lowbit contributors.
"""The kernel benchmark of ``mlx-lowbit bench``: what runs (plans, shapes,
formats), the device and its peak figures, the timer, and the kernels against
baselines measured in the same run."""

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

from .. import _ext
from ..ops import matmul, quantize
from ..quantized_weight import QuantizedWeight
from .common import DTYPES, RECIPES, time_op

# (label, format, options): the formats every kernel table covers, from the
# shared recipes (binary+bias runs binary's kernel; it is timed by the layer
# report). Fewer clustering iterations keep the bench's setup short.
FORMATS = [
    (label, fmt, {**opts, "max_iters": 10} if fmt == "codebook" else opts)
    for label, fmt, opts in RECIPES
    if label != "binary+bias"
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

# From schedule.cpp's one table, so a new schedule is benchmarked without edits here.
SCHEDULES = tuple(_ext.schedules())

# MLX's Linux wheel links the reference BLAS; preloading OpenBLAS (Debian:
# libopenblas0-pthread) gives its dense products a real BLAS, closer to what
# MLX does with Accelerate on a Mac. MLX_LOWBIT_OPENBLAS names another copy.
OPENBLAS = os.environ.get(
    "MLX_LOWBIT_OPENBLAS", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"
)


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
    # The MoE gather (bench/moe.py): (experts, N, K), top-k, tokens, formats.
    moe_shape: Tuple[int, int, int] = (128, 768, 2048)  # Qwen3-30B-A3B's gate/up
    moe_top_k: int = 8
    moe_ms: List[int] = field(default_factory=lambda: [1, 16, 128])
    moe_formats: int = 3  # how many of FORMATS


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
    moe_shape=(16, 256, 512),
    moe_top_k=4,
    moe_ms=[1, 16],
    moe_formats=1,
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
    wanted = (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "bmi2",
    )
    return [f for f in (m.group(1).split() if m else []) if f in wanted]


def _cpu_family_model() -> str:
    """x86 "family F model M" (what tells Zen 4 from Zen 5), else ""."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    fam = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M)
    mod = re.search(r"^model\s*:\s*(\d+)$", text, re.M)
    return f"family {fam.group(1)} model {mod.group(1)}" if fam and mod else ""


def quiet_blas_threads() -> str:
    """numpy's OpenBLAS to one thread, so that its workers do not spin on the
    cores the kernels are timed on after a BLAS call (the quantizers use
    numpy). Returns what was done, for the report."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # for any subprocess
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "OPENBLAS_NUM_THREADS=1 for subprocesses (no /proc/self/maps here)"
    import ctypes

    libs = sorted({line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()})
    done = []
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for sym in (
            "openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_",
            "openblas_set_num_threads64_",
        ):
            fn = getattr(handle, sym, None)
            if fn is not None:
                fn(1)
                done.append(f"{Path(lib).name}: {sym}(1)")
                break
    return "numpy's BLAS set to 1 thread (" + ("; ".join(done) or "no OpenBLAS loaded") + ")"


def measure_read_bandwidth(nbytes: int, seconds: float = 0.2) -> float:
    """Single-thread read bandwidth in GB/s over a buffer of `nbytes`: the
    best of repeated max-reductions (numpy's SIMD loop, not bound by its
    arithmetic). A buffer that fits the caches is read warm: the rate a
    resident weight can reach; 256 MiB measures streaming from DRAM."""
    a = np.ones(max(nbytes // 4, 1024), dtype=np.float32)
    a.max()
    best, spent = math.inf, 0.0
    while spent < seconds or best == math.inf:
        start = time.perf_counter()
        a.max()
        t = time.perf_counter() - start
        best, spent = min(best, t), spent + t
    return a.nbytes / best / 1e9


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
        "cpu_family_model": _cpu_family_model(),
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
    info["read_bandwidth_streaming_gbps_1thread"] = measure_read_bandwidth(256 * 2**20)
    if device == "gpu" and mx.metal.is_available():
        gpu = mx.metal.device_info()
        info["gpu"] = {
            k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in gpu.items()
        }
    return info


def peak_figures(info: Dict[str, Any], threads: int) -> Tuple[float, float]:
    """(fp32 GFLOP/s, GB/s) ceilings for a run on `threads` threads."""
    return (
        info["peak_gflops_per_core"] * threads,
        info["copy_bandwidth_gbps_1thread"] * threads,
    )


# ---------------------------------------------------------------- timing


def _progress(i: int, total: int, what: str) -> None:
    print(f"  [{i}/{total}] {what}", flush=True)


# ---------------------------------------------------------------- kernels


def random_layer(n: int, k: int, dtype: mx.Dtype = mx.float32, seed: int = 0) -> mx.array:
    return (mx.random.normal((n, k), key=mx.random.key(seed)) * (k**-0.5)).astype(dtype)


def _baselines(w: mx.array, dtype: mx.Dtype) -> Dict[str, Callable[[mx.array], mx.array]]:
    """The products we compare with, for x in `dtype` (built once per shape).

    MLX's 4- and 2-bit weights are quantized from the weight in x's dtype, as
    a model in that dtype stores them (scales and biases share it). For float16
    and bfloat16 x that is a slow CPU path in MLX 0.32, so the row
    "mx.qmm 4-bit f32 scales" adds MLX's fastest CPU case, where float32
    scales promote the product to float32."""
    wd, w16, w32 = w.astype(dtype), w.astype(mx.float16), w.astype(mx.float32)
    q4 = mx.quantize(wd, group_size=64, bits=4)
    q2 = mx.quantize(wd, group_size=64, bits=2)
    mx.eval(w16, w32, *q4, *q2)
    named = {
        "dense f16": lambda x: x.astype(mx.float16) @ w16.T,
        "dense f32": lambda x: x.astype(mx.float32) @ w32.T,
        "mx.qmm 4-bit": lambda x: mx.quantized_matmul(x, *q4, group_size=64, bits=4),
        "mx.qmm 2-bit": lambda x: mx.quantized_matmul(x, *q2, group_size=64, bits=2),
    }
    if dtype != mx.float32:
        q4_32 = mx.quantize(w32, group_size=64, bits=4)
        mx.eval(*q4_32)
        named["mx.qmm 4-bit f32 scales"] = lambda x: mx.quantized_matmul(
            x, *q4_32, group_size=64, bits=4
        )
    return named


OPENBLAS_DENSE = "dense f32 OpenBLAS"


def openblas_dense(n: int, k: int, ms: List[int], plan: Plan) -> Dict[int, Dict[str, Any]]:
    """MLX's dense float32 x @ w.T (the "dense f32" baseline's product, same
    weight) timed in a subprocess with OpenBLAS preloaded, on as many
    threads as the kernels. {M: time_op's dict}, or {} where there is no
    OpenBLAS to preload (the report says so)."""
    if not sys.platform.startswith("linux") or not Path(OPENBLAS).is_file():
        return {}
    threads = str(_ext.num_threads())
    env = dict(os.environ, LD_PRELOAD=OPENBLAS, OPENBLAS_NUM_THREADS=threads)
    spec = json.dumps(
        {"n": n, "k": k, "ms": ms, "min_time": plan.min_time, "max_repeats": plan.max_repeats}
    )
    code = "from mlx_lowbit.bench.kernels import _dense_worker; _dense_worker()"
    proc = subprocess.run(
        [sys.executable, "-c", code, spec], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(f"  {OPENBLAS_DENSE}: failed: {proc.stderr[-500:]}", flush=True)
        return {}
    return {int(m): t for m, t in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def _dense_worker() -> None:
    """The subprocess of openblas_dense: prints {M: timing} as JSON."""
    spec = json.loads(sys.argv[1])
    timing = type("Timing", (), {"min_time": spec["min_time"], "max_repeats": spec["max_repeats"]})
    mx.set_default_device(mx.cpu)
    w = random_layer(spec["n"], spec["k"])
    mx.eval(w)
    out = {}
    for m in spec["ms"]:
        x = mx.random.normal((m, spec["k"]), key=mx.random.key(m))
        mx.eval(x)
        out[m] = time_op(lambda: x @ w.T, timing, limit=60.0)
    print(json.dumps(out))


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
        dtypes = (
            plan.dtypes
            if shape in plan.extra_dtype_shapes or len(plan.shapes) == 1
            else plan.dtypes[:1]
        )
        ms = plan.ms + ([4096] if shape == plan.big_m_shape else [])
        jobs.append((shape, dtypes, ms))
    n_bitlinear = 1 if stream == mx.gpu and mx.metal.is_available() else 0
    total = sum(
        len(m) * (len(FORMATS) * 2 + 5 + (dname != "float32") + n_bitlinear)
        for _, d, m in jobs
        for dname in d
    )
    done = 0
    for shape, dtypes, ms in jobs:
        n, k = LAYER_SHAPES[shape]
        print(f"\n{shape}: N={n} K={k}", flush=True)
        w = random_layer(n, k)
        mx.eval(w)
        weights = {}
        resident: Dict[int, float] = {}
        for label, fmt, opts in FORMATS:
            start = time.perf_counter()
            weights[label] = quantize(w, fmt, 128, **opts)
            mx.eval(*weights[label].arrays())
            print(f"  quantized {label} in {time.perf_counter() - start:.1f} s", flush=True)
            nb = weights[label].nbytes
            resident[nb] = measure_read_bandwidth(nb)
        for dname in dtypes:
            dtype = DTYPES[dname]
            baselines = _baselines(w, dtype)
            bitlinear = _bitlinear(n, k, dtype) if stream == mx.gpu else None
            if stream != mx.gpu and dname == dtypes[0] and shape == jobs[0][0]:
                print(
                    "  mlx-lm BitLinear: skipped (a Metal kernel; run with --device gpu on a Mac)",
                    flush=True,
                )
            last: Dict[str, Tuple[int, float]] = {}
            blas = openblas_dense(n, k, ms, plan) if stream != mx.gpu else {}
            for m in ms:
                x = mx.random.normal((m, k), key=mx.random.key(m)).astype(dtype)
                mx.eval(x)
                for label, qw in weights.items():
                    for bits in (0, 8):
                        done += 1
                        t = time_op(
                            lambda: matmul(x, qw, activation_bits=bits, stream=stream), plan
                        )
                        rows.append(_kernel_row(shape, n, k, m, dname, label, bits, qw, t, info))
                        rows[-1]["read_bandwidth_resident_gbps_1thread"] = resident[qw.nbytes]
                        _progress(
                            done,
                            total,
                            f"{label:<17} {dname} a{bits} M={m:<5} {t['median'] * 1e3:9.3f} ms",
                        )
                done += 1
                if m in blas:
                    t = blas[m]
                    rows.append(_baseline_row(shape, n, k, m, dname, OPENBLAS_DENSE, t, ""))
                    _progress(done, total, f"{OPENBLAS_DENSE} M={m:<5} {t['median'] * 1e3:9.3f} ms")
                named = dict(baselines)
                if bitlinear is not None:
                    named["mlx-lm BitLinear"] = bitlinear
                for name, fn in named.items():
                    done += 1
                    prev = last.get(name)
                    predicted = prev[1] * m / prev[0] if prev else 0.0
                    if predicted > plan.baseline_limit:
                        rows.append(
                            _baseline_row(
                                shape,
                                n,
                                k,
                                m,
                                dname,
                                name,
                                None,
                                f"skipped: predicted {predicted:.0f} s",
                            )
                        )
                        _progress(
                            done,
                            total,
                            f"{name:<17} {dname} M={m:<5} skipped (predicted {predicted:.0f} s)",
                        )
                        continue
                    t = time_op(lambda: fn(x), plan, limit=plan.baseline_limit / 4)
                    last[name] = (m, t["median"])
                    rows.append(_baseline_row(shape, n, k, m, dname, name, t, t.get("note", "")))
                    _progress(
                        done,
                        total,
                        f"{name:<17} {dname} M={m:<5} {t['median'] * 1e3:9.3f} ms {t.get('note', '')}",
                    )
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
            median_s=t["median"],
            p10_s=t["p10"],
            p90_s=t["p90"],
            repeats=t["repeats"],
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
