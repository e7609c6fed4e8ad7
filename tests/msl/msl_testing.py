"""Helpers shared by the tests of the Metal-on-Linux harness."""

import struct
from pathlib import Path

import numpy as np

KERNELS = Path(__file__).resolve().parent / "kernels"
REPO = Path(__file__).resolve().parents[2]


def kernel_source(name: str) -> str:
    return (KERNELS / name).read_text()


def mutate(source: str, old: str, new: str) -> str:
    """`source` with the one occurrence of `old` replaced, so a mutation cannot silently miss."""
    assert source.count(old) == 1, f"mutation anchor occurs {source.count(old)} times: {old!r}"
    return source.replace(old, new)


def pack(fmt: str, *values) -> bytes:
    """Bytes of a `constant Params&` struct (little-endian, as on Apple silicon)."""
    return struct.pack("<" + fmt, *values)


def uint_bits(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)
