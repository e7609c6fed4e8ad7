# Copyright © 2026 mlx-lowbit contributors.
"""Tensor parallelism for the low-bit layers, as mlx-lm shards its own:
``shard_linear`` / ``shard_inplace`` (mlx.nn.layers.distributed) learn
:class:`~mlx_lowbit.nn.LowBitLinear` and
:class:`~mlx_lowbit.nn.LowBitSwitchLinear` (installed by
:mod:`mlx_lowbit.lm.hook`), so a model's ``shard(group)`` and
``mlx_lm.utils.sharded_load`` run converted models under ``mlx.launch``.

"all-to-sharded" splits the output features N (each rank computes its rows;
x is whole), "sharded-to-all" the reduction K on group boundaries (each rank
holds its slice of x, and the partial products are summed with
``all_sum``). The arrays are sliced, never re-quantized: every rank's rows
are bit for bit those of the unsharded weight.
"""

import functools
import sys
from typing import Any, Callable, List, Optional, Union

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.nn.layers.distributed import sum_gradients

from . import _ext
from .experts import QuantizedExperts
from .nn import LowBitLinear, LowBitSwitchLinear
from .ops import matmul
from .quantized_weight import QuantizedWeight

SHARDINGS = ("all-to-sharded", "sharded-to-all")
_ORIGINAL = "_mlx_lowbit_original"

Segments = Union[int, List[float]]


def _parts(size: int, segments: Segments, ranks: int, rank: int, unit: int, what: str) -> List:
    """[start, end) of this rank's share of each segment of [0, size), each a
    multiple of ``unit``; segments as in mlx.nn.layers.distributed (a count,
    or fractions at which fused parts begin)."""
    if isinstance(segments, int):
        bounds = [size * i // segments for i in range(segments + 1)]
    else:
        bounds = [0] + [int(s * size) for s in segments] + [size]
    shares = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if (b - a) % (ranks * unit):
            raise ValueError(
                f"[mlx_lowbit.distributed] {what} {b - a} cannot be split across {ranks} ranks "
                f"in multiples of {unit}."
            )
        step = (b - a) // ranks
        shares.append((a + rank * step, a + (rank + 1) * step))
    return shares


def _take(a: mx.array, shares: List, axis: int) -> mx.array:
    index = [slice(None)] * a.ndim
    pieces = []
    for lo, hi in shares:
        index[axis] = slice(lo, hi)
        pieces.append(a[tuple(index)])
    return mx.contiguous(mx.concatenate(pieces, axis=axis))


def _codebook_indices(packed: np.ndarray, k: int, v: int, c: int) -> np.ndarray:
    """(rows, K / v) indices of a codebook weight's rows (docs/FORMATS.md:
    index j in bits j*c .. j*c + c - 1 of the row, LSB first)."""
    bits = np.unpackbits(packed.view(np.uint8), axis=-1, bitorder="little")
    runs = k // v
    bits = bits[:, : runs * c].reshape(packed.shape[0], runs, c).astype(np.uint32)
    return (bits << np.arange(c, dtype=np.uint32)).sum(-1).astype(np.uint32)


def _slice_k(fields: dict, arrays: dict, k: int, shares: List) -> dict:
    """The arrays of a weight restricted to columns ``shares`` (on group
    boundaries), 2-D (N, ...) or 3-D (E, N, ...) alike."""
    gs = fields["group_size"]
    out = dict(arrays)
    for name in ("scales", "biases"):
        if name in arrays:
            out[name] = _take(arrays[name], [(a // gs, b // gs) for a, b in shares], -1)
    packed = arrays["packed"]
    if fields["fmt"] in ("ternary", "binary"):
        per_word = 16 if fields["fmt"] == "ternary" else 32
        out["packed"] = _take(packed, [(a // per_word, b // per_word) for a, b in shares], -1)
        return out
    # Codebook indices are c bits each and need not start on a word: unpack
    # this rank's indices and pack them again.
    v, c = fields["vector_size"], fields["index_bits"]
    flat = np.asarray(packed).reshape(-1, packed.shape[-1])
    idx = _codebook_indices(flat, k, v, c)
    idx = np.concatenate([idx[:, a // v : b // v] for a, b in shares], axis=-1)
    repacked = _ext.pack_codebook(mx.array(idx), v, c)
    out["packed"] = repacked.reshape(*packed.shape[:-1], repacked.shape[-1])
    return out


def _sharded_arrays(
    weight: Union[QuantizedWeight, QuantizedExperts],
    sharding: str,
    segments: Segments,
    group: mx.distributed.Group,
) -> dict:
    n, k = weight.shape[-2:]
    arrays = {name: a for name, a in weight.arrays().items() if name != "codebook"}
    ranks, rank = group.size(), group.rank()
    if sharding == "all-to-sharded":
        shares = _parts(n, segments, ranks, rank, 1, "N =")
        out = {name: _take(a, shares, a.ndim - 2) for name, a in arrays.items()}
    else:
        shares = _parts(k, segments, ranks, rank, weight.group_size, "K =")
        out = _slice_k(weight._format_fields(), arrays, k, shares)
    if weight.codebook is not None:
        out["codebook"] = weight.codebook
    return {**weight._format_fields(), **out}


class ShardedLowBitLinear(LowBitLinear):
    """A :class:`~mlx_lowbit.nn.LowBitLinear` holding one rank's share.

    "all-to-sharded": rows N / ranks of the weight and bias; x is whole and
    its gradient is summed over the group. "sharded-to-all": columns
    K / ranks; x is this rank's slice, the products are summed over the
    group, then the (whole) bias is added once.
    """

    @classmethod
    def from_lowbit_linear(
        cls,
        layer: LowBitLinear,
        sharding: str,
        *,
        segments: Segments = 1,
        group: Optional[mx.distributed.Group] = None,
    ) -> "ShardedLowBitLinear":
        if sharding not in SHARDINGS:
            raise ValueError(
                f"[mlx_lowbit.distributed] Unknown sharding {sharding!r}; use one of {SHARDINGS}."
            )
        if sharding == "sharded-to-all" and layer.rotation_block:
            raise ValueError(
                "[mlx_lowbit.distributed] A rotated layer cannot be split along K (its rotation "
                "mixes the whole input); shard it 'all-to-sharded' or convert without --rotate."
            )
        if sharding == "sharded-to-all" and layer.activation_bits:
            raise ValueError(
                "[mlx_lowbit.distributed] activation_bits=8 scales each row of x by its "
                "absmax over all of K, which a K-split rank does not see."
            )
        group = group or mx.distributed.init()
        qw = QuantizedWeight(**_sharded_arrays(layer.qweight, sharding, segments, group))
        bias = layer.get("bias")
        if bias is not None and sharding == "all-to-sharded":
            shares = _parts(bias.shape[0], segments, group.size(), group.rank(), 1, "N =")
            bias = _take(bias, shares, 0)
        sharded = cls.from_qweight(qw, bias, layer.activation_bits, layer.rotation)
        sharded.sharding = sharding
        sharded.group = group
        return sharded

    def __call__(self, x: mx.array) -> mx.array:
        if self.sharding == "all-to-sharded":
            return super().__call__(sum_gradients(self.group)(x))
        y = mx.distributed.all_sum(matmul(x, self.qweight), group=self.group)
        if "bias" in self:
            y = y + self.bias.astype(y.dtype)
        return y

    def _extra_repr(self) -> str:
        return f"{super()._extra_repr()}, sharding={self.sharding}, ranks={self.group.size()}"


def shard_switch_inplace(
    layer: LowBitSwitchLinear,
    sharding: str,
    *,
    segments: Segments = 1,
    group: Optional[mx.distributed.Group] = None,
) -> None:
    """``shard_inplace`` for a :class:`~mlx_lowbit.nn.LowBitSwitchLinear`:
    its arrays become this rank's share, as mlx-lm's SwitchLinear's do (the
    MoE block sums the results over its ``sharding_group``). The bias is
    split with N and, as mlx's own rule has it, left whole with K."""
    if sharding not in SHARDINGS:
        raise ValueError(
            f"[mlx_lowbit.distributed] Unknown sharding {sharding!r}; use one of {SHARDINGS}."
        )
    group = group or mx.distributed.init()
    qe = QuantizedExperts(**_sharded_arrays(layer.qweight, sharding, segments, group))
    bias = layer.get("bias")
    layer._set_qweight(qe)
    if bias is not None and sharding == "all-to-sharded":
        shares = _parts(bias.shape[-1], segments, group.size(), group.rank(), 1, "N =")
        layer.bias = _take(bias, shares, 1)


def _shard_linear(original: Callable) -> Callable:
    @functools.wraps(original)
    def shard_linear(module: nn.Module, sharding: str, *, segments=1, group=None):
        if isinstance(module, LowBitLinear):
            return ShardedLowBitLinear.from_lowbit_linear(
                module, sharding, segments=segments, group=group
            )
        return original(module, sharding, segments=segments, group=group)

    return shard_linear


def _shard_inplace(original: Callable) -> Callable:
    @functools.wraps(original)
    def shard_inplace(module: nn.Module, sharding: Any, *, segments=1, group=None):
        if isinstance(module, LowBitSwitchLinear) and isinstance(sharding, str):
            return shard_switch_inplace(module, sharding, segments=segments, group=group)
        if isinstance(module, LowBitLinear):
            raise ValueError(
                "[mlx_lowbit.distributed] shard_inplace cannot add the all_sum a LowBitLinear "
                "split along K needs; use shard_linear."
            )
        return original(module, sharding, segments=segments, group=group)

    return shard_inplace


def install() -> None:
    """Wrap ``shard_linear`` and ``shard_inplace`` in mlx.nn.layers.distributed
    and in the mlx-lm model modules already imported (which bound the names
    at import); once."""
    from mlx.nn.layers import distributed

    for name, wrap in (("shard_linear", _shard_linear), ("shard_inplace", _shard_inplace)):
        current = getattr(distributed, name)
        if hasattr(current, _ORIGINAL):
            original, wrapped = getattr(current, _ORIGINAL), current
        else:
            original, wrapped = current, wrap(current)
            setattr(wrapped, _ORIGINAL, original)
            setattr(distributed, name, wrapped)
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("mlx_lm.") and getattr(module, name, None) is original:
                setattr(module, name, wrapped)
