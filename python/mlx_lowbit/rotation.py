# Copyright © 2026 mlx-lowbit contributors.
"""Incoherence processing: a randomized block-Hadamard rotation of a linear
layer's input dimension.

For an orthogonal R, ``x @ W.T == (x @ R) @ (W @ R).T``. With
R = D · blockdiag(H_b / sqrt(b)) (D a diagonal of random signs, H_b the
Sylvester Hadamard matrix of size b), a weight with a few large input
columns is spread evenly over its row, so it quantizes with less error;
the layer then rotates its input the same way at run time.

Signs drawn from a seed (:meth:`Rotation.random`, what every quantizer
here makes) are stored as the seed: a ``rotation_seed`` tensor of two uint32
values (seed, block), 8 bytes per layer, from which every loader draws them
again; the config entry says ``"seeded": true``. Signs given otherwise (and
checkpoints written before seeds were stored) are stored packed, one bit per
input feature (bit set: -1), as a ``rotation_signs`` tensor of uint32 words
of shape (K / b, b / 32): one row per block. Either way the tensor holds the
block, so a checkpoint whose config names another block, or the other kind
of signs, fails at load.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

import mlx.core as mx
import numpy as np

KIND = "hadamard"
DEFAULT_MAX_BLOCK = 256
DEFAULT_SEED = 0
_WORD_BITS = 32
SEED_WORDS = 2  # a stored seed tensor: (seed, block)
# Blocks hold whole sign words; mx.hadamard_transform's largest power-of-two
# size in float32 is 8192.
MIN_BLOCK, MAX_BLOCK = _WORD_BITS, 8192


def _is_block(b: Any) -> bool:
    return isinstance(b, int) and MIN_BLOCK <= b <= MAX_BLOCK and not b & (b - 1)


def check_max_block(max_block: int) -> None:
    """Refuse a block size limit that is not a power of two in 32..8192."""
    if not _is_block(max_block):
        raise ValueError(
            f"[rotation] The block size limit must be a power of two in {MIN_BLOCK}..{MAX_BLOCK}, "
            f"got {max_block!r}."
        )


def check_seed(seed: Any) -> None:
    """Refuse a seed that does not fit the stored uint32."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"[rotation] The seed must be an integer in 0..2**32 - 1, got {seed!r}.")


def block_size(k: int, max_block: int = DEFAULT_MAX_BLOCK) -> int:
    """The largest power of two that divides ``k`` and is at most ``max_block``.

    Raises:
        ValueError: ``k`` is not a positive multiple of 32, or ``max_block``
          is not a power of two in 32..8192.
    """
    if not isinstance(k, int) or k <= 0 or k % _WORD_BITS:
        raise ValueError(
            f"[rotation] The input dimension must be a positive multiple of 32, got {k}."
        )
    check_max_block(max_block)
    return min(k & -k, max_block)


def pack_signs(signs: Any, block: int) -> mx.array:
    """(K,) values of +1/-1 as (K / block, block / 32) uint32 words; bit i
    of word j (in row-major order) is set where sign 32 j + i is -1."""
    s = np.asarray(signs)
    if s.ndim != 1 or not np.isin(s, (-1, 1)).all():
        raise ValueError("[rotation] Signs must be a 1-D vector of +1/-1.")
    if not _is_block(block) or s.size % block:
        raise ValueError(
            f"[rotation] Block {block!r} is not a power of two in {MIN_BLOCK}..{MAX_BLOCK} "
            f"that divides K={s.size}."
        )
    bits = (s < 0).reshape(-1, _WORD_BITS).astype(np.uint64)
    words = (bits << np.arange(_WORD_BITS, dtype=np.uint64)).sum(axis=1)
    return mx.array(words.astype(np.uint32).reshape(-1, block // _WORD_BITS))


@dataclass(frozen=True, eq=False)
class Rotation:
    """R = D · blockdiag(H_b / sqrt(b)) over an input dimension K.

    Args:
        sign_bits (mx.array): The signs of D, (K / b, b / 32) uint32 (see
          :func:`pack_signs`); b is a power of two in 32..8192.
        seed (int, optional): The seed the signs were drawn from
          (:meth:`random`); then the layer stores the seed, not the signs.

    Construction checks the array and raises ``ValueError`` naming the problem.
    """

    sign_bits: mx.array
    seed: Optional[int] = None

    def __post_init__(self):
        if self.seed is not None:
            check_seed(self.seed)
        bits = self.sign_bits
        if not isinstance(bits, mx.array) or bits.ndim != 2 or bits.dtype != mx.uint32:
            got = (
                f"{bits.dtype} of shape {tuple(bits.shape)}"
                if isinstance(bits, mx.array)
                else type(bits).__name__
            )
            raise ValueError(
                f"[rotation] The signs must be a 2-D uint32 array (blocks, block / 32), got {got}."
            )
        if bits.size == 0 or not _is_block(bits.shape[1] * _WORD_BITS):
            raise ValueError(
                f"[rotation] Signs of shape {tuple(bits.shape)} give block "
                f"{bits.shape[1] * _WORD_BITS}; a block is a power of two in "
                f"{MIN_BLOCK}..{MAX_BLOCK}."
            )

    @classmethod
    def random(
        cls, k: int, seed: int = DEFAULT_SEED, max_block: int = DEFAULT_MAX_BLOCK
    ) -> "Rotation":
        """Signs drawn from ``numpy.random.default_rng(seed)``, block
        :func:`block_size` ``(k, max_block)``: the same rotation for the same
        arguments on every machine."""
        check_seed(seed)
        block = block_size(k, max_block)
        signs = 1 - 2 * np.random.default_rng(seed).integers(0, 2, size=k)
        return cls(pack_signs(signs, block), seed)

    @classmethod
    def from_config(cls, config: Any, k: int) -> "Rotation":
        """The rotation a checkpoint's config records (:meth:`config`), with
        the signs of :meth:`random` as a placeholder until the stored seed
        (``"seeded": true``) or signs are loaded over it.

        Raises:
            ValueError: an unknown kind, or a block that does not fit ``k``.
        """
        if not isinstance(config, dict) or config.get("kind") != KIND or "block" not in config:
            raise ValueError(
                f"[rotation] Expected a rotation entry {{'kind': {KIND!r}, 'block': b}}, "
                f"got {config!r}."
            )
        block = config["block"]
        if not _is_block(block) or k % block:
            raise ValueError(
                f"[rotation] Block {block!r} is not a power of two in {MIN_BLOCK}..{MAX_BLOCK} "
                f"that divides K={k}."
            )
        if not isinstance(config.get("seeded", False), bool):
            raise ValueError(
                f"[rotation] 'seeded' must be true or false, got {config['seeded']!r}."
            )
        placeholder = cls.random(k, max_block=block)
        if config.get("seeded", False) is True:
            return placeholder
        return cls(placeholder.sign_bits)

    @property
    def block(self) -> int:
        return self.sign_bits.shape[1] * _WORD_BITS

    @property
    def k(self) -> int:
        return self.sign_bits.size * _WORD_BITS

    @property
    def nbytes(self) -> int:
        """Bytes stored with the layer: the seed tensor or the packed signs."""
        return SEED_WORDS * 4 if self.seed is not None else self.sign_bits.nbytes

    def config(self) -> Dict[str, Any]:
        """The entry a checkpoint's config records (the seed or the signs
        are a tensor, :meth:`seed_tensor` or :attr:`sign_bits`)."""
        entry = {"kind": KIND, "block": self.block}
        if self.seed is not None:
            entry["seeded"] = True
        return entry

    def seed_tensor(self) -> mx.array:
        """(seed, block) as uint32: what a seeded rotation stores."""
        if self.seed is None:
            raise ValueError("[rotation] These signs were not drawn from a seed.")
        return mx.array([self.seed, self.block], mx.uint32)

    @classmethod
    def from_seed_tensor(cls, t: Any, k: int) -> "Rotation":
        """The rotation a stored :meth:`seed_tensor` names, over K=k.

        Raises:
            ValueError: not a (2,) uint32 array, or a block that does not fit ``k``.
        """
        if not isinstance(t, mx.array) or t.shape != (SEED_WORDS,) or t.dtype != mx.uint32:
            got = f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, mx.array) else t
            raise ValueError(
                f"[rotation] rotation_seed must be 2 uint32 values (seed, block), got {got}."
            )
        seed, block = (int(v) for v in t.tolist())
        if not _is_block(block) or k % block:
            raise ValueError(
                f"[rotation] rotation_seed names block {block}, not a power of two in "
                f"{MIN_BLOCK}..{MAX_BLOCK} that divides K={k}."
            )
        return cls.random(k, seed, block)

    def signs(self) -> mx.array:
        """D's diagonal, (K,) float32 of +1/-1; unpacked once per Rotation
        (at one token per call the unpacking ops cost about as much as the
        transform)."""
        cached = self.__dict__.get("_signs")
        if cached is None:
            shifts = mx.arange(_WORD_BITS, dtype=mx.uint32)
            bits = (self.sign_bits.reshape(-1, 1) >> shifts) & 1
            cached = 1.0 - 2.0 * bits.reshape(-1).astype(mx.float32)
            object.__setattr__(self, "_signs", cached)
        return cached

    def _check_last(self, x: mx.array, what: str) -> None:
        if not mx.issubdtype(x.dtype, mx.floating):
            raise ValueError(f"[rotation] {what} must be floating point, got {x.dtype}.")
        if x.ndim < 1 or x.shape[-1] != self.k:
            raise ValueError(
                f"[rotation] {what} has shape {tuple(x.shape)}; the rotation is over K={self.k} "
                "(the last axis)."
            )

    def _blocks(self, x: mx.array) -> mx.array:
        # H_b / sqrt(b) on each length-b block of the last axis (H_b is symmetric,
        # so this is both x @ H and H @ x per block).
        shape = x.shape
        y = mx.hadamard_transform(x.reshape(*shape[:-1], self.k // self.block, self.block))
        return y.reshape(shape)

    def rotate(self, x: mx.array) -> mx.array:
        """``x @ R`` over the last axis (any leading dims), in x's dtype;
        computed in float32."""
        self._check_last(x, "The input")
        return self._blocks(x.astype(mx.float32) * self.signs()).astype(x.dtype)

    def unrotate(self, x: mx.array) -> mx.array:
        """``x @ R.T``, the inverse of :meth:`rotate`, in x's dtype."""
        self._check_last(x, "The input")
        return (self._blocks(x.astype(mx.float32)) * self.signs()).astype(x.dtype)

    def rotate_weight(self, w: mx.array) -> mx.array:
        """``W @ R`` for a (N, K) weight, in float32: the weight that
        multiplies rotated inputs."""
        if w.ndim != 2:
            raise ValueError(
                f"[rotation] Expected a 2-D weight (N, K), got shape {tuple(w.shape)}."
            )
        self._check_last(w, "The weight")
        return self.rotate(w.astype(mx.float32))

    def rotate_hessian(self, h: mx.array) -> mx.array:
        """``R.T @ H @ R`` for a (K, K) input Hessian H = X.T X / n, in
        float32: the Hessian of the rotated inputs X @ R."""
        if h.shape != (self.k, self.k):
            raise ValueError(
                f"[rotation] The Hessian has shape {tuple(h.shape)}; K={self.k} needs "
                f"({self.k}, {self.k})."
            )
        self._check_last(h, "The Hessian")
        # rotate(A) = A R, so rotate(rotate(H).T).T = (R.T H.T R).T = R.T H R.
        return self.rotate(self.rotate(h.astype(mx.float32)).T).T
