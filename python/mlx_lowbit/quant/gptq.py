# Copyright © 2026 mlx-lowbit contributors.
"""Error-feedback (GPTQ-style) quantization for every format.

Codes are chosen column by column (codebook: one run of v columns at a time);
each column's rounding error is spread over the columns not yet quantized
through the inverse Hessian of the layer's inputs, so the layer's output, not
its weight, stays close. Then, with the codes fixed, every row's group scales
(and biases) are refit by least squares in the same Hessian metric.

Codebook: a run goes to the pattern nearest to it in the metric the error
feedback uses (each column weighted by 1 / U_jj^2); after a pass, every
pattern's bits are re-voted as the signs of the weighted sum of the runs it
was given (a sign-based centroid update), and the pass is repeated.

Conversion-time code: float64 numpy linear algebra, loops over columns
(vectorised over rows), never over weights.
"""

from typing import Any, Dict, List, Optional, Tuple

import mlx.core as mx
import numpy as np

from .. import _ext
from ..ops import quantize as _quantize
from ..quantized_weight import QuantizedWeight
from ..rotation import DEFAULT_MAX_BLOCK, Rotation, check_max_block

FORMATS = ("ternary", "binary", "codebook")
CODEBOOK_OPTIONS = ("vector_size", "index_bits", "seed")
# Damping added to H's diagonal, relative to its mean (docs/QUANTIZERS.md measures others).
DAMP = 0.01
# What a per-layer recipe (a class_predicate's dict) may set for gptq_model.
RECIPE_KEYS = (
    "fmt",
    "group_size",
    "scale_dtype",
    "biases",
    *CODEBOOK_OPTIONS,
    "passes",
    "rotate",
    "rotation_block",
    "activation_bits",
)
_FP16_MAX = 65504.0


def input_hessian(x: mx.array, k: Optional[int] = None) -> mx.array:
    """H = X^T X / n (float32, K x K) of a layer's calibration inputs x (..., K)."""
    if x.ndim < 1 or x.size == 0:
        raise ValueError("[gptq] Calibration inputs are empty.")
    if k is not None and x.shape[-1] != k:
        raise ValueError(
            f"[gptq] Calibration inputs have {x.shape[-1]} features; the layer takes {k}."
        )
    a = np.asarray(x.astype(mx.float32)).reshape(-1, x.shape[-1]).astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("[gptq] Calibration inputs contain NaN or Inf.")
    return mx.array((a.T @ a / a.shape[0]).astype(np.float32))


def _check(w: mx.array, h: mx.array, fmt: str, group_size: int, biases: bool) -> None:
    if fmt not in FORMATS:
        raise ValueError(
            f"[gptq] Format {fmt!r} is not supported; supported: {', '.join(FORMATS)}."
        )
    if biases and fmt != "binary":
        raise ValueError("[gptq] biases=True applies to the binary format only.")
    if w.ndim != 2:
        raise ValueError(f"[gptq] Expected a 2-D weight (N, K), got shape {tuple(w.shape)}.")
    k = w.shape[1]
    if h.shape != (k, k):
        raise ValueError(
            f"[gptq] The Hessian has shape {tuple(h.shape)}; a weight with K={k} needs ({k}, {k})."
        )
    if group_size <= 0 or group_size % 32 or k % group_size:
        raise ValueError(
            f"[gptq] group_size must be a positive multiple of 32 that divides K={k}, got {group_size}."
        )


def _group_scales(v: np.ndarray, fmt: str, biases: bool):
    """Scale (and bias) per row for the weights v (N, g) about to be coded."""
    if fmt != "ternary":  # binary and codebook: +-scale (+ bias)
        b = v.mean(axis=1) if biases else np.zeros(v.shape[0])
        return np.abs(v - b[:, None]).mean(axis=1), b
    # Ternary: keeping the k largest |v| at +-s costs sum|v|^2 - (top-k sum)^2 / k,
    # so the best k maximises (top-k sum)^2 / k and s is their mean.
    a = -np.sort(-np.abs(v), axis=1)
    c = np.cumsum(a, axis=1)
    kk = np.arange(1, v.shape[1] + 1)
    best = np.argmax(c * c / kk, axis=1)
    return c[np.arange(v.shape[0]), best] / (best + 1), np.zeros(v.shape[0])


def _codes(col: np.ndarray, s: np.ndarray, b: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "binary":
        return np.where(col >= b, 1.0, -1.0)
    safe = np.where(s > 0, s, 1.0)
    return np.where(s > 0, np.clip(np.rint(col / safe), -1.0, 1.0), 0.0)


def _refit(w: np.ndarray, h: np.ndarray, t: np.ndarray, group_size: int, biases: bool):
    """Per row, the scales (and biases) minimising (w - w_q) H (w - w_q)^T for fixed codes t."""
    n, k = w.shape
    g = k // group_size
    kinds = [t, np.ones_like(t)] if biases else [t]
    p = len(kinds) * g
    a = np.zeros((n, p, p))
    for i, u in enumerate(kinds):
        for gi in range(g):
            rows = slice(gi * group_size, (gi + 1) * group_size)
            z = u[:, rows] @ h[rows, :]  # (N, K): the group's basis vector times H
            for j, v in enumerate(kinds):
                a[:, i * g + gi, j * g : (j + 1) * g] = (z * v).reshape(n, g, group_size).sum(-1)
    wh = w @ h
    rhs = np.concatenate([(wh * u).reshape(n, g, group_size).sum(-1) for u in kinds], axis=1)
    # A small ridge keeps groups whose codes are all zero (ternary) solvable.
    ridge = 1e-6 * np.trace(h) / k + 1e-12
    sol = np.linalg.solve(a + ridge * np.eye(p), rhs[..., None])[..., 0]
    return sol[:, :g], (sol[:, g:] if biases else None)


def _patterns(codebook: np.ndarray, v: int) -> np.ndarray:
    """(2^c, v) +-1 float64 patterns of a codebook (bit i = weight i; 1 means +1)."""
    bits = (codebook.astype(np.int64)[:, None] >> np.arange(v)) & 1
    return 2.0 * bits - 1.0


def _codebook_words(patterns: np.ndarray) -> np.ndarray:
    v = patterns.shape[1]
    words = ((patterns > 0).astype(np.int64) << np.arange(v)).sum(axis=1)
    return words.astype(np.uint8 if v == 8 else np.uint16)


def _feedback_pass(W, U, group_size, fmt, biases, patterns=None):
    """One GPTQ pass: codes (N, K) as +-1 / 0 per weight, codebook indices
    (N, K / v) or None, and the error-updated targets each run was coded from."""
    n, k = W.shape
    width = 1 if patterns is None else patterns.shape[1]
    g = k // group_size
    T = np.zeros((n, k))
    S = np.zeros((n, g))
    B = np.zeros((n, g))
    idx = None if patterns is None else np.zeros((n, k // width), dtype=np.int64)
    targets = np.zeros((n, k)) if patterns is not None else None
    # Each column's error costs e^2 / U_jj^2 in the layer's output.
    cost = 1.0 / np.diag(U) ** 2
    Wq = W.copy()
    block = group_size * max(1, 128 // group_size)  # whole groups (and runs) per block
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        err = np.zeros((n, i2 - i1))
        for j in range(i1, i2, width):
            gi = j // group_size
            if j % group_size == 0:
                S[:, gi], B[:, gi] = _group_scales(Wq[:, j : j + group_size], fmt, biases)
            if patterns is None:
                T[:, j] = _codes(Wq[:, j], S[:, gi], B[:, gi], fmt)
            else:
                run = Wq[:, j : j + width]
                targets[:, j : j + width] = run
                sign = np.where(S[:, gi] < 0, -1.0, 1.0)[:, None]
                best = np.argmax((run * cost[j : j + width] * sign) @ patterns.T, axis=1)
                idx[:, j // width] = best
                T[:, j : j + width] = patterns[best]
            for jj in range(j, j + width):
                e = (Wq[:, jj] - (S[:, gi] * T[:, jj] + B[:, gi])) / U[jj, jj]
                Wq[:, jj + 1 : i2] -= np.outer(e, U[jj, jj + 1 : i2])
                err[:, jj - i1] = e
        Wq[:, i2:] -= err @ U[i1:i2, i2:]
    return T, S, B, idx, targets


def _vote(patterns, idx, targets, S, group_size, cost):
    """Each pattern's bits as the signs of the cost-weighted sum of its runs
    (scale signs folded in); patterns no run chose are kept."""
    n, k = targets.shape
    v = patterns.shape[1]
    sign = np.repeat(np.where(S < 0, -1.0, 1.0), group_size, axis=1)
    runs = (targets * sign * cost).reshape(-1, v)
    sums = np.zeros_like(patterns)
    np.add.at(sums, idx.reshape(-1), runs)
    return np.where(sums == 0, patterns, np.where(sums > 0, 1.0, -1.0))


def gptq_quantize(
    w: mx.array,
    h: mx.array,
    fmt: str,
    group_size: int = 128,
    *,
    biases: bool = False,
    damp: float = DAMP,
    scale_dtype: mx.Dtype = mx.float16,
    refit: bool = True,
    vector_size: int = 16,
    index_bits: int = 12,
    seed: int = 0,
    passes: int = 2,
) -> QuantizedWeight:
    """Quantize a (N, K) weight with error feedback against the input Hessian ``h``.

    Args:
        w (mx.array): The float weight (N, K).
        h (mx.array): The layer inputs' Hessian (K, K), from :func:`input_hessian`.
        fmt (str): ``"ternary"``, ``"binary"`` or ``"codebook"``.
        group_size (int): Weights per scale along K. Default: ``128``.
        biases (bool): Binary only: a bias per group. Default: ``False``.
        damp (float): Added to H's diagonal, relative to its mean. Default: ``0.01``.
        scale_dtype (mx.Dtype): ``mx.float16`` (default) or ``mx.float32``.
        refit (bool): Refit scales (and biases) in the Hessian metric once the
          codes are fixed. Default: ``True``.
        vector_size, index_bits, seed: Codebook only, as in
          :func:`mlx_lowbit.quantize`, whose clustering gives the first codebook.
        passes (int): Codebook only: error-feedback passes, with a re-vote of
          the patterns between two passes. Default: ``2``.

    Returns:
        QuantizedWeight: in the format's own layout (docs/FORMATS.md).
    """
    _check(w, h, fmt, group_size, biases)
    if scale_dtype not in (mx.float16, mx.float32):
        raise ValueError(f"[gptq] scale_dtype must be float16 or float32, got {scale_dtype}.")
    if passes < 1:
        raise ValueError(f"[gptq] passes must be >= 1, got {passes}.")
    W = np.asarray(w.astype(mx.float32)).astype(np.float64)
    H = np.asarray(h.astype(mx.float32)).astype(np.float64)
    if not (np.isfinite(W).all() and np.isfinite(H).all()):
        raise ValueError("[gptq] The weight or the Hessian contains NaN or Inf.")
    patterns = None
    if fmt == "codebook":
        # The clustering of the weight's own sign patterns gives the first codebook
        # (and checks the codebook options).
        first = _quantize(
            w, "codebook", group_size, vector_size=vector_size, index_bits=index_bits, seed=seed
        )
        patterns = _patterns(np.asarray(first.codebook), vector_size)
    n, k = W.shape
    H = H.copy()
    dead = np.diag(H) <= 0  # features the calibration never saw
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.mean(np.diag(H)) * np.eye(k)
    try:
        U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: H^-1 = U^T U
    except np.linalg.LinAlgError:
        raise ValueError("[gptq] The Hessian is not positive definite; raise damp.") from None

    T, S, B, idx, targets = _feedback_pass(W, U, group_size, fmt, biases, patterns)
    for _ in range(passes - 1 if patterns is not None else 0):
        voted = _vote(patterns, idx, targets, S, group_size, 1.0 / np.diag(U) ** 2)
        if np.array_equal(voted, patterns):
            break  # a fixed point: another pass would repeat this one
        patterns = voted
        T, S, B, idx, targets = _feedback_pass(W, U, group_size, fmt, biases, patterns)

    if refit:
        S, Bfit = _refit(W, H, T, group_size, biases)
        B = Bfit if biases else B
    limit = np.abs(S).max(initial=0.0), np.abs(B).max(initial=0.0)
    if scale_dtype == mx.float16 and max(limit) > _FP16_MAX:
        raise ValueError(
            "[gptq] A scale or bias does not fit in float16; pass scale_dtype=float32."
        )

    extra = {}
    if fmt == "ternary":
        packed = _ext.pack_ternary(mx.array(T.astype(np.int8)))
    elif fmt == "binary":
        packed = _ext.pack_binary(mx.array((T > 0).astype(np.uint8)))
    else:
        packed = _ext.pack_codebook(mx.array(idx.astype(np.uint32)), vector_size, index_bits)
        extra = {
            "codebook": mx.array(_codebook_words(patterns)),
            "vector_size": vector_size,
            "index_bits": index_bits,
        }
    return QuantizedWeight(
        fmt=fmt,
        group_size=group_size,
        packed=packed,
        scales=mx.array(S.astype(np.float32)).astype(scale_dtype),
        biases=mx.array(B.astype(np.float32)).astype(scale_dtype) if biases else None,
        **extra,
    )


def gptq_model(
    model,
    batches: mx.array,
    fmt: str = "ternary",
    group_size: int = 128,
    *,
    class_predicate=None,
    biases: bool = False,
    damp: float = DAMP,
    scale_dtype: mx.Dtype = mx.float16,
    progress: bool = False,
    rotate: bool = False,
    rotation_block: int = DEFAULT_MAX_BLOCK,
    sequential: bool = False,
    **codebook_options,
) -> None:
    """Replace a model's linear layers in place by GPTQ-quantized ones.

    Every chosen layer's input Hessian comes from one pass of the float model
    over ``batches`` (B, L) token ids (see :mod:`mlx_lowbit.quant.calib`),
    or with ``sequential`` block by block from the model whose earlier
    blocks are already quantized (the inputs the layer will see).

    Args:
        class_predicate: ``(path, module) -> bool | dict``; default: the layers
          :func:`mlx_lowbit.nn.quantize` picks (every linear layer but the head).
          A dict is a per-layer recipe as in :func:`mlx_lowbit.nn.quantize`
          (keys :data:`RECIPE_KEYS`); an embedding it selects is rounded to
          nearest (a lookup has no input Hessian).
        **codebook_options: ``vector_size``, ``index_bits``, ``seed``, ``passes``.
        rotate (bool): Quantize ``W @ R`` against ``R.T @ H @ R`` for a
          randomized Hadamard rotation R of each layer's input, which the
          layer then applies at run time (:mod:`mlx_lowbit.rotation`).
          Default: ``False``.
        rotation_block (int): The largest Hadamard block, as in
          :func:`mlx_lowbit.nn.quantize`. Default: ``256``.
        sequential (bool): Calibrate each transformer block (layers under
          ``...layers.N.``) after the blocks before it are quantized, each
          pass stopped after the block. Default: ``False``.
        Others: as in :func:`gptq_quantize`.
    """
    import mlx.nn as nn
    from mlx.utils import tree_flatten, tree_unflatten

    from .. import nn as lbnn
    from .capture import input_hessians

    if rotate:
        check_max_block(rotation_block)  # before the (slow) calibration pass
    predicate = class_predicate or lbnn._default_predicate
    settings, embeddings = {}, []  # the chosen linear layers' settings, in model order
    options = {"biases": biases, **codebook_options}
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        result = predicate(path, module)
        if not result:
            continue
        # A dict is a per-layer recipe, as in mlx_lowbit.nn.quantize; checked
        # here, before the (slow) calibration pass.
        unknown = set(result) - set(RECIPE_KEYS) if isinstance(result, dict) else set()
        if unknown:
            raise ValueError(
                f"[gptq] Layer {path!r}: unknown recipe setting(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(RECIPE_KEYS)}."
            )
        opts = lbnn._layer_options(result, fmt, group_size, scale_dtype, options)
        layer_fmt = opts.pop("fmt")
        try:  # drops the settings of other formats (biases=False on ternary ...)
            opts = {"fmt": layer_fmt, **lbnn.quantizer_options(layer_fmt, **opts)}
        except ValueError as e:
            raise ValueError(f"[gptq] Layer {path!r}: {e}") from e
        opts = {"rotate": rotate, "rotation_block": rotation_block, **opts}
        if opts.pop("activation_bits", 0):
            raise ValueError(
                f"[gptq] Layer {path!r}: activation_bits=8 is not calibrated; GPTQ's Hessian "
                "is of float activations (quantize it with mlx_lowbit.nn.quantize)."
            )
        if isinstance(module, (nn.Embedding, nn.QuantizedEmbedding, *lbnn.switch_classes())):
            # RTN: a lookup has no input Hessian, and the per-expert Hessians
            # of MoE experts are not captured (yet).
            embeddings.append((path, module, opts))
            continue
        if not isinstance(module, (nn.Linear, nn.QuantizedLinear, lbnn.LowBitLinear)):
            raise ValueError(
                f"[gptq] Layer {path!r} is a {type(module).__name__}, not a linear layer."
            )
        if opts["rotate"]:
            check_max_block(opts["rotation_block"])
        opts["scale_dtype"] = lbnn._scale_dtype(opts["scale_dtype"])
        settings[path] = opts
    chosen = list(settings)
    stages = _blocks(chosen) if sequential else [chosen]
    bar = None
    if progress:
        from tqdm import tqdm

        total = batches.shape[0] * len(stages)
        bar = tqdm(total=total, desc="calibrating" + " by block" * sequential, unit="seq")
    replaced = []
    for stage in stages:
        hessians = input_hessians(
            model, batches, stage, progress=bar.update if bar else None, stop_early=sequential
        )
        done = _gptq_layers(model, stage, hessians, settings, damp)
        if sequential:  # the next block calibrates on this one's quantized outputs
            model.update_modules(tree_unflatten(done))
        replaced += done
    if bar:
        bar.close()
    for path, module, opts in embeddings:
        try:
            replaced.append((path, lbnn._quantize_module(module, **opts)))
        except ValueError as e:
            raise ValueError(f"[gptq] Layer {path!r}: {e}") from e
    model.update_modules(tree_unflatten(replaced))


def _blocks(paths: List[str]) -> List[List[str]]:
    """The layer paths grouped by transformer block (``...layers.N``), in
    model order; a path outside any block is a group of its own."""
    import re

    groups: Dict[str, List[str]] = {}
    for p in paths:
        m = re.match(r"(.*\.layers\.\d+)\.", p)
        groups.setdefault(m.group(1) if m else p, []).append(p)
    return list(groups.values())


def _gptq_layers(model, paths, hessians, settings, damp) -> List[Tuple[str, Any]]:
    """(path, LowBitLinear) for each layer at ``paths``, GPTQ-quantized
    against its Hessian with its settings."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    from .. import nn as lbnn

    modules = dict(tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module))
    replaced = []
    for path in paths:
        module = modules[path]
        w, h = lbnn.dense_weight(module), hessians.pop(path)
        opts = dict(settings[path])
        layer_fmt, layer_group = opts.pop("fmt"), opts.pop("group_size")
        rotation = None
        try:
            if opts.pop("rotate"):
                rotation = Rotation.random(w.shape[1], max_block=opts["rotation_block"])
                w, h = rotation.rotate_weight(w), rotation.rotate_hessian(h)
            opts.pop("rotation_block")
            qw = gptq_quantize(w, h, layer_fmt, layer_group, damp=damp, **opts)
        except (ValueError, TypeError) as e:
            raise ValueError(f"[gptq] Layer {path!r}: {e}") from e
        bias = module.get("bias")
        replaced.append((path, lbnn.LowBitLinear.from_qweight(qw, bias, rotation=rotation)))
    return replaced
