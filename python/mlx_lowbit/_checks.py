# Copyright © 2026 mlx-lowbit contributors.
"""Argument checks done in Python before a value reaches the C++ core, whose
bindings take 32- or 64-bit integers: a value out of their range would
otherwise come back as nanobind's "incompatible function arguments" dump
instead of an error that names the argument."""

import numbers
from typing import Any

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1


def check_int(value: Any, name: str, where: str, lo: int = INT32_MIN, hi: int = INT32_MAX) -> int:
    """``value`` as an int in [lo, hi], else ValueError naming ``name``.

    bool is refused (it is an int to Python, never meant as a count), and so
    are floats, even whole ones: a config's ``64.0`` is a typo to report.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"[{where}] {name} must be an integer, got {type(value).__name__} {value!r}."
        )
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"[{where}] {name} must be in [{lo}, {hi}], got {value}.")
    return value


def check_bool(value: Any, name: str, where: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"[{where}] {name} must be True or False, got {value!r}.")
    return bool(value)


# The values of matmul's activation_bits, checked where a layer is built so
# that a config.json typo fails at load, not at the first forward.
ACTIVATION_BITS = (0, 8)


def check_activation_bits(value: Any, where: str) -> int:
    value = check_int(value, "activation_bits", where)
    if value not in ACTIVATION_BITS:
        raise ValueError(
            f"[{where}] activation_bits must be 0 (float activations) or 8 (per-token int8), "
            f"got {value}."
        )
    return value


def check_str(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"[{where}] {name} must be a string, got {type(value).__name__}.")
    return value
