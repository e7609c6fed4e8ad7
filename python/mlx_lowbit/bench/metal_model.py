# Copyright © 2026 mlx-lowbit contributors.
"""The Metal kernels' cost model, measured by the emulator (no Mac needed).

Per kernel launch of the plan eval_gpu would encode, run under the emulator's
``profile`` mode (tools/msl/runtime/profile.cpp):

- coalescing: per buffer, distinct bytes the lanes of a simdgroup asked for
  in one access over the 64-byte lines that access touched (1.0 ideal);
- x traffic: 64-byte lines of x over lines of the weight's arrays;
- threadgroup memory: wavefronts that bank conflicts cost over the
  conflict-free count (1.0 ideal), the GEMV's copy of the codebook on its
  own (its pattern lookups are random);
- barriers per threadgroup;
- decode instructions per weight: arithmetic LLVM instructions of the
  decoder's GEMV inner step (``Decoder::dot8``, 8 weights) compiled at -O1,
  next to MLX's 2-bit qdot written the same way (``s * (sum x * code - sum x)``
  with masked codes). Counted from the IR, so it is the decoder's own work,
  not a count of Apple GPU instructions.

``mlx-lowbit bench --device metal-model`` prints the table; docs/KERNELS.md
holds its output.
"""

import re
from typing import Any, Dict, List, Optional, Tuple

import mlx.core as mx

from .. import _ext
from ..ops import quantize
from ..testing import metal_dequantize_profile, metal_profile, source_root

# Slots of kernel_params.h (LOWBIT_BUFFER_*). The weight's streamed arrays
# are packed, scales and biases; the codebook is a small table that stays in
# cache (its gathers are reported on their own).
X_SLOT, PACKED_SLOT, SCALES_SLOT, CODEBOOK_SLOT, OUT_SLOT, WORKSPACE_SLOT = 0, 1, 2, 4, 5, 6
STREAMED_SLOTS = (1, 2, 3)
# The GEMV's threadgroup copy of the codebook (metal/gemv.h): its pattern
# lookups are random, so their bank conflicts are reported on their own.
TABLE_ARRAY = "table"

# (label, format, options): the formats the table covers.
FORMATS = [
    ("ternary", "ternary", {}),
    ("binary", "binary", {}),
    ("codebook v16 c12", "codebook", {"vector_size": 16, "index_bits": 12}),
    ("codebook v8 c5", "codebook", {"vector_size": 8, "index_bits": 5}),
]

# (schedule, M, N, K, dtype, options): every matmul kernel family (GEMV MR =
# 1, 2, 4; the GEMM per schedule, with its fix-up where tiles are split; the
# float weight tile of bfloat16), small enough to emulate in seconds, large enough
# for steady state (K spans four GEMV staging steps, and is a typical layer
# width: a row's loads can use whole lines only where the row starts and
# ends on one, and at K = 2048 a codebook v8 c5 row is 160 bytes; GEMM tiles
# are whole).
SHAPES = [
    ("gemv", 1, 64, 4096, mx.float16, {}),
    ("gemv", 2, 64, 4096, mx.float16, {}),
    ("gemv", 4, 64, 4096, mx.float16, {}),
    ("dataparallel", 32, 64, 256, mx.float16, {}),
    ("dataparallel", 32, 64, 256, mx.bfloat16, {}),
    ("splitk", 32, 64, 256, mx.float16, {"split_k": 2}),
    ("streamk", 32, 64, 256, mx.float16, {"gpu_cores": 1}),
]
# The dequantize kernel: (N, K, dtype), one threadgroup per row (K is one
# kDequantizeK range).
DEQUANTIZE_SHAPE = (16, 2048, mx.float16)

_ARITH = re.compile(
    r"=\s+(?:nnan |ninf |nsz |arcp |contract |afn |reassoc |fast |nuw |nsw |exact |disjoint )*"
    r"(and|or|xor|shl|lshr|ashr|add|sub|mul|udiv|sdiv|urem|srem|icmp|fcmp|select|fadd|fsub|"
    r"fmul|fdiv|fneg|uitofp|sitofp|fptoui|fptosi)\b"
)
_FMA = re.compile(r"call .*@llvm\.(fma|fmuladd)\.")

_DECODERS = {
    "ternary": "lowbit::TernaryDecoder",
    "binary": "lowbit::BinaryDecoder",
    "codebook_v16": "lowbit::CodebookDecoder<16>",
    "codebook_v8": "lowbit::CodebookDecoder<8>",
}

# The probes: one GEMV inner step (8 weights of one row, x pre-scaled) of a
# decoder, and MLX's 2-bit qdot on the same 8 codes.
_PROBE = """
#include "metal/instantiate.h"
[[kernel]] void probe_{name}(device const uint* w [[buffer(0)]], device const float* x [[buffer(1)]],
                        device float* out [[buffer(2)]], constant int& q [[buffer(3)]]) {{
  typedef {decoder} D;
  D::Block b;
  uint* words = (uint*)&b;
  _Pragma("clang loop unroll(full)") for (int i = 0; i < int(sizeof(b) / 4); ++i) {{
    words[i] = w[i];
  }}
  float xv[8];
  _Pragma("clang loop unroll(full)") for (int i = 0; i < 8; ++i) {{
    xv[i] = x[i];
  }}
  out[0] = D::dot8(b, 1, xv);
}}
"""
_MLX_QDOT = """
#include <metal_stdlib>
using namespace metal;
// MLX's qdot for bits = 2 (quantized.h), 8 weights: x pre-scaled by
// 1, 1/4, 1/16, 1/64, codes masked in place, one bias term per block.
[[kernel]] void probe_mlx_qdot(device const uint8_t* w [[buffer(0)]], device const float* x [[buffer(1)]],
                             device float* out [[buffer(2)]]) {
  float xv[8];
  _Pragma("clang loop unroll(full)") for (int i = 0; i < 8; ++i) {
    xv[i] = x[i];
  }
  float accum = 0;
  _Pragma("clang loop unroll(full)") for (int i = 0; i < 2; ++i) {
    accum += xv[4 * i] * float(w[i] & 0x03) + xv[4 * i + 1] * float(w[i] & 0x0c) +
             xv[4 * i + 2] * float(w[i] & 0x30) + xv[4 * i + 3] * float(w[i] & 0xc0);
  }
  out[0] = accum;
}
"""


def _count_arith(ir: str, function: str) -> int:
    body, inside = [], False
    for line in ir.splitlines():
        if line.startswith("define ") and function in line:
            inside = True
            continue
        if inside and line.startswith("}"):
            break
        if inside:
            body.append(line)
    if not body:
        raise RuntimeError(f"no function {function} in the probe's IR")
    return sum(bool(_ARITH.search(l) or _FMA.search(l)) for l in body)


def decode_ops_per_weight(token: str) -> float:
    """Arithmetic IR instructions per weight of the decoder's GEMV step."""
    runner = _runner()
    text = _PROBE.format(name=token, decoder=_DECODERS[token])
    ir = runner.optimized_ir(text, include_dirs=[source_root()], name=f"probe_{token}.metal")
    return _count_arith(ir, f"probe_{token}") / 8.0


def mlx_qdot_ops_per_weight() -> float:
    """The same count for MLX's 2-bit qdot (affine_qmv's inner product)."""
    ir = _runner().optimized_ir(_MLX_QDOT, name="probe_mlx_qdot.metal")
    return _count_arith(ir, "probe_mlx_qdot") / 8.0


def _runner():
    from ..testing import _runner

    return _runner()


def _ratio(a: float, b: float) -> Optional[float]:
    return a / b if b else None


def summarize(launch: Dict[str, Any]) -> Dict[str, Any]:
    """The derived figures of one profiled launch."""
    dev = launch["device"]
    tg = launch["threadgroup"]

    def coalescing(slots) -> Optional[float]:
        useful = sum(dev[s]["useful"] for s in slots if s in dev)
        lines = sum(dev[s]["lines"] for s in slots if s in dev)
        return _ratio(useful, 64 * lines)

    weight_lines = sum(dev[s]["lines"] for s in STREAMED_SLOTS if s in dev)
    x_lines = dev.get(X_SLOT, {}).get("lines", 0)
    return {
        "kernel": launch["kernel"],
        "threadgroups": launch["threadgroups"],
        "x coalescing": coalescing([X_SLOT]),
        "packed coalescing": coalescing([PACKED_SLOT]),
        "scales coalescing": coalescing([SCALES_SLOT]),
        "codebook coalescing": coalescing([CODEBOOK_SLOT]),
        "out coalescing": coalescing([OUT_SLOT]),
        "workspace coalescing": coalescing([WORKSPACE_SLOT]),
        "x / weight traffic": _ratio(x_lines, weight_lines) if X_SLOT in dev else None,
        "bank conflict factor": _ratio(
            sum(t["wavefronts"] for a, t in tg.items() if a != TABLE_ARRAY),
            sum(t["ideal"] for a, t in tg.items() if a != TABLE_ARRAY),
        ),
        "table bank conflict factor": (
            _ratio(tg[TABLE_ARRAY]["wavefronts"], tg[TABLE_ARRAY]["ideal"])
            if TABLE_ARRAY in tg
            else None
        ),
        "barriers / threadgroup": _ratio(launch["barriers"], launch["threadgroups"]),
    }


def model(shapes: List[Tuple[str, int, int, int, Any, Dict[str, int]]] = SHAPES) -> Dict[str, Any]:
    """The cost model of every format's kernels at `shapes`."""
    rows = []
    for label, fmt, opts in FORMATS:
        w = mx.random.normal((64, 4096), key=mx.random.key(0))
        token = _ext.metal_kernel_tokens(fmt, opts.get("vector_size", 0), mx.float16)[0]
        ops = decode_ops_per_weight(token)
        for schedule, m, n, k, dtype, extra in shapes:
            qw = quantize(w[:n, :k], fmt, 64, **opts)
            x = (mx.random.normal((m, k), key=mx.random.key(1)) / k**0.5).astype(dtype)
            for launch in metal_profile(x, qw, schedule, **{"gpu_cores": 2, **extra}):
                row = {"format": label, "schedule": schedule, "M": m, "N": n, "K": k}
                row.update(summarize(launch))
                if schedule == "gemv":
                    row["decode ops / weight"] = ops
                rows.append(row)
        n, k, dtype = DEQUANTIZE_SHAPE
        for launch in metal_dequantize_profile(quantize(w[:n, :k], fmt, 64, **opts), dtype):
            row = {"format": label, "schedule": "dequantize", "M": None, "N": n, "K": k}
            row.update(summarize(launch))
            rows.append(row)
    return {"rows": rows, "mlx_qdot_ops_per_weight": mlx_qdot_ops_per_weight()}


def markdown(result: Dict[str, Any]) -> str:
    cols = [
        "format",
        "kernel",
        "M",
        "x coalescing",
        "packed coalescing",
        "scales coalescing",
        "codebook coalescing",
        "out coalescing",
        "workspace coalescing",
        "x / weight traffic",
        "bank conflict factor",
        "table bank conflict factor",
        "barriers / threadgroup",
        "decode ops / weight",
    ]

    def fmt(v):
        return "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))

    lines = [
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for r in result["rows"]:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    lines += [
        "",
        "Ideal: coalescing 1.00, bank conflict factor 1.00. Targets (GEMV): coalescing >= 0.90, "
        "x traffic <= 0.25x the weight traffic, decode ops per weight <= MLX's 2-bit qdot "
        f"({result['mlx_qdot_ops_per_weight']:.2f} by the same count).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    print(markdown(model()))
