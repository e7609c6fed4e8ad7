# Copyright © 2026 mlx-lowbit contributors.
"""On a Mac: GPU tests under Metal validation, then kernels vs MLX's, as a PR-ready report.

``mlx-lowbit verify-metal`` (from a source checkout, for the tests) does, in
one run:

1. probes the GPU: a product checked against its known result, and the
   device name (a paravirtual GPU, as on hosted CI runners, is refused);
2. runs tests/test_metal_gpu.py with Metal's API and shader validation on,
   where a skipped GPU test is a failure;
3. times, side by side, ternary against ``mx.quantized_matmul(bits=2)`` on
   the identical packed bytes (a ternary code is t + 1, an MLX affine 2-bit
   code with scale s and bias -s), binary against MLX's 1-bit affine on the
   identical bytes (scale 2s, bias -s), codebook, and mlx-lm's BitLinear
   kernel; GEMV at M = 1 and every GEMM schedule at M in {16, 128, 512,
   2048};
4. writes report.md (chip, cores, achieved GB/s and TFLOP/s against the
   chip's published peaks, which schedule ``auto`` picked versus the fastest
   measured) and results.json.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import numpy as np

from . import _ext
from .ops import matmul, quantize
from .quantized_weight import QuantizedWeight

# Published peaks per chip (memory GB/s, fp16/fp32 TFLOP/s), from Apple's
# product pages; the GPU core count picks the variant where it differs.
PEAKS: Dict[str, List[Tuple[int, float, float]]] = {
    # chip: [(gpu cores, GB/s, TFLOP/s), ...]
    "Apple M1": [(7, 68.25, 2.3), (8, 68.25, 2.6)],
    "Apple M1 Pro": [(14, 200.0, 4.5), (16, 200.0, 5.2)],
    "Apple M1 Max": [(24, 400.0, 7.8), (32, 400.0, 10.4)],
    "Apple M1 Ultra": [(48, 800.0, 15.9), (64, 800.0, 21.2)],
    "Apple M2": [(8, 100.0, 2.9), (10, 100.0, 3.6)],
    "Apple M2 Pro": [(16, 200.0, 5.7), (19, 200.0, 6.8)],
    "Apple M2 Max": [(30, 400.0, 10.7), (38, 400.0, 13.6)],
    "Apple M2 Ultra": [(60, 800.0, 21.5), (76, 800.0, 27.2)],
    "Apple M3": [(8, 100.0, 3.5), (10, 100.0, 4.1)],
    "Apple M3 Pro": [(14, 150.0, 6.4), (18, 150.0, 7.4)],
    "Apple M3 Max": [(30, 300.0, 12.3), (40, 400.0, 16.4)],
    "Apple M4": [(8, 120.0, 3.5), (10, 120.0, 4.3)],
    "Apple M4 Pro": [(16, 273.0, 7.4), (20, 273.0, 9.2)],
    "Apple M4 Max": [(32, 410.0, 13.8), (40, 546.0, 17.2)],
}

GEMM_SCHEDULES = ("dataparallel", "splitk", "streamk", "hybrid")
GEMM_MS = (16, 128, 512, 2048)


def device_name() -> str:
    info = getattr(mx, "device_info", None) or mx.metal.device_info
    return str(info().get("device_name", "unknown"))


def probe_gpu() -> Optional[str]:
    """Why the GPU cannot run our kernels, or None when it can.

    ``mx.metal.is_available()`` alone is true on any Metal build, even with a
    paravirtual GPU that lacks the Apple7 family our GEMM needs: this also
    checks the device name and the result of a product on the GPU.
    """
    if not mx.metal.is_available():
        return "MLX has no Metal device"
    try:
        name = device_name()
    except Exception as e:  # noqa: BLE001 (reported, not hidden)
        return f"cannot read the Metal device name: {e}"
    if not name.startswith("Apple") or "Paravirtual" in name:
        return f"the Metal device is {name!r}, not Apple silicon"
    try:
        a = mx.arange(64, dtype=mx.float32).reshape(8, 8)
        got = np.asarray(mx.matmul(a, a.T, stream=mx.gpu))
    except Exception as e:  # noqa: BLE001
        return f"a product on the GPU ({name}) failed: {e}"
    want = np.arange(64, dtype=np.float32).reshape(8, 8)
    if not np.array_equal(got, want @ want.T):
        return f"a product on the GPU ({name}) gave a wrong result"
    return None


def chip_peaks(name: str, cores: int) -> Tuple[Optional[float], Optional[float]]:
    """(GB/s, TFLOP/s) published for this chip, or (None, None)."""
    variants = PEAKS.get(name)
    if not variants:
        return None, None
    best = min(variants, key=lambda v: abs(v[0] - cores))
    return best[1], best[2]


def mlx_affine_of(qw: QuantizedWeight) -> Optional[Dict[str, Any]]:
    """The same packed bytes as an MLX affine quantized weight, or None.

    Ternary: code = t + 1 at 2 bits, LSB first, so t * s = s * code - s:
    bits=2, scales s, biases -s. Binary: bit b gives (2b - 1) * s + bias:
    bits=1, scales 2s, biases bias - s (rounded to x's dtype, as MLX takes
    them: exact for fp16 scales without bias). The packed uint32 array is
    reused as is.
    """
    s = qw.scales.astype(mx.float32)  # bias - s in fp32, rounded once to x's dtype
    if qw.fmt == "ternary":
        return {"w": qw.packed, "scales": s, "biases": -s, "bits": 2}
    if qw.fmt == "binary":
        bias = qw.biases.astype(mx.float32) if qw.biases is not None else mx.zeros_like(s)
        return {"w": qw.packed, "scales": 2 * s, "biases": bias - s, "bits": 1}
    return None


def mlx_baseline(x: mx.array, qw: QuantizedWeight, stream) -> Callable[[], mx.array]:
    """``mx.quantized_matmul`` on `qw`'s own bytes (ValueError if MLX refuses)."""
    a = mlx_affine_of(qw)
    if a is None:
        raise ValueError(f"{qw.fmt} has no MLX affine equivalent")
    w, scales, biases = a["w"], a["scales"].astype(x.dtype), a["biases"].astype(x.dtype)

    def run():
        return mx.quantized_matmul(
            x,
            w,
            scales,
            biases,
            transpose=True,
            group_size=qw.group_size,
            bits=a["bits"],
            stream=stream,
        )

    run()  # raises here if MLX lacks the bit width
    return run


def bitlinear_baseline(x: mx.array, n: int, k: int) -> Callable[[], mx.array]:
    """mlx-lm's BitLinear kernel (its own 2-bit layout, 4 weights per byte along N)."""
    from mlx_lm.models.bitlinear_layers import BitLinear

    layer = BitLinear(k, n, bias=False)
    packed = mx.random.randint(0, 256, ((n + 3) // 4, k), key=mx.random.key(3)).astype(mx.uint8)
    layer.weight = packed
    layer.weight_scale = mx.array([1.0], dtype=x.dtype)
    return lambda: layer(x)


def time_ms(fn: Callable[[], mx.array], repeats: int) -> float:
    """Median milliseconds of one evaluated call (every result evaluated)."""
    mx.eval(fn())
    mx.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval([fn() for _ in range(10)])
        mx.synchronize()
        times.append((time.perf_counter() - start) / 10)
    return 1e3 * float(np.median(times))


def _weight_bytes(qw: QuantizedWeight) -> int:
    arrays = [qw.packed, qw.scales, qw.biases, qw.codebook]
    return sum(a.nbytes for a in arrays if a is not None)


def _row(
    kernel: str, m: int, n: int, k: int, ms: float, wbytes: int, itemsize: int, peaks
) -> Dict[str, Any]:
    moved = wbytes + (m * k + m * n) * itemsize
    gbs = moved / (ms * 1e-3) / 1e9
    tflops = 2.0 * m * n * k / (ms * 1e-3) / 1e12
    bw, fl = peaks
    return {
        "kernel": kernel,
        "M": m,
        "ms": ms,
        "GB/s": gbs,
        "TFLOP/s": tflops,
        "of peak BW": gbs / bw if bw else None,
        "of peak FLOP/s": tflops / fl if fl else None,
    }


FORMATS = [
    ("ternary", "ternary", {}),
    ("binary", "binary", {}),
    ("codebook v16 c12", "codebook", {"vector_size": 16, "index_bits": 12}),
]


def measure(
    n: int, k: int, dtype: mx.Dtype, repeats: int, peaks, stream=None
) -> List[Dict[str, Any]]:
    """Every kernel and baseline at every M, one table's rows."""
    stream = mx.gpu if stream is None else stream
    cores = _ext.gpu_core_info()["cores"] if stream == mx.gpu else 8
    w = mx.random.normal((n, k), key=mx.random.key(0))
    item = mx.zeros((1,), dtype=dtype).itemsize
    rows: List[Dict[str, Any]] = []
    for label, fmt, opts in FORMATS:
        qw = quantize(w, fmt, 128, **opts)
        wbytes = _weight_bytes(qw)
        for m in (1, *GEMM_MS):
            x = mx.random.normal((m, k), key=mx.random.key(1)).astype(dtype)
            schedules = ("gemv",) if m == 1 else GEMM_SCHEDULES
            times = {}
            for s in schedules:
                t = time_ms(lambda: matmul(x, qw, schedule=s, stream=stream), repeats)
                times[s] = t
                rows.append(_row(f"{label} {s}", m, n, k, t, wbytes, item, peaks))
            auto = _ext.metal_plan(
                fmt,
                128,
                opts.get("vector_size", 0),
                opts.get("index_bits", 0),
                False,
                False,
                dtype,
                m,
                n,
                k,
                gpu_cores=cores,
            )["schedule"]
            t_auto = time_ms(lambda: matmul(x, qw, stream=stream), repeats)
            row = _row(f"{label} auto", m, n, k, t_auto, wbytes, item, peaks)
            row["auto picked"] = auto
            row["fastest"] = min(times, key=times.get)
            rows.append(row)
            baselines = []
            if mlx_affine_of(qw) is not None:
                bits = mlx_affine_of(qw)["bits"]
                baselines.append((f"mx.quantized_matmul bits={bits} (same bytes)", qw))
            for name, q in baselines:
                try:
                    fn = mlx_baseline(x, q, stream)
                except Exception as e:  # noqa: BLE001 (MLX without 1-bit: say so)
                    rows.append({"kernel": name, "M": m, "ms": None, "note": str(e)[:80]})
                    continue
                rows.append(_row(name, m, n, k, time_ms(fn, repeats), wbytes, item, peaks))
            if fmt == "ternary" and stream == mx.gpu:
                try:
                    fn = bitlinear_baseline(x, n, k)
                    t = time_ms(fn, repeats)
                    rows.append(_row("mlx-lm BitLinear", m, n, k, t, n * k // 4, item, peaks))
                except Exception as e:  # noqa: BLE001
                    rows.append(
                        {"kernel": "mlx-lm BitLinear", "M": m, "ms": None, "note": str(e)[:80]}
                    )
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def report(meta: Dict[str, Any], rows: List[Dict[str, Any]]) -> str:
    """The Markdown report (what a PR pastes)."""
    cols = [
        "kernel",
        "M",
        "ms",
        "GB/s",
        "TFLOP/s",
        "of peak BW",
        "of peak FLOP/s",
        "auto picked",
        "fastest",
        "note",
    ]
    lines = [
        "## verify-metal",
        "",
        f"- chip: {meta['chip']} ({meta['gpu_cores']} GPU cores, from {meta['cores_source']})",
        f"- peaks: {_fmt(meta['peak_gbs'])} GB/s, {_fmt(meta['peak_tflops'])} TFLOP/s (fp16, published)",
        f"- macOS {meta['macos']}, MLX {meta['mlx']}, layer {meta['N']} x {meta['K']}, {meta['dtype']}",
        f"- GPU tests with shader validation: {meta['tests']}",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    picked = [r for r in rows if "auto picked" in r]
    agree = sum(r["auto picked"] == r["fastest"] for r in picked)
    lines += ["", f"`auto` picked the fastest measured schedule in {agree} of {len(picked)} cases."]
    return "\n".join(lines) + "\n"


def run_gpu_tests() -> str:
    from .testing import source_root

    env = dict(
        os.environ, MTL_DEBUG_LAYER="1", MTL_SHADER_VALIDATION="1", MLX_LOWBIT_REQUIRE_GPU="1"
    )
    root = source_root()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", str(root / "tests" / "test_metal_gpu.py")],
        cwd=root,
        env=env,
    )
    return "passed" if proc.returncode == 0 else f"FAILED (pytest exit {proc.returncode})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="mlx-lowbit verify-metal", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--probe-only", action="store_true", help="Only check the GPU can run kernels."
    )
    parser.add_argument("--skip-tests", action="store_true", help="Do not run the GPU tests first.")
    parser.add_argument("--n", type=int, default=4096, help="Output features of the timed layer.")
    parser.add_argument("--k", type=int, default=4096, help="Input features of the timed layer.")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/verify-metal")
    args = parser.parse_args(argv)
    reason = probe_gpu()
    if reason is not None:
        sys.exit(f"[verify-metal] cannot run the Metal kernels: {reason}")
    cores = _ext.gpu_core_info()
    name = device_name()
    print(f"[verify-metal] {name}, {cores['cores']} GPU cores ({cores['source']})")
    if args.probe_only:
        return
    tests = "skipped (--skip-tests)" if args.skip_tests else run_gpu_tests()
    dtype = getattr(mx, args.dtype)
    peaks = chip_peaks(name, cores["cores"])
    rows = measure(args.n, args.k, dtype, args.repeats, peaks)
    meta = {
        "chip": name,
        "gpu_cores": cores["cores"],
        "cores_source": cores["source"],
        "peak_gbs": peaks[0],
        "peak_tflops": peaks[1],
        "macos": platform.mac_ver()[0],
        "mlx": mx.__version__,
        "N": args.n,
        "K": args.k,
        "dtype": args.dtype,
        "tests": tests,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(report(meta, rows))
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(report(meta, rows))
    if tests.startswith("FAILED"):
        sys.exit(1)


if __name__ == "__main__":
    main()
