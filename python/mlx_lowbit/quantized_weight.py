# Copyright © 2026 mlx-lowbit contributors.
"""QuantizedWeight: the arrays of one low-bit weight, its metadata, and a
checked safetensors file format."""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import mlx.core as mx
import numpy as np

from . import _ext

FILE_FORMAT_VERSION = "1"
_ARRAY_FIELDS = ("packed", "scales", "biases", "codebook")
_INT_FIELDS = ("group_size", "vector_size", "index_bits")


@dataclass(frozen=True, eq=False)
class QuantizedWeight:
    """A (N, K) weight in one of the low-bit formats (docs/FORMATS.md).

    Construction checks that the arrays agree with the metadata and raises
    ``ValueError`` naming the problem otherwise.
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
        k = _ext.validate_weight(
            self.packed,
            self.scales,
            self.biases,
            self.codebook,
            **self._format_fields(),
        )
        object.__setattr__(self, "_k", k)

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
            mx.save_safetensors(tmp, arrays, metadata=metadata)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "QuantizedWeight":
        """Read a file written by :meth:`save`, rejecting one whose arrays
        disagree with its metadata or were changed after saving."""
        path = Path(path)
        where = f"[QuantizedWeight.load] {path}"
        try:
            arrays, metadata = mx.load(str(path), return_metadata=True)
        except Exception as e:  # mlx raises RuntimeError/ValueError variously
            raise ValueError(f"{where}: not a readable safetensors file ({e}).") from e
        if metadata.get("mlx_lowbit.version") != FILE_FORMAT_VERSION:
            raise ValueError(
                f"{where}: not an mlx-lowbit weight file (metadata "
                f"'mlx_lowbit.version' is {metadata.get('mlx_lowbit.version')!r}, "
                f"expected {FILE_FORMAT_VERSION!r})."
            )
        unknown = set(arrays) - set(_ARRAY_FIELDS)
        if unknown:
            raise ValueError(f"{where}: unexpected tensors {sorted(unknown)}.")
        for name, a in arrays.items():
            if metadata.get(f"sha256.{name}") != _digest(a):
                raise ValueError(
                    f"{where}: tensor '{name}' does not match its recorded checksum; "
                    "the file is corrupt or was modified."
                )
        try:
            ints = {name: int(metadata[name]) for name in _INT_FIELDS}
            qw = cls(fmt=metadata["format"], **ints, **arrays)
        except KeyError as e:
            raise ValueError(f"{where}: metadata lacks {e}.") from e
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        if metadata.get("shape") != f"{qw.shape[0]},{qw.shape[1]}":
            raise ValueError(
                f"{where}: metadata says shape {metadata.get('shape')} but the "
                f"arrays hold {qw.shape[0]},{qw.shape[1]}."
            )
        qw.check_codes()
        return qw

    def check_codes(self) -> None:
        """Reject code values the format never writes (ternary code 3), which
        the kernels would otherwise turn into silent garbage."""
        if self.fmt == "ternary":
            words = np.asarray(self.packed)
            # Code 3 has both bits of its pair set.
            if np.any(words & (words >> 1) & np.uint32(0x55555555)):
                raise ValueError("[QuantizedWeight] The ternary codes contain the invalid code 3.")


def _digest(a: mx.array) -> str:
    return hashlib.sha256(np.asarray(a).tobytes()).hexdigest()
