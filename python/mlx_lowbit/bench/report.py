# Copyright © 2026 mlx-lowbit contributors.
"""The reports of ``mlx-lowbit bench``: the issue's targets with verdicts,
Markdown tables, CSV rows and PNG plots (time vs M, roofline)."""

import csv
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .kernels import OPENBLAS_DENSE, peak_figures
from .moe import moe_section

# ---------------------------------------------------------------- reports


def _fmt_s(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s * 1e6:.0f} us" if s < 1e-3 else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")


def _fmt_e(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1e}"


def _fmt_x(v: Optional[float]) -> str:
    return "-" if v is None else (f"{v:.0f}x" if v >= 100 else f"{v:.1f}x")


def targets(
    rows_threads: List[Dict[str, Any]], rows_kernel: List[Dict[str, Any]]
) -> List[Tuple[str, str, str]]:
    """The issue's targets, each with the measured figure and a verdict."""
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

    # Targets against ggml are same-run ratios only (--ggml PATH runs
    # ggml-bench; see ggml.py): no fixed ggml figures here.
    cores = max((r["threads"] for r in rows_threads), default=1)
    if cores > 1:
        for r in rows_threads:
            if r["threads"] == cores and r["M"] >= 8:
                add(
                    f"{r['name']} a{r['activation_bits']} M={r['M']}: {cores} threads scale >= {0.8 * cores:.1f}x",
                    r["median_s"],
                    0,
                    ok=r["speedup_vs_1_thread"] >= 0.8 * cores,
                )
                out[-1] = (out[-1][0], f"{r['speedup_vs_1_thread']:.2f}x", out[-1][2])
    sq = [
        r
        for r in rows_kernel
        if r["kind"] == "kernel" and r["shape"] == "square 4096x4096" and r["dtype"] == "float16"
    ]
    if sq:
        worst_q4 = min((r.get("x mx.qmm 4-bit") or math.inf) for r in sq)
        worst_f32 = min((r.get("x dense f32") or math.inf) for r in sq if r["M"] == 1)
        out.append(
            (
                "every format, every M: >= 100x faster than mx.qmm 4-bit (float16 x)",
                f"worst {_fmt_x(worst_q4) if worst_q4 < math.inf else 'not measured'}",
                "met" if worst_q4 >= 100 else ("missed" if worst_q4 < math.inf else "-"),
            )
        )
        out.append(
            (
                "every format, M=1: >= 20x faster than MLX dense float32",
                f"worst {_fmt_x(worst_f32)}",
                "met" if worst_f32 >= 20 else "missed",
            )
        )
    return out


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    """A Markdown table (header, rule, rows) as lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _kernel_name(r: Dict[str, Any]) -> str:
    return r["name"] + (" a8" if r.get("activation_bits") == 8 else "")


def _header(results: Dict[str, Any]) -> List[str]:
    info = results["device"]
    paths = ", ".join(info["cpu_paths_available"])
    return (
        [
            f"# mlx-lowbit benchmark ({results['plan']} run)",
            "",
            f"- machine: {info['cpu_model']} ({info.get('cpu_family_model') or 'family/model unknown'}), "
            f"{info['cpu_cores']} cores, {info['platform']}",
            f"- CPU flags: {' '.join(info['cpu_flags'])}; kernel paths available: {paths}; "
            f"used: {info['cpu_path']}",
            f"- MLX {info['mlx']}, device {info['device']}, {info['threads']} kernel threads",
            f"- peak figures: {info['peak_gflops_per_core']:.0f} GFLOP/s per core (fp32), copy "
            f"bandwidth {info['copy_bandwidth_gbps_1thread']:.1f} GB/s (1 thread); {info['peak_note']}",
            f"- started {results['started']}, took {results['duration_s'] / 60:.1f} min; load average "
            f"(1, 5, 15 min) at start {results.get('load_average', '?')}, at the end "
            f"{results.get('load_average_end', '?')}",
            "",
            "Times are medians of repeated timed regions (p10-p90 in the CSV/JSON); ratios are "
            "baseline time / mlx-lowbit time measured in the same run at the same shape, M and "
            "activation dtype (`x` = times faster). `a8` = int8 activations. `dense f32` and "
            "`dense f16` are MLX's own CPU products as its wheel links them (on Linux the reference "
            f"BLAS); `{OPENBLAS_DENSE}` is the float32 one with OpenBLAS preloaded (LD_PRELOAD), "
            "closer to MLX with Accelerate on a Mac.",
            "",
        ]
        + [f"> {n}" for n in results.get("notes", [])]
        + [""]
    )


def _targets_section(results: Dict[str, Any]) -> List[str]:
    out = []
    if results.get("targets"):
        out += ["## CPU targets", ""]
        out += _table(["target", "measured", "verdict"], [list(t) for t in results["targets"]])
        out += [""]
    out += ["## ggml, same run", ""]
    g = results.get("ggml")
    if not g:
        out += [
            "Not run: pass `--ggml PATH` (a ggml-bench build, see ggml-bench's README) to time "
            "ggml's TQ2_0 / Q1_0 / Q4_0 next to these kernels, interleaved in this run. No "
            "ggml figures from other runs are quoted here: they differ by up to 2x between "
            "days and hosts of the same kind.",
            "",
        ]
        return out
    if g.get("error"):
        return out + ["ggml-bench did not complete:", "", "```", g["error"], "```", ""]
    out += [
        f"`{' '.join(g['command'])}` ({g['results_file']}); its CPU: {g.get('cpu')}. "
        "Ratios are lowbit time / ggml time per round, median [min-max] over rounds.",
        "",
    ]
    out += _table(["target (issue 13)", "ratios", "verdict"], [list(t) for t in g["targets"]])
    out += [
        "",
        "<details><summary>ggml-bench's report</summary>",
        "",
        g["report"],
        "</details>",
        "",
    ]
    return out


def _bandwidth_section(results: Dict[str, Any]) -> List[str]:
    """M = 1 reads every weight byte once: achieved GB/s against the
    machine's read bandwidth for a buffer of the weight's size (warm in the
    caches) and streaming from DRAM, both single-thread, times the threads."""
    info = results["device"]
    rows = [
        r
        for r in results.get("kernels", [])
        if r["kind"] == "kernel" and r["M"] == 1 and r.get("read_bandwidth_resident_gbps_1thread")
    ]
    if not rows:
        return []
    stream = info.get("read_bandwidth_streaming_gbps_1thread")
    out = [
        "## M = 1: achieved bandwidth",
        "",
        "Bytes moved (weight, x, output) / time, against the read bandwidth of one thread times the kernel threads "
        f"(streaming from DRAM, 256 MiB: {stream:.1f} GB/s per thread; resident: a buffer the "
        "size of the weight, read warm).",
        "",
    ]
    table = []
    for r in rows:
        nt = r["threads"]
        got = r["bytes"] / r["median_s"] / 1e9
        res = r["read_bandwidth_resident_gbps_1thread"] * nt
        table.append(
            [
                r["shape"],
                r["dtype"],
                _kernel_name(r),
                nt,
                f"{got:.1f}",
                f"{res:.1f} ({100 * got / res:.0f}%)",
                f"{stream * nt:.1f} ({100 * got / (stream * nt):.0f}%)",
            ]
        )
    header = ["shape", "x", "kernel", "threads", "GB/s", "resident GB/s (%)", "streaming GB/s (%)"]
    return out + _table(header, table) + [""]


def _kernel_sections(results: Dict[str, Any]) -> List[str]:
    kern = results.get("kernels", [])
    base_names = sorted({r["name"] for r in kern if r["kind"] == "baseline"})
    out = []
    for shape in dict.fromkeys(r["shape"] for r in kern):
        for dtype in dict.fromkeys(r["dtype"] for r in kern if r["shape"] == shape):
            sel = [r for r in kern if r["shape"] == shape and r["dtype"] == dtype]
            first = sel[0]
            out += [
                f"## {shape} (N={first['N']}, K={first['K']}), x in {dtype}, "
                f"{first['threads']} threads",
                "",
            ]
            header = ["kernel", "bpw", "M", "time", "GFLOP/s", "GB/s"]
            header += [f"x {b}" for b in base_names]
            rows = [
                [
                    _kernel_name(r),
                    f"{r['bits_per_weight']:.3f}",
                    r["M"],
                    _fmt_s(r["median_s"]),
                    f"{r['gflops']:.1f}",
                    f"{r['gbps']:.1f}",
                ]
                + [_fmt_x(r.get(f"x {b}")) for b in base_names]
                for r in sel
                if r["kind"] == "kernel"
            ]
            baselines = [
                f"{r['name']} M={r['M']}: {_fmt_s(r['median_s'])}"
                + (f" ({r['note']})" if r["note"] else "")
                for r in sel
                if r["kind"] == "baseline"
            ]
            out += _table(header, rows) + ["", "Baselines: " + "; ".join(baselines), ""]
    return out


def _threads_section(rows: List[Dict[str, Any]]) -> List[str]:
    table = [
        [
            _kernel_name(r),
            r["M"],
            r["threads"],
            _fmt_s(r["median_s"]),
            _fmt_s(r["cpu_s"]),
            f"{r['speedup_vs_1_thread']:.2f}x",
        ]
        for r in rows
    ]
    header = ["kernel", "M", "threads", "time", "CPU time", "speedup vs 1 thread"]
    return (
        ["## Threads (4096 x 4096, float16 x)", ""]
        + _table(header, table)
        + [
            "",
            "CPU time = process CPU time per product, all threads. On a shared machine a "
            "single-threaded product's CPU time is the better estimate of its time on an idle "
            "machine; the wall-clock speedup of more threads shows only what the other load "
            "left free.",
            "",
        ]
    )


def _activations_section(rows: List[Dict[str, Any]]) -> List[str]:
    header = ["format", "M", "float", "int8", "speedup", "float err vs exact"]
    header += ["int8 err vs exact", "int8 vs float"]
    table = [
        [
            r["name"],
            r["M"],
            _fmt_s(r["float_s"]),
            _fmt_s(r["int8_s"]),
            f"{r['int8_speedup']:.2f}x",
            f"{r['float_err_vs_exact']:.1e}",
            f"{r['int8_err_vs_exact']:.1e}",
            f"{r['int8_err_vs_float']:.1e}",
        ]
        for r in rows
    ]
    note = (
        "Errors are relative Frobenius norms against the float64 product with the same "
        "quantized weight: they isolate what the activation path adds."
    )
    return ["## int8 vs float activations", ""] + _table(header, table) + ["", note, ""]


def _group_size_section(rows: List[Dict[str, Any]]) -> List[str]:
    header = ["format", "group", "bpw", "weight err", "output err", "M=1", "M=16"]
    table = [
        [
            r["name"],
            r["group_size"],
            f"{r['bits_per_weight']:.3f}",
            f"{r['weight_err']:.3f}",
            f"{r['output_err']:.3f}",
            _fmt_s(r["M1_s"]),
            _fmt_s(r["M16_s"]),
        ]
        for r in rows
    ]
    return ["## Group size", ""] + _table(header, table) + [""]


def _codebook_section(rows: List[Dict[str, Any]]) -> List[str]:
    header = ["v", "c", "bpw", "weight err", "output err", "M=1"]
    table = [
        [
            r["vector_size"] or r.get("name"),
            r["index_bits"] or "-",
            f"{r['bits_per_weight']:.3f}",
            f"{r['weight_err']:.3f}",
            f"{r['output_err']:.3f}",
            _fmt_s(r["M1_s"]),
        ]
        for r in rows
    ]
    note = (
        "A Gaussian matrix is the hardest case for 1-2 bit rounding; real checkpoints' errors "
        "are lower. Rows without v are the ternary/binary references."
    )
    title = "## Codebook (v, c) vs bits per weight vs layer output error (Gaussian layer)"
    return [title, ""] + _table(header, table) + ["", note, ""]


def _accumulation_section(rows: List[Dict[str, Any]]) -> List[str]:
    keys = [k for k in rows[0] if k not in ("kind", "K")]
    table = [[r["K"]] + [f"{r[k]:.1e}" for k in keys] for r in rows]
    note = (
        "Dot products of fp16 activations (scaled by 1/sqrt(K)) with ternary weights, summed "
        "in fp16 or fp32, against float64. Relative to the outputs' RMS the fp16 error grows "
        "with K (roughly as sqrt(K)) and is 4-5 orders of magnitude above fp32's; interleaved "
        "partial sums only delay it. That is why every kernel accumulates in fp32."
    )
    title = "## Accumulation precision vs K (numerical study)"
    return [title, ""] + _table(["K"] + keys, table) + ["", note, ""]


def _schedule_section(rows: List[Dict[str, Any]], note: str) -> List[str]:
    header = ["format", "M", "schedule", "fix-up", "split_k", "tile", "time", "max diff vs auto"]
    table = [
        [
            r.get("name", "ternary"),
            r["M"],
            r["schedule"],
            r["fixup"],
            r["split_k"],
            r["tile"] or "-",
            _fmt_s(r["median_s"]) if r["median_s"] else r["error"],
            _fmt_e(r["max_diff_vs_auto"]),
        ]
        for r in rows
    ]
    return ["## Schedule ablation", "", note, ""] + _table(header, table) + [""]


def _e2e_section(rows: List[Dict[str, Any]]) -> List[str]:
    out = ["## End to end: SmolLM2-135M", ""]
    if rows[0].get("skipped"):
        return out + [f"skipped: {rows[0]['skipped']}", ""]
    table = [[r["name"], f"{r['prefill_tok_s']:.1f}", f"{r['decode_tok_s']:.1f}"] for r in rows]
    return out + _table(["weights", "prefill tok/s", "decode tok/s"], table) + [""]


def markdown(results: Dict[str, Any]) -> str:
    """The whole report, section by section, for the parts that ran."""
    lines = (
        _header(results)
        + _targets_section(results)
        + _kernel_sections(results)
        + _bandwidth_section(results)
    )
    sections = [
        ("threads", _threads_section),
        ("activations", _activations_section),
        ("group_size", _group_size_section),
        ("codebook", _codebook_section),
        ("accumulation", _accumulation_section),
        ("schedule", lambda rows: _schedule_section(rows, results.get("schedule_note", ""))),
        ("e2e", _e2e_section),
        ("moe", moe_section),
    ]
    for key, render in sections:
        if results.get(key):
            lines += render(results[key])
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
            pts = sorted(
                (r["M"], r["median_s"])
                for r in sel
                if (r["name"], r["activation_bits"], r["kind"]) == name
            )
            style = "--" if name[2] == "baseline" else "-"
            ax.plot(
                *zip(*pts), style, marker="o", ms=3, label=name[0] + (" a8" if name[1] == 8 else "")
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="M (rows of x)",
            ylabel="time (s)",
            title=f"{shape}, x in {dtype}",
        )
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
    ax.plot(
        xs,
        np.minimum(peak, bw * xs),
        "k-",
        lw=1,
        label=f"fp32 roof: {peak:.0f} GFLOP/s, {bw:.0f} GB/s",
    )
    ax.plot(xs, np.minimum(4 * peak, bw * xs), "k:", lw=1, label="int8 dot-product roof (4x)")
    for name in dict.fromkeys((r["name"], r["activation_bits"]) for r in pts):
        sel = [r for r in pts if (r["name"], r["activation_bits"]) == name]
        ax.scatter(
            [r["flops"] / r["bytes"] for r in sel],
            [r["gflops"] for r in sel],
            s=10,
            label=name[0] + (" a8" if name[1] else ""),
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="arithmetic intensity (flop / byte moved)",
        ylabel="GFLOP/s",
        title=f"roofline, {threads} threads ({info['cpu_path']})",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "roofline.png", dpi=110)
    plt.close(fig)
    written.append("roofline.png")
    return written
