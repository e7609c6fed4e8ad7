# Copyright © 2026 mlx-lowbit contributors.
"""QuantizedWeight: the arrays of one low-bit weight, its metadata, and a
checked safetensors file format."""

import hashlib
import json
import math
import os
import tempfile
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx
import numpy as np

from . import _ext
from ._checks import check_int, check_str

FILE_FORMAT_VERSION = "1"
# The kernels decompose each group's sum (binary: scale * (2 * sum(b x) -
# sum(x)); ternary and codebook alike), so an intermediate is a few times
# scale * |x|: scales near float32's limit (3.4e38) overflow there while
# x @ dequantize(w).T is finite. Real weights' scales are below ~1e4; this
# bound leaves float32 a factor of 2**28 of headroom.
MAX_SCALE_LOG2 = 100
MAX_SCALE = 2.0**MAX_SCALE_LOG2
_ARRAY_FIELDS = ("packed", "scales", "biases", "codebook")
_INT_FIELDS = ("group_size", "vector_size", "index_bits")


@dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """A (N, K) weight in one of the low-bit formats (docs/FORMATS.md).

    Construction checks that the arrays agree with the metadata and raises
    ``ValueError`` naming the problem otherwise. When the arrays are already
    evaluated (built by hand, loaded), it also checks their values
    (:meth:`check_values`: ternary code 3, NaN or Inf scales and biases);
    ``check=False`` skips that scan, for callers that rebuild a
    checked weight often (the layers do, at every call). Unevaluated arrays
    are not evaluated here: their scan runs at the first :func:`matmul` or
    :func:`dequantize` of the weight (:meth:`check_pending`), so a
    hand-built lazy weight cannot reach a kernel unchecked either.
    ``quantize(..., lazy=True)`` builds its weight with ``check=False``
    (its quantizer writes no such values and raises on a NaN in w).
    """

    fmt: str
    group_size: int
    packed: mx.array
    scales: mx.array
    biases: Optional[mx.array] = None
    codebook: Optional[mx.array] = None
    vector_size: int = 0
    index_bits: int = 0
    check: InitVar[bool] = True

    def __post_init__(self, check: bool):
        where = "QuantizedWeight"
        check_str(self.fmt, "fmt", where)
        for name in _INT_FIELDS:
            check_int(getattr(self, name), name, where)
        for name in _ARRAY_FIELDS:
            a = getattr(self, name)
            if not (a is None and name in ("biases", "codebook")) and not isinstance(a, mx.array):
                raise ValueError(
                    f"[{where}] {name} must be an mlx.core.array, got {type(a).__name__}."
                )
        k = _ext.validate_weight(
            self.packed,
            self.scales,
            self.biases,
            self.codebook,
            **self._format_fields(),
        )
        object.__setattr__(self, "_k", k)
        pending = check and not all(_ext.is_evaluated(a) for a in self.arrays().values())
        object.__setattr__(self, "_pending_check", pending)
        if check and not pending:
            self.check_values()

    def check_pending(self) -> None:
        """Run the value scan that construction deferred for unevaluated
        arrays (once; evaluates them). The ops call it before using them."""
        if self.__dict__.get("_pending_check"):
            self.check_values()
            object.__setattr__(self, "_pending_check", False)

    def _format_fields(self) -> Dict[str, Any]:
        """The format keywords every _ext op takes next to the arrays."""
        return {
            "fmt": self.fmt,
            "group_size": self.group_size,
            "vector_size": self.vector_size,
            "index_bits": self.index_bits,
        }

    @property
    def shape(self) -> Tuple[int, int]:
        return (self.packed.shape[0], self._k)

    def arrays(self) -> Dict[str, mx.array]:
        """The stored arrays by name (absent ones left out)."""
        return {
            name: getattr(self, name) for name in _ARRAY_FIELDS if getattr(self, name) is not None
        }

    @property
    def nbytes(self) -> int:
        """Every stored byte: packed codes, scales, biases and codebook."""
        return sum(a.nbytes for a in self.arrays().values())

    @property
    def bits_per_weight(self) -> float:
        n, k = self.shape
        return 8.0 * self.nbytes / (n * k)

    def save(self, path: Union[str, Path]) -> None:
        """Write a ``.safetensors`` file atomically: a failed save leaves no
        partial file behind."""
        path = Path(path)
        metadata = {
            "mlx_lowbit.version": FILE_FORMAT_VERSION,
            "format": self.fmt,
            "shape": f"{self.shape[0]},{self.shape[1]}",
            **{name: str(getattr(self, name)) for name in _INT_FIELDS},
        }
        arrays = self.arrays()
        for name, a in arrays.items():
            metadata[f"sha256.{name}"] = _digest(a)
        fd, tmp = tempfile.mkstemp(
            prefix=path.name + ".", suffix=".tmp.safetensors", dir=path.parent
        )
        os.close(fd)
        try:
            try:
                mx.save_safetensors(tmp, arrays, metadata=metadata)
            except RuntimeError as e:
                # MLX's "[write] ..." (a full or read-only disk) names no file.
                raise OSError(f"[QuantizedWeight.save] {path}: writing failed ({e}).") from e
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: Union[str, Path], *, check_values: bool = True) -> "QuantizedWeight":
        """Read a file written by :meth:`save`, rejecting one whose arrays
        disagree with its metadata or were changed after saving.

        Args:
            path: The ``.safetensors`` file.
            check_values (bool): Also scan the values (:meth:`check_values`).
              Default: ``True``.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is damaged, not ours, or inconsistent; the
              message names the file and the field.
        """
        path = Path(path)
        where = f"[QuantizedWeight.load] {path}"
        header = read_safetensors_header(path)
        metadata = header.pop("__metadata__", None) or {}
        if metadata.get("mlx_lowbit.version") != FILE_FORMAT_VERSION:
            raise ValueError(
                f"{where}: not an mlx-lowbit weight file (metadata "
                f"'mlx_lowbit.version' is {metadata.get('mlx_lowbit.version')!r}, "
                f"expected {FILE_FORMAT_VERSION!r})."
            )
        unknown = set(header) - set(_ARRAY_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unexpected tensors {sorted(unknown)}.")
        # Every tensor is recorded by its checksum, so the metadata says which
        # must be there: a binary file without its biases tensor is damaged,
        # not a weight without biases.
        recorded = {k[len("sha256.") :] for k in metadata if k.startswith("sha256.")}
        missing = sorted(recorded - set(header))
        if missing:
            raise ValueError(
                f"{where}: the metadata records tensor(s) {missing} that the file lacks."
            )
        try:
            arrays = mx.load(str(path), format="safetensors")
        except Exception as e:  # mlx raises RuntimeError/ValueError variously
            raise ValueError(f"{where}: not a readable safetensors file ({e}).") from e
        for name, a in arrays.items():
            if metadata.get(f"sha256.{name}") != _digest(a):
                raise ValueError(
                    f"{where}: tensor '{name}' does not match its recorded checksum; "
                    "the file is corrupt or was modified."
                )
        if "format" not in metadata:
            raise ValueError(f"{where}: metadata lacks 'format'.")
        ints = {}
        for name in _INT_FIELDS:
            text = metadata.get(name)
            if text is None:
                raise ValueError(f"{where}: metadata lacks '{name}'.")
            if not text.isdigit() or len(text) > 10:
                raise ValueError(f"{where}: metadata '{name}' is {text!r}, not a count.")
            ints[name] = int(text)
        try:
            qw = cls(fmt=metadata["format"], **ints, **arrays, check=False)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        if metadata.get("shape") != f"{qw.shape[0]},{qw.shape[1]}":
            raise ValueError(
                f"{where}: metadata says shape {metadata.get('shape')} but the "
                f"arrays hold {qw.shape[0]},{qw.shape[1]}."
            )
        if check_values:
            try:
                qw.check_values()
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from e
        return qw

    def check_values(self) -> None:
        """Reject values the quantizers never write and the kernels would
        turn into silent garbage: ternary code 3 (``matmul`` and
        ``dequantize`` would disagree on it), NaN or Inf in the scales or
        biases (every output of their rows would be NaN), and scales or
        biases above 2**100 in magnitude (the kernels' intermediates would
        overflow where the product is finite). Evaluates the arrays."""
        if self.fmt == "ternary":
            words = np.asarray(self.packed)
            # Code 3 has both bits of its pair set.
            bad = words & (words >> 1) & np.uint32(0x55555555)
            if np.any(bad):
                row = int(np.argwhere(bad)[0][0])
                raise ValueError(
                    f"[QuantizedWeight] The ternary codes contain the invalid code 3 "
                    f"(first in row {row})."
                )
        for name in ("scales", "biases"):
            a = getattr(self, name)
            if a is None:
                continue
            values = np.asarray(a.astype(mx.float32))
            ok = np.abs(values) <= MAX_SCALE  # False for NaN too
            if not ok.all():
                row, group = (int(i) for i in np.argwhere(~ok)[0])
                raise ValueError(
                    f"[QuantizedWeight] {name} contain {values[row, group]} (first at row "
                    f"{row}, group {group}); a weight's {name} must be finite and at most "
                    f"2**{MAX_SCALE_LOG2} in magnitude (docs/FORMATS.md)."
                )


# Larger headers than this are damage, not tensors (a header lists names,
# dtypes, shapes and offsets: some hundred bytes per tensor).
_MAX_HEADER_BYTES = 100 * 2**20
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2,
    "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip


def read_safetensors_header(path: Union[str, Path]) -> Dict[str, Any]:
    """The JSON header of a safetensors file, checked before any reader
    allocates from it: its length, every tensor's dtype, shape and byte range
    (inside the file, of the size the shape implies, not overlapping).

    Raises:
        OSError: the file cannot be opened or read.
        ValueError: the header is damaged or the file truncated, naming it.
    """
    path = Path(path)
    where = f"[safetensors] {path}"
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{where}: {size} bytes, too short for a safetensors file.")
        n = int.from_bytes(head, "little")
        if n < 2 or n > min(_MAX_HEADER_BYTES, size - 8):
            raise ValueError(
                f"{where}: the header length field says {n} bytes but the file has "
                f"{size}; the file is truncated or not safetensors."
            )
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{where}: the header is not valid JSON ({e}).") from e
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the header is not a JSON object.")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{where}: '__metadata__' must map names to strings.")
    data = size - 8 - n
    ranges = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: tensor {name!r}: malformed entry {t!r}.")
        dtype, shape, offsets = t["dtype"], t["shape"], t["data_offsets"]
        if dtype not in _DTYPE_BYTES:
            raise ValueError(f"{where}: tensor {name!r}: unknown dtype {dtype!r}.")
        ints = shape + offsets if isinstance(shape, list) and isinstance(offsets, list) else None
        if ints is None or len(offsets) != 2 or len(shape) > 8:
            raise ValueError(f"{where}: tensor {name!r}: malformed shape or offsets.")
        if not all(type(v) is int and v >= 0 for v in ints):
            raise ValueError(f"{where}: tensor {name!r}: shape and offsets must be >= 0.")
        begin, end = offsets
        nbytes = _DTYPE_BYTES[dtype] * math.prod(shape)
        if not begin <= end <= data or end - begin != nbytes:
            raise ValueError(
                f"{where}: tensor {name!r} ({dtype} {shape}, {nbytes} bytes) has offsets "
                f"[{begin}, {end}) but the file holds {data} data bytes; the file is "
                "truncated or damaged."
            )
        ranges.append((begin, end, name))
    ranges.sort()
    for (_, end, a), (begin, _, b) in zip(ranges, ranges[1:]):
        if begin < end:
            raise ValueError(f"{where}: tensors {a!r} and {b!r} overlap.")
    return header


def _digest(a: mx.array) -> str:
    return hashlib.sha256(np.asarray(a).tobytes()).hexdigest()
