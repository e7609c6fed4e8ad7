# Copyright © 2026 mlx-lowbit contributors.
"""Benchmark suite: kernels vs baselines, ablations, end to end (Markdown/CSV/JSON/PNG)."""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import mlx.core as mx

from .ablations import (
    ablation_accumulation,
    ablation_activations,
    ablation_codebook,
    ablation_group_size,
    ablation_schedule,
    ablation_threads,
    end_to_end,
)
from .ggml import ggml_binary
from .ggml import run as ggml_run
from .kernels import FULL, QUICK, detect_device, quiet_blas_threads, run_kernels
from .moe import run_moe
from .report import markdown, plots, targets, write_csv

# ---------------------------------------------------------------- driver


SECTIONS = [
    "kernels",
    "threads",
    "activations",
    "group_size",
    "codebook",
    "accumulation",
    "schedule",
    "e2e",
    "moe",
]


def bench(
    quick: bool,
    out: str,
    device: str,
    sections: List[str],
    plots_on: bool = True,
    ggml: Optional[str] = None,
    ggml_bench: Optional[str] = None,
) -> Dict[str, Any]:
    """Runs the suite and writes report.md, results.json, results.csv and PNGs.

    Args:
        quick (bool): The small plan (under a minute on a 2-core CPU) instead
          of the full one.
        out (str): Output directory (created).
        device (str): ``"cpu"`` or ``"gpu"`` (Metal).
        sections (list): Which parts to run, from ``SECTIONS``.
        plots_on (bool): Write PNG plots (needs matplotlib).
        ggml (str, optional): A ggml-bench build (directory or its
          ggml-mm-bench): also run ggml-bench's interleaved comparison with
          ggml and judge issue 13's targets on its ratios.
        ggml_bench (str, optional): ggml-bench's directory (default:
          ``$MLX_LOWBIT_GGML_BENCH`` or ``../shared/tools/ggml-bench``).

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
    blas_note = quiet_blas_threads()
    info = detect_device(device)
    print(
        f"  {info['cpu_model']}, {info['cpu_cores']} cores, path {info['cpu_path']}, {info['threads']} threads",
        flush=True,
    )
    results: Dict[str, Any] = {
        "plan": plan.name,
        "device": info,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "load_average": (
            " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
        ),
        "notes": [
            "mx.quantized_matmul with float16 x is very slow on MLX's Linux CPU build (a scalar "
            "loop): baselines predicted to exceed the plan's limit are skipped and marked; slow "
            "ones are timed once.",
            blas_note + ": no OpenBLAS worker spins while the kernels are timed.",
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
    if "moe" in sections:
        print("\nMixture-of-experts gather", flush=True)
        results["moe"] = run_moe(plan, stream, device == "gpu")
    if ggml:
        print("\nggml, same run (ggml-bench)", flush=True)
        results["ggml"] = ggml_run(ggml, outdir, quick, ggml_bench)
    results["load_average_end"] = (
        " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    )
    results["targets"] = targets(results.get("threads", []), results.get("kernels", []))
    results["duration_s"] = time.time() - started
    results["plots"] = plots(outdir, results) if plots_on and results.get("kernels") else []
    if plots_on and results.get("kernels") and not results["plots"]:
        results["notes"].append(
            "No PNG plots: matplotlib is not installed (pip install 'mlx-lowbit[bench]')."
        )
    (outdir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    rows = [r for key in SECTIONS for r in results.get(key, [])]
    write_csv(outdir / "results.csv", rows)
    report = markdown(results)
    (outdir / "report.md").write_text(report)
    print("\n" + report)
    print(
        f"Wrote {outdir}/report.md, results.json, results.csv"
        + (f" and {len(results['plots'])} PNGs" if results["plots"] else "")
        + f" in {results['duration_s']:.0f} s."
    )
    return results


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlx-lowbit bench",
        description=__doc__,
        epilog="mlx-lowbit bench quality [options]: perplexity vs bits per weight for every "
        "quantizer (its own --help).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="The small plan: under a minute on a 2-core CPU (CI runs it).",
    )
    p.add_argument("--out", default="mlx_lowbit_bench", help="Output directory.")
    p.add_argument(
        "--device",
        choices=["cpu", "gpu", "metal-model"],
        default="cpu",
        help="Where the products run; metal-model prints the emulator's cost model of the "
        "Metal kernels (coalescing, x traffic, bank conflicts, barriers, decode ops per "
        "weight; needs the source checkout and clang 19) instead.",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"Comma-separated subset of: {', '.join(SECTIONS)}.",
    )
    p.add_argument("--no-plots", action="store_true", help="Skip the PNG plots.")
    p.add_argument(
        "--ggml",
        metavar="PATH",
        help="A ggml-bench build (build.sh's directory, or its ggml-mm-bench): also time ggml "
        "next to these kernels in the same run, interleaved, and judge the targets on the ratios.",
    )
    p.add_argument(
        "--ggml-bench",
        metavar="DIR",
        help="ggml-bench's directory (default: $MLX_LOWBIT_GGML_BENCH, or ../shared/tools/ggml-bench).",
    )
    return p


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "quality":  # mlx-lowbit bench quality [options]
        from .quality import main as quality_main

        return quality_main(argv[1:])
    args = setup_arg_parser().parse_args(argv)
    if args.device == "metal-model":
        from .metal_model import main as model_main

        return model_main()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(
            f"mlx-lowbit bench: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    if args.device == "gpu" and not mx.metal.is_available():
        raise SystemExit("mlx-lowbit bench: --device gpu needs Metal (Apple silicon).")
    if args.ggml:
        ggml_binary(args.ggml)  # a bad path fails now, not after the run
    bench(
        args.quick, args.out, args.device, sections, not args.no_plots, args.ggml, args.ggml_bench
    )


if __name__ == "__main__":
    main()
