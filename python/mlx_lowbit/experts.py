# Copyright © 2026 mlx-lowbit contributors.
"""Stacked low-bit expert weights (mixture-of-experts layers) and their
gather-matmul, the analogue of ``mx.gather_qmm``."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import mlx.core as mx

from . import _ext
from .ops import StreamOrDevice, _stream, dequantize, quantize
from .quantized_weight import QuantizedWeight


@dataclass(frozen=True, eq=False)
class QuantizedExperts:
    """E weights of shape (N, K) in one low-bit format, each expert's arrays
    (docs/FORMATS.md) stacked on a leading axis: ``packed`` (E, N, words),
    ``scales`` / ``biases`` (E, N, K / group_size) and, for the codebook
    format, ``codebook`` (E, 2^index_bits): every expert has its own.

    Construction checks the arrays and raises ``ValueError`` naming the
    problem.
    """

    fmt: str
    group_size: int
    packed: mx.array
    scales: mx.array
    biases: Optional[mx.array] = None
    codebook: Optional[mx.array] = None
    vector_size: int = 0
    index_bits: int = 0

    def __post_init__(self):
        arrays = {"packed": self.packed, "scales": self.scales, "biases": self.biases}
        arrays = {name: a for name, a in arrays.items() if a is not None}
        for name, a in arrays.items():
            if a.ndim != 3 or a.shape[0] != self.packed.shape[0]:
                raise ValueError(
                    f"[QuantizedExperts] {name} must be 3-D with the experts first, like "
                    f"packed {tuple(self.packed.shape)}; got {tuple(a.shape)}."
                )
        if self.codebook is not None and (
            self.codebook.ndim != 2 or self.codebook.shape[0] != self.packed.shape[0]
        ):
            raise ValueError(
                f"[QuantizedExperts] codebook must have shape ({self.packed.shape[0]}, "
                f"2^index_bits), got {tuple(self.codebook.shape)}."
            )
        object.__setattr__(self, "_k", self.expert(0).shape[1])  # checks one expert

    def _format_fields(self) -> Dict[str, Any]:
        return {
            "fmt": self.fmt,
            "group_size": self.group_size,
            "vector_size": self.vector_size,
            "index_bits": self.index_bits,
        }

    @property
    def num_experts(self) -> int:
        return self.packed.shape[0]

    @property
    def shape(self) -> Tuple[int, int, int]:
        """(E, N, K)."""
        return (self.packed.shape[0], self.packed.shape[1], self._k)

    def arrays(self) -> Dict[str, mx.array]:
        fields = ("packed", "scales", "biases", "codebook")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}

    def expert(self, e: int) -> QuantizedWeight:
        """Expert ``e`` as a QuantizedWeight (views, no copy of the codes)."""
        return QuantizedWeight(
            **self._format_fields(), **{name: a[e] for name, a in self.arrays().items()}
        )

    @property
    def nbytes(self) -> int:
        """Every stored byte: codes, scales, biases and codebooks."""
        return sum(a.nbytes for a in self.arrays().values())

    @property
    def bits_per_weight(self) -> float:
        e, n, k = self.shape
        return 8.0 * self.nbytes / (e * n * k)

    def check_values(self) -> None:
        """:meth:`QuantizedWeight.check_values` for every expert (the one
        that fails is named)."""
        for e in range(self.num_experts):
            try:
                self.expert(e).check_values()
            except ValueError as err:
                raise ValueError(f"[QuantizedExperts] expert {e}: {err}") from err

    @classmethod
    def stack(cls, experts: List[QuantizedWeight]) -> "QuantizedExperts":
        """Stack experts of one format, group size and shape."""
        first = experts[0]
        for qw in experts[1:]:
            if qw._format_fields() != first._format_fields() or qw.shape != first.shape:
                raise ValueError(
                    "[QuantizedExperts.stack] Every expert needs the same format, options "
                    f"and shape; got {first._format_fields()} {first.shape} and "
                    f"{qw._format_fields()} {qw.shape}."
                )
        arrays = {name: mx.stack([qw.arrays()[name] for qw in experts]) for name in first.arrays()}
        return cls(**first._format_fields(), **arrays)


def quantize_experts(
    w: mx.array, fmt: str, group_size: int = 128, **options: Any
) -> QuantizedExperts:
    """Quantize each expert of a (E, N, K) weight with :func:`mlx_lowbit.quantize`
    (same options; a codebook is clustered per expert)."""
    if w.ndim != 3:
        raise ValueError(
            f"[quantize_experts] Expected a (experts, N, K) weight, got shape {tuple(w.shape)}."
        )
    return QuantizedExperts.stack(
        [quantize(w[e], fmt, group_size, **options) for e in range(w.shape[0])]
    )


def dequantize_experts(qe: QuantizedExperts, dtype: mx.Dtype = mx.float32) -> mx.array:
    """The (E, N, K) weights: exactly the values the kernels multiply with."""
    return mx.stack([dequantize(qe.expert(e), dtype) for e in range(qe.num_experts)])


def gather_matmul(
    x: mx.array,
    qe: QuantizedExperts,
    lhs_indices: Optional[mx.array] = None,
    rhs_indices: Optional[mx.array] = None,
    *,
    transpose: bool = True,
    sorted_indices: bool = False,
    stream: StreamOrDevice = None,
) -> mx.array:
    """``x[lhs] @ dequantize(qe[rhs]).T`` with fp32 accumulation, in x's
    dtype: ``mx.gather_qmm`` for low-bit experts.

    Args:
        x (mx.array): (..., M, K), or (..., M, N) with ``transpose=False``;
          float16, bfloat16 or float32; any strides.
        qe (QuantizedExperts): The E experts.
        lhs_indices (mx.array, optional): Integer indices into x's flattened
          batch dimensions. Default: every batch entry, in order.
        rhs_indices (mx.array, optional): Integer expert indices. Default:
          every expert, in order. The two broadcast to the output's batch
          shape.
        transpose (bool): ``x @ w.T`` (default) or ``x @ w``.
        sorted_indices (bool): ``rhs_indices`` is non-decreasing, as after
          mlx-lm's sort of many tokens; lets the CPU skip its own grouping.
        stream: Stream or device. On Metal, the gather kernel
          (metal/gather.h) runs ``transpose=True``; ``transpose=False`` comes
          from the dequantize kernel and ``mx.gather_mm``. On a GPU without
          Metal, the CPU runs it.

    Returns:
        mx.array: ``broadcast(lhs, rhs).shape + (M, N)`` (or ``(M, K)``).
    """
    return _ext.gather_matmul(
        x,
        qe.packed,
        qe.scales,
        qe.biases,
        qe.codebook,
        lhs_indices,
        rhs_indices,
        **qe._format_fields(),
        transpose=transpose,
        sorted_indices=sorted_indices,
        stream=_stream(stream),
    )
