# Copyright © 2026 mlx-lowbit contributors.
"""Run the package's Metal kernels without a Mac.

``metal_matmul`` executes exactly the dispatch plan that
``LowBitMatmul::eval_gpu`` would encode (the same C++ planner, the same
argument structs, a GPU core count you choose) through the Metal emulator in
``tools/msl`` (a CPU runtime that runs each GPU thread as an OS thread), and
returns the result as an MLX array. It needs a source checkout (``metal/`` and
``tools/msl/``) and clang 19; see docs/KERNELS.md and docs/METAL_ON_LINUX.md.
"""

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import mlx.core as mx
import numpy as np

from . import _ext
from .quantized_weight import QuantizedWeight

KERNEL_SOURCE = Path("metal") / "lowbit.metal"


def source_root() -> Path:
    """The source checkout holding ``metal/lowbit.metal`` and ``tools/msl``.

    Looked up in ``$MLX_LOWBIT_SOURCE_DIR``, then above this file (in-place
    builds), then above the working directory.

    Raises:
        FileNotFoundError: no checkout was found.
    """
    candidates = []
    if os.environ.get("MLX_LOWBIT_SOURCE_DIR"):
        candidates.append(Path(os.environ["MLX_LOWBIT_SOURCE_DIR"]))
    candidates += list(Path(__file__).resolve().parents)
    candidates += [Path.cwd(), *Path.cwd().resolve().parents]
    for root in candidates:
        if (root / KERNEL_SOURCE).is_file() and (root / "tools" / "msl" / "runner.py").is_file():
            return root
    raise FileNotFoundError(
        "mlx_lowbit.testing needs the source checkout (metal/lowbit.metal and "
        "tools/msl/): run from it or set MLX_LOWBIT_SOURCE_DIR."
    )


@lru_cache(maxsize=None)
def _runner():
    tools = str(source_root() / "tools" / "msl")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import runner

    return runner


def _plan_fields(qw: QuantizedWeight) -> Dict[str, Any]:
    # The op's format fields, plus what the planner reads from the arrays.
    return {
        **qw._format_fields(),
        "has_biases": qw.biases is not None,
        "scales_f32": qw.scales.dtype == mx.float32,
    }


def metal_plan(
    x: mx.array,
    qw: QuantizedWeight,
    schedule: str = "auto",
    *,
    streamk_fixup: str = "deterministic",
    split_k: int = 0,
    gpu_cores: Optional[int] = None,
    with_work: bool = False,
    bm: int = 0,
    bn: int = 0,
    bk: int = 0,
) -> Dict[str, Any]:
    """The dispatch plan ``eval_gpu`` would encode for ``x @ qw.T``.

    The arguments are checked as ``mlx_lowbit.matmul`` on a GPU stream checks
    them (``ValueError`` naming the problem).

    Returns:
        dict: see ``mlx_lowbit._ext.metal_plan``.
    """
    # The op's own checks (shapes, dtypes, weight arrays), without evaluating.
    _ext.lowbit_matmul(
        x,
        qw.packed,
        qw.scales,
        qw.biases,
        qw.codebook,
        **qw._format_fields(),
        schedule=schedule,
        streamk_fixup=streamk_fixup,
        split_k=split_k,
        bm=bm,
        bn=bn,
        bk=bk,
        stream=mx.cpu,
    )
    n, k = qw.shape
    m = int(np.prod(x.shape[:-1], dtype=np.int64))
    return _ext.metal_plan(
        **_plan_fields(qw),
        dtype=x.dtype,
        M=max(m, 1),
        N=n,
        K=k,
        schedule=schedule,
        streamk_fixup=streamk_fixup,
        split_k=split_k,
        bm=bm,
        bn=bn,
        bk=bk,
        # None: the planner's default, PlannerConstants::kDefaultGpuCores, kept
        # in C++ alone.
        **({} if gpu_cores is None else {"gpu_cores": gpu_cores}),
        with_work=with_work,
    )


def _weight_buffers(qw: QuantizedWeight) -> Dict[str, Any]:
    # Absent biases / codebook: a small buffer the kernels never read (as
    # eval_gpu binds the scales there).
    dummy = np.zeros(16, dtype=np.uint8)
    return {
        "packed": qw.packed,
        "scales": qw.scales,
        "biases": qw.biases if qw.biases is not None else dummy,
        "codebook": qw.codebook if qw.codebook is not None else dummy,
    }


def _launches(plan: Dict[str, Any]) -> List[Any]:
    runner = _runner()
    return [
        runner.Launch(
            kernel=l["kernel"],
            grid=l["grid"],
            threadgroup=l["threadgroup"],
            buffers={**l["buffers"], l["params_slot"]: l["params"]},
        )
        for l in plan["launches"]
    ]


def _source(plan_dtype: mx.Dtype, qw: QuantizedWeight, sanitizer: Optional[str]):
    """lowbit.metal itself, or for sanitizer runs (whose builds are slow) a
    source instantiating only this format and dtype with the same macros."""
    root = source_root()
    if sanitizer is None:
        return root / KERNEL_SOURCE, None
    fmt, dtype = _ext.metal_kernel_tokens(qw.fmt, qw.vector_size, plan_dtype)
    text = (
        '#include "metal/instantiate.h"\n'
        f"instantiate_format_dtype({fmt}, {dtype})\n"
        f"instantiate_fixups({dtype})\n"
    )
    return text, f"lowbit_{fmt}_{dtype}.metal"


def _binding_offsets(offsets: Dict[str, int], copy_misaligned: bool) -> Dict[str, int]:
    # eval_gpu binds an array at its offset, and copies one whose offset the
    # kernels' vector loads cannot take (the copy starts at 0).
    return {
        key: off
        for key, off in offsets.items()
        if off and (_ext.binding_is_aligned(off) or not copy_misaligned)
    }


def _run(plan, buffers, outputs, source, name, sanitizer, order, seed, offsets=None, profile=None):
    runner = _runner()
    return runner.run_sequence(
        source,
        _launches(plan),
        buffers=buffers,
        outputs=outputs,
        include_dirs=[source_root()],
        sanitizer=sanitizer,
        order=order,
        seed=seed,
        name=name,
        buffer_offsets=offsets,
        profile=profile,
    )


def metal_matmul(
    x: mx.array,
    qw: QuantizedWeight,
    schedule: str = "auto",
    *,
    streamk_fixup: str = "deterministic",
    split_k: int = 0,
    gpu_cores: Optional[int] = None,
    sanitizer: Optional[str] = None,
    order: str = "shuffled",
    seed: int = 0,
    x_offset: int = 0,
    packed_offset: int = 0,
    copy_misaligned: bool = True,
    **tile_overrides: int,
) -> mx.array:
    """``x @ dequantize(qw).T`` computed by the Metal kernels in the emulator.

    Args:
        x (mx.array): Shape (..., K); float16, bfloat16 or float32; any strides.
        qw (QuantizedWeight): The weight.
        schedule (str): As for ``mlx_lowbit.matmul``.
        streamk_fixup (str): ``"deterministic"`` (the only fix-up).
        split_k (int): K splits for ``splitk`` (0: the planner's choice).
        gpu_cores (int, optional): GPU cores the persistent grid is sized for.
          Default: C++'s ``PlannerConstants::kDefaultGpuCores`` (8, the
          smallest M1); eval_gpu reads the device's and never assumes it.
        sanitizer (str, optional): ``"thread"`` or ``"address"`` to run under
          ThreadSanitizer or AddressSanitizer.
        order (str): ``"shuffled"`` (threadgroups in a random order from
          ``seed``) or ``"fixed"``.
        seed (int): Seed of the shuffled order.
        x_offset, packed_offset (int): Bytes into its buffer at which x's (or
          the packed array's) binding starts, as MLX binds a view at its
          offset. eval_gpu copies an array whose offset would misalign the
          kernels' vector loads (``_ext.binding_is_aligned``), and so does
          this, unless ``copy_misaligned=False``: then the emulator reports
          the misaligned access, as Metal would fault on it.
        **tile_overrides: ``bm``, ``bn``, ``bk``.

    Returns:
        mx.array: Shape (..., N) in x's dtype. Every output element and every
        workspace float starts as NaN, so one the plan fails to write shows.
    """
    unknown = set(tile_overrides) - {"bm", "bn", "bk"}
    if unknown:
        raise ValueError(
            f"[metal_matmul] Unknown tile overrides {sorted(unknown)}; use bm, bn, bk."
        )
    plan = metal_plan(
        x,
        qw,
        schedule,
        streamk_fixup=streamk_fixup,
        split_k=split_k,
        gpu_cores=gpu_cores,
        **tile_overrides,
    )
    n, k = qw.shape
    out_shape = tuple(x.shape[:-1]) + (n,)
    m = int(np.prod(x.shape[:-1], dtype=np.int64))
    if m == 0:
        return mx.zeros(out_shape, dtype=x.dtype)
    buffers = {
        "x": mx.contiguous(x.reshape(m, k)),
        **_weight_buffers(qw),
        "out": mx.full((m, n), float("nan"), dtype=x.dtype),
        "workspace": np.full(max(plan["workspace_floats"], 4), np.nan, dtype=np.float32),
    }
    source, name = _source(x.dtype, qw, sanitizer)
    offsets = _binding_offsets({"x": x_offset, "packed": packed_offset}, copy_misaligned)
    out = _run(plan, buffers, ["out"], source, name, sanitizer, order, seed, offsets)["out"]
    return out.reshape(out_shape)


def metal_dequantize(
    qw: QuantizedWeight,
    dtype: mx.Dtype = mx.float32,
    *,
    sanitizer: Optional[str] = None,
) -> mx.array:
    """The (N, K) weight as the Metal dequantize kernel writes it (emulator)."""
    n, k = qw.shape
    plan = _ext.metal_dequantize_plan(**_plan_fields(qw), dtype=dtype, N=n, K=k)
    buffers = {**_weight_buffers(qw), "out": mx.full((n, k), float("nan"), dtype=dtype)}
    source, name = _source(dtype, qw, sanitizer)
    return _run(plan, buffers, ["out"], source, name, sanitizer, "shuffled", 0)["out"]


def metal_profile(
    x: mx.array,
    qw: QuantizedWeight,
    schedule: str = "auto",
    *,
    split_k: int = 0,
    gpu_cores: Optional[int] = None,
    **tile_overrides: int,
) -> List[Dict[str, Any]]:
    """The cost model's measurements of each launch of ``x @ qw.T``'s plan.

    Runs the plan in the emulator's profile mode (tools/msl/runtime/profile.cpp:
    every load and store of the kernel, grouped into simdgroup accesses).

    Returns:
        list: One dict per launch, as ``runner.run_sequence(profile=...)``
        fills it (kernel, threadgroups, barriers, tg_accesses, tg_wavefronts,
        tg_ideal, threadgroup: {array: accesses, wavefronts, ideal}, device:
        {slot: requested, useful, lines, accesses}).
    """
    plan = metal_plan(x, qw, schedule, split_k=split_k, gpu_cores=gpu_cores, **tile_overrides)
    n, k = qw.shape
    m = int(np.prod(x.shape[:-1], dtype=np.int64))
    buffers = {
        "x": mx.contiguous(x.reshape(m, k)),
        **_weight_buffers(qw),
        "out": mx.zeros((m, n), dtype=x.dtype),
        "workspace": np.zeros(max(plan["workspace_floats"], 4), dtype=np.float32),
    }
    return _profile(plan, buffers, x.dtype, qw)


def metal_dequantize_profile(
    qw: QuantizedWeight, dtype: mx.Dtype = mx.float16
) -> List[Dict[str, Any]]:
    """The cost model's measurements of the dequantize kernel on ``qw``
    (one launch; as :func:`metal_profile`)."""
    n, k = qw.shape
    plan = _ext.metal_dequantize_plan(**_plan_fields(qw), dtype=dtype, N=n, K=k)
    buffers = {**_weight_buffers(qw), "out": mx.zeros((n, k), dtype=dtype)}
    return _profile(plan, buffers, dtype, qw)


def _profile(plan, buffers, dtype: mx.Dtype, qw: QuantizedWeight) -> List[Dict[str, Any]]:
    # The profile build of this format and dtype alone (as sanitizer runs).
    source, name = _source(dtype, qw, "profile")
    launches: List[Dict[str, Any]] = []
    _run(plan, buffers, ["out"], source, name, "profile", "fixed", 0, profile=launches)
    return launches


GATHER_SOURCE = Path("metal") / "gather.metal"


def metal_gather_matmul(
    x: mx.array,
    qe: Any,
    lhs_indices: Optional[mx.array] = None,
    rhs_indices: Optional[mx.array] = None,
    *,
    sorted_indices: bool = False,
    codebook: Optional[mx.array] = None,
    sanitizer: Optional[str] = None,
    order: str = "shuffled",
    seed: int = 0,
) -> mx.array:
    """``mlx_lowbit.gather_matmul(x, qe, lhs, rhs)`` computed by the Metal
    gather kernel (metal/gather.h) in the emulator, with the launch
    ``LowBitGatherMatmul::eval_gpu`` encodes. ``codebook`` replaces the
    experts' codebooks by one shared (2^index_bits,) codebook; ``sanitizer``,
    ``order`` and ``seed`` as for :func:`metal_matmul`.

    Returns:
        mx.array: ``broadcast(lhs, rhs).shape + (M, N)`` in x's dtype; the
        output starts as NaN, so a row the launch misses shows.
    """
    codebook = qe.codebook if codebook is None else codebook
    fields = qe._format_fields()
    # The op's own checks and output shape, without evaluating.
    shape = _ext.gather_matmul(
        x,
        qe.packed,
        qe.scales,
        qe.biases,
        codebook,
        lhs_indices,
        rhs_indices,
        **fields,
        stream=mx.cpu,
    ).shape
    e, n, k = qe.shape
    batch = tuple(x.shape[:-2])
    x_batches = int(np.prod(batch, dtype=np.int64))
    lhs = np.arange(x_batches).reshape(batch) if lhs_indices is None else np.asarray(lhs_indices)
    rhs = np.arange(e) if rhs_indices is None else np.asarray(rhs_indices)
    lhs, rhs = (a.astype(np.uint32).ravel() for a in np.broadcast_arrays(lhs, rhs))
    m = x.shape[-2]
    if lhs.size * m == 0:
        return mx.zeros(shape, dtype=x.dtype)
    plan = _ext.metal_gather_plan(
        **fields,
        has_biases=qe.biases is not None,
        scales_f32=qe.scales.dtype == mx.float32,
        shared_codebook=codebook is not None and codebook.ndim == 1,
        dtype=x.dtype,
        B=int(lhs.size),
        M=m,
        N=n,
        K=k,
        experts=e,
        x_batches=x_batches,
        sorted=sorted_indices,
    )
    dummy = np.zeros(16, dtype=np.uint8)
    buffers = {
        "x": mx.contiguous(x.reshape(x_batches, m, k)),
        "packed": qe.packed,
        "scales": qe.scales,
        "biases": qe.biases if qe.biases is not None else dummy,
        "codebook": codebook if codebook is not None else dummy,
        "out": mx.full((lhs.size * m, n), float("nan"), dtype=x.dtype),
        "lhs": lhs,
        "rhs": rhs,
    }
    source, name = source_root() / GATHER_SOURCE, None
    if sanitizer is not None:  # only this format and dtype: sanitizer builds are slow
        fmt, dtype = _ext.metal_kernel_tokens(qe.fmt, qe.vector_size, x.dtype)
        source = f'#include "metal/gather_instantiate.h"\ninstantiate_gather_mrs({fmt}, {dtype})\n'
        name = f"lowbit_gather_{fmt}_{dtype}.metal"
    out = _run(plan, buffers, ["out"], source, name, sanitizer, order, seed)["out"]
    return out.reshape(shape)
