# Copyright © 2026 mlx-lowbit contributors.
"""An independent decoder of the packed formats, written from docs/FORMATS.md
and deliberately sharing no code with the package: it is the oracle that
every backend (and the package's own dequantize) is checked against."""

import numpy as np


def _bits_of_words(words: np.ndarray) -> np.ndarray:
    """(N, W) uint32 -> (N, W * 32) bits, LSB of word 0 first."""
    shifts = np.arange(32, dtype=np.uint32)
    return ((words[:, :, None] >> shifts) & 1).reshape(words.shape[0], -1)


def signs(qw) -> np.ndarray:
    """The +-1 / ternary part of the weight, (N, K), as float64."""
    packed = np.asarray(qw.packed)
    n, k = qw.shape
    if qw.fmt == "ternary":
        shifts = 2 * np.arange(16, dtype=np.uint32)
        codes = ((packed[:, :, None] >> shifts) & 3).reshape(n, -1)[:, :k]
        assert not np.any(codes == 3), "code 3 is never written"
        return codes.astype(np.float64) - 1.0
    if qw.fmt == "binary":
        return 2.0 * _bits_of_words(packed)[:, :k] - 1.0
    v, c = qw.vector_size, qw.index_bits
    stream = _bits_of_words(packed)
    runs = k // v
    idx_bits = stream[:, : runs * c].reshape(n, runs, c).astype(np.uint64)
    idx = (idx_bits << np.arange(c, dtype=np.uint64)).sum(-1)
    patterns = np.asarray(qw.codebook).astype(np.uint64)[idx]
    bits = (patterns[:, :, None] >> np.arange(v, dtype=np.uint64)) & 1
    return 2.0 * bits.reshape(n, k).astype(np.float64) - 1.0


def dequantize(qw) -> np.ndarray:
    """The (N, K) weight as float64."""
    gs = qw.group_size
    w = signs(qw) * np.repeat(np.asarray(qw.scales, dtype=np.float64), gs, axis=1)
    if qw.biases is not None:
        w += np.repeat(np.asarray(qw.biases, dtype=np.float64), gs, axis=1)
    return w


def random_exact_weight(rng: np.random.Generator, fmt: str, n: int, k: int, gs: int, **opts):
    """Unpacked parts of a random weight that is exactly representable:
    (values in the format's alphabet, scales, biases or None, codebook or None,
    indices or None), with fp16-representable scales."""
    g = k // gs
    scales = rng.uniform(0.5, 2.0, size=(n, g)).astype(np.float16)
    if fmt == "ternary":
        return rng.integers(-1, 2, size=(n, k)).astype(np.int8), scales, None, None, None
    if fmt == "binary":
        bits = rng.integers(0, 2, size=(n, k)).astype(np.uint8)
        biases = rng.uniform(-1, 1, size=(n, g)).astype(np.float16) if opts.get("biases") else None
        return bits, scales, biases, None, None
    v, c = opts["vector_size"], opts["index_bits"]
    codebook = rng.permutation(1 << v)[: 1 << c].astype(np.uint8 if v == 8 else np.uint16)
    indices = rng.integers(0, 1 << c, size=(n, k // v)).astype(np.uint32)
    return None, scales, None, codebook, indices
