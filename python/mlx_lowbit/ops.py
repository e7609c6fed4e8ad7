# Copyright © 2026 mlx-lowbit contributors.
"""quantize, dequantize and matmul on QuantizedWeight."""

from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx

from . import _ext
from ._checks import UINT64_MAX, check_bool, check_int, check_str
from .quantized_weight import QuantizedWeight

# Per-format options of quantize() and their defaults.
FORMAT_OPTIONS: Dict[str, Dict[str, Any]] = {
    "ternary": {},
    "binary": {"biases": False},
    "codebook": {"vector_size": 16, "index_bits": 12, "seed": 0, "max_iters": 30},
}

StreamOrDevice = Union[None, mx.Stream, mx.Device]


def _stream(stream: StreamOrDevice) -> StreamOrDevice:
    """The stream our primitives run on: as given, else the default one,
    except on a GPU other than Metal (MLX's CUDA build), for which this build
    has no kernels: there the CPU kernels run (MLX orders the work between the
    two streams), so a model on the GPU still runs its low-bit layers."""
    if stream is None and mx.default_device() == mx.gpu and not mx.metal.is_available():
        return mx.cpu
    return stream


def quantize(
    w: mx.array,
    fmt: str,
    group_size: int = 128,
    *,
    scale_dtype: mx.Dtype = mx.float16,
    lazy: bool = False,
    **fmt_options: Any,
) -> QuantizedWeight:
    """Round-to-nearest quantization of a (N, K) weight.

    Args:
        w (mx.array): The weight, any float dtype, shape (N, K).
        fmt (str): ``"ternary"``, ``"binary"`` or ``"codebook"``.
        group_size (int): Weights per scale along K; a multiple of 32 that
          divides K. Default: ``128``.
        scale_dtype (mx.Dtype): ``mx.float16`` (default) or ``mx.float32``.
        lazy (bool): Return unevaluated arrays, like ``mx.quantize``; the work
          (on the CPU stream) happens when they are first evaluated, and a
          NaN or Inf is then reported there as a RuntimeError. Default:
          ``False``, which quantizes now and raises ValueError for them now.
        **fmt_options: ``binary``: ``biases`` (bool, default False).
          ``codebook``: ``vector_size`` (8 or 16, default 16), ``index_bits``
          (4..vector_size, default 12), ``seed`` (default 0), ``max_iters``
          (default 30).

    Returns:
        QuantizedWeight: deterministic for given inputs and seed.

    Raises:
        ValueError: unknown format or option, bad group size, non-finite weight.
    """
    if not isinstance(w, mx.array):
        raise ValueError(f"[quantize] w must be an mlx.core.array, got {type(w).__name__}.")
    check_str(fmt, "fmt", "quantize")
    check_int(group_size, "group_size", "quantize")
    check_bool(lazy, "lazy", "quantize")
    if not isinstance(scale_dtype, mx.Dtype):
        raise ValueError(f"[quantize] scale_dtype must be an mlx.core.Dtype, got {scale_dtype!r}.")
    if fmt not in FORMAT_OPTIONS:
        raise ValueError(
            f"[quantize] Unknown format {fmt!r}; supported formats are {', '.join(_ext.formats())}."
        )
    unknown = set(fmt_options) - set(FORMAT_OPTIONS[fmt])
    if unknown:
        accepted = ", ".join(FORMAT_OPTIONS[fmt]) or "none"
        raise ValueError(
            f"[quantize] Unknown option(s) {', '.join(sorted(unknown))} for format "
            f"{fmt!r}; accepted: {accepted}."
        )
    opts = {**FORMAT_OPTIONS[fmt], **fmt_options}
    for name, value in opts.items():
        if name == "biases":
            check_bool(value, name, "quantize")
        else:
            check_int(value, name, "quantize", *((0, UINT64_MAX) if name == "seed" else ()))
    packed, scales, biases, codebook = _ext.quantize(
        w,
        fmt,
        group_size,
        scale_dtype=scale_dtype,
        lazy=lazy,
        **opts,
    )
    return QuantizedWeight(
        fmt=fmt,
        group_size=group_size,
        packed=packed,
        scales=scales,
        biases=biases,
        codebook=codebook,
        vector_size=opts.get("vector_size", 0),
        index_bits=opts.get("index_bits", 0),
        check=not lazy,
    )


def dequantize(
    qw: QuantizedWeight, dtype: mx.Dtype = mx.float32, *, stream: StreamOrDevice = None
) -> mx.array:
    """The (N, K) weight: exactly the values the kernels multiply with."""
    if not isinstance(qw, QuantizedWeight):
        raise ValueError(f"[dequantize] qw must be a QuantizedWeight, got {type(qw).__name__}.")
    qw.check_pending()
    return _ext.dequantize(
        qw.packed,
        qw.scales,
        qw.biases,
        qw.codebook,
        **qw._format_fields(),
        dtype=dtype,
        stream=_stream(stream),
    )


def matmul(
    x: mx.array,
    qw: QuantizedWeight,
    *,
    schedule: str = "auto",
    streamk_fixup: str = "deterministic",
    split_k: int = 0,
    tile: Optional[Tuple[int, int, int]] = None,
    activation_bits: int = 0,
    transpose: bool = True,
    stream: StreamOrDevice = None,
) -> mx.array:
    """``x @ dequantize(qw).T`` with fp32 accumulation, in x's dtype.

    Args:
        x (mx.array): Shape (..., K); float16, bfloat16 or float32; any strides.
        qw (QuantizedWeight): The weight.
        schedule (str): ``"auto"``, ``"gemv"``, ``"dataparallel"``, ``"splitk"``,
          ``"streamk"`` or ``"hybrid"`` (see docs/KERNELS.md). All give the same
          result within fp32 rounding.
        streamk_fixup (str): ``"deterministic"``, the only fix-up (the atomic
          one was removed; docs/KERNELS.md says why).
        split_k (int): K splits for ``splitk``; 0 lets the planner choose.
        tile (tuple, optional): ``(bm, bn, bk)`` GPU tile override for
          ablations; ``None`` lets the planner choose.
        activation_bits (int): ``0`` (default) multiplies the float
          activations; ``8`` first rounds each row of x to int8 by its absmax
          (``round(x * 127 / max|x|)``), as BitNet b1.58 was trained.
        transpose (bool): ``x @ w.T`` (default) or, with x of shape (..., N),
          ``x @ w``.
        stream: Stream or device. Default: the default stream (the CPU on a
          GPU without Metal, such as MLX's CUDA build).
    """
    if not isinstance(x, mx.array):
        raise ValueError(f"[matmul] x must be an mlx.core.array, got {type(x).__name__}.")
    if not isinstance(qw, QuantizedWeight):
        raise ValueError(f"[matmul] qw must be a QuantizedWeight, got {type(qw).__name__}.")
    qw.check_pending()
    check_str(schedule, "schedule", "matmul")
    check_str(streamk_fixup, "streamk_fixup", "matmul")
    check_int(split_k, "split_k", "matmul")
    check_int(activation_bits, "activation_bits", "matmul")
    check_bool(transpose, "transpose", "matmul")
    if tile is not None and (not isinstance(tile, (tuple, list)) or len(tile) != 3):
        raise ValueError(f"[matmul] tile must be a (bm, bn, bk) tuple or None, got {tile!r}.")
    bm, bn, bk = (check_int(t, "tile", "matmul") for t in tile or (0, 0, 0))
    return _ext.lowbit_matmul(
        x,
        qw.packed,
        qw.scales,
        qw.biases,
        qw.codebook,
        **qw._format_fields(),
        transpose=transpose,
        schedule=schedule,
        streamk_fixup=streamk_fixup,
        split_k=split_k,
        bm=bm,
        bn=bn,
        bk=bk,
        activation_bits=activation_bits,
        stream=_stream(stream),
    )


def set_num_threads(n: int) -> None:
    """Set the worker threads of the CPU kernels, at most
    ``8 * os.cpu_count()`` (default: ``MLX_LOWBIT_NUM_THREADS`` or all
    cores).

    Raises:
        ValueError: ``n`` is not an integer in that range.
        RuntimeError: the threads could not be created; the old ones are
          kept, and :func:`num_threads` still says how many.
    """
    check_int(n, "n", "set_num_threads", 1, _ext.max_threads())
    _ext.set_num_threads(n)
