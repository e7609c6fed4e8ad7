# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit bench --ggml PATH``: ggml's low-bit CPU products next to ours,
measured in the same run by ggml-bench (the shared tool that times both
sides interleaved, in two worker processes), and issue 13's targets judged
on its ratios. Figures against ggml are only ever same-run ratios: absolute
ggml times from another day or host can be off by 2x."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# Where ggml-bench lives when neither --ggml-bench nor MLX_LOWBIT_GGML_BENCH
# says: beside the project's checkout (../shared/tools/ggml-bench).
_DEFAULT_TOOL = Path("..") / "shared" / "tools" / "ggml-bench"

# (what, lowbit format, ggml type, activation bits, M, bar): lowbit time /
# ggml time must be at most `bar`, for every thread count and x dtype.
TARGETS: List[Tuple[str, str, str, int, int, float]] = [
    ("ternary int8 / TQ2_0", "ternary", "tq2_0", 8, 1, 0.7),
    ("ternary float / TQ2_0", "ternary", "tq2_0", 0, 1, 1.0),
    ("binary int8 / Q1_0", "binary", "q1_0", 8, 1, 0.5),
    ("binary float / Q1_0", "binary", "q1_0", 0, 1, 0.8),
    ("codebook v16 c12 int8 / Q1_0", "codebook", "q1_0", 8, 1, 0.8),
    ("ternary int8 / TQ2_0", "ternary", "tq2_0", 8, 8, 0.6),
    ("binary int8 / Q1_0", "binary", "q1_0", 8, 8, 0.6),
    ("codebook v16 c12 int8 / Q1_0", "codebook", "q1_0", 8, 8, 0.6),
    ("ternary int8 / TQ2_0", "ternary", "tq2_0", 8, 128, 0.45),
    ("ternary float / TQ2_0", "ternary", "tq2_0", 0, 128, 0.8),
]


def find_tool(explicit: Optional[str] = None) -> Path:
    """ggml-bench's directory (the one holding bench.py)."""
    candidates = [explicit, os.environ.get("MLX_LOWBIT_GGML_BENCH")]
    repo = Path(__file__).resolve().parents[3]  # python/mlx_lowbit/bench -> the checkout
    candidates += [str(repo / _DEFAULT_TOOL), str(Path.cwd() / _DEFAULT_TOOL)]
    for c in candidates:
        if c and (Path(c) / "bench.py").is_file():
            return Path(c).resolve()
    raise SystemExit(
        "mlx-lowbit bench --ggml: ggml-bench's bench.py not found; pass --ggml-bench DIR or set "
        f"MLX_LOWBIT_GGML_BENCH (looked in: {', '.join(c for c in candidates if c)})"
    )


def ggml_binary(path: str) -> Path:
    """ggml-mm-bench from a ggml-bench build directory (build.sh's
    $TMPDIR/ggml-build) or the binary itself."""
    p = Path(path).expanduser()
    for c in (p, p / "bin" / "ggml-mm-bench"):
        if c.is_file() and os.access(c, os.X_OK):
            return c.resolve()
    raise SystemExit(
        f"mlx-lowbit bench --ggml: no ggml-mm-bench at {p} or {p / 'bin' / 'ggml-mm-bench'}; "
        "build it with ggml-bench's build.sh"
    )


def _load_tool(tool: Path):
    spec = importlib.util.spec_from_file_location("ggml_bench_tool", tool / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def targets(tool: Path, data: Dict[str, Any]) -> List[Tuple[str, str, str]]:
    """Issue 13's targets on one ggml-bench run: (target, measured ratios
    median [min-max] over rounds, verdict by the worst median)."""
    mod = _load_tool(tool)
    meta, results = data["meta"], data["results"]
    agg = mod.summarize(results, meta["rounds"])
    threads = sorted({r["threads"] for r in results})
    dtypes = sorted({r["dtype"] for r in results if r.get("side") == "lowbit"})
    out = []
    for what, fmt, gtype, bits, m, bar in TARGETS:
        cells, worst = [], None
        for nt in threads:
            for dtype in dtypes:
                r = mod.ratio(agg, mod.lb_key(fmt, dtype, bits, nt, m), ("ggml", gtype, nt, m))
                if r is None:
                    continue
                cells.append(f"{nt}T {dtype}: {r[0]:.2f} [{r[1]:.2f}-{r[2]:.2f}]")
                worst = r[0] if worst is None else max(worst, r[0])
        label = f"M={m}: {what} <= {bar}"
        if worst is None:
            out.append((label, "not measured", "-"))
        else:
            out.append((label, "; ".join(cells), "met" if worst <= bar else "missed"))
    return out


def run(path: str, outdir: Path, quick: bool, tool_dir: Optional[str] = None) -> Dict[str, Any]:
    """Runs ggml-bench (its own interleaved run, ~1 min quick, ~6 min full)
    and returns its report, results file and the targets on its ratios."""
    binary, tool = ggml_binary(path), find_tool(tool_dir)
    out = outdir / "ggml"
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.glob("results-*.json"))
    cmd = [sys.executable, str(tool / "bench.py"), "--ggml-bin", str(binary), "--out", str(out)]
    if quick:
        cmd.append("--quick")
    print(f"  {' '.join(cmd)}", flush=True)
    # Its lowbit worker sets OPENBLAS_NUM_THREADS=1 itself; the driver does
    # no BLAS work, so nothing spins while either side is timed.
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        return {"error": f"ggml-bench failed (exit {proc.returncode}):\n{tail}", "command": cmd}
    new = sorted(set(out.glob("results-*.json")) - before)
    if not new:
        return {"error": "ggml-bench wrote no results file", "command": cmd}
    data = json.loads(new[-1].read_text())
    report = new[-1].with_name(new[-1].name.replace("results-", "report-").replace(".json", ".md"))
    return {
        "command": cmd,
        "results_file": str(new[-1]),
        "report": report.read_text() if report.is_file() else "",
        "cpu": data["meta"].get("cpu"),
        "targets": targets(tool, data),
    }
