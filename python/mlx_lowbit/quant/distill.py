# Copyright © 2026 mlx-lowbit contributors.
"""Distillation: train a quantized model against the float model's logits.

Starting from a quantized model (RTN or GPTQ codes), every low-bit layer is
swapped for a :class:`FakeQuantLinear` that holds a float "latent" weight
equal to its dequantized weight, plus its scales (and biases). Its forward
pass rounds the latent weight to the format's grid with the current scales,
so the codes it uses are exactly the ones the packed layer will hold; the
gradient passes the rounding straight through to the latent weight (the
straight-through estimator) and reaches the scales through the product
``scale * code``. The loss is the KL divergence from the float model's
next-token distribution (at a temperature), on calibration text and,
optionally, on text the float model itself sampled (data-free).

With ``train_weights=False`` only the float parameters move (scales, biases,
norms), so the codes of the starting point are kept. At the end each layer
is packed back into its format (:meth:`FakeQuantLinear.to_qweight`).

Plain MLX: it runs on any device (on a GPU for real runs; the tests use tiny
models on the CPU).
"""

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from .. import _ext
from ..ops import dequantize
from ..quantized_weight import QuantizedWeight
from ..rotation import Rotation
from .gptq import _patterns


def _expand(a: mx.array, group_size: int) -> mx.array:
    """(N, G) per-group values repeated to (N, G * group_size)."""
    n, g = a.shape
    return mx.broadcast_to(a[:, :, None], (n, g, group_size)).reshape(n, g * group_size)


class FakeQuantLinear(nn.Module):
    """A low-bit linear layer for training: a float latent weight rounded to
    the format's grid in the forward pass (straight-through gradient).

    Build one with :meth:`from_qweight`; :meth:`to_qweight` packs it back.
    """

    def __init__(
        self,
        qw: QuantizedWeight,
        bias: Optional[mx.array] = None,
        rotation: Optional[Rotation] = None,
    ):
        super().__init__()
        self._rotation = rotation  # the packed layer's input rotation, kept as is
        self.fmt = qw.fmt
        self.group_size = qw.group_size
        self.vector_size = qw.vector_size
        self.index_bits = qw.index_bits
        self.scale_dtype = qw.scales.dtype
        # Our primitives run on the CPU; the training itself is plain MLX, on any device.
        self.weight = dequantize(qw, mx.float32, stream=mx.cpu)
        self.scales = qw.scales.astype(mx.float32)
        if qw.biases is not None:
            self.biases = qw.biases.astype(mx.float32)
        # numpy, so that it is no parameter; the +-1 patterns are a frozen one.
        self._codebook = None if qw.codebook is None else np.asarray(qw.codebook)
        if qw.codebook is not None:
            self.patterns = mx.array(_patterns(self._codebook, qw.vector_size).astype(np.float32))
            self.freeze(keys=["patterns"], recurse=False)
        if bias is not None:
            self.bias = bias

    @classmethod
    def from_qweight(
        cls,
        qw: QuantizedWeight,
        bias: Optional[mx.array] = None,
        rotation: Optional[Rotation] = None,
    ) -> "FakeQuantLinear":
        return cls(qw, bias, rotation)

    def codes(self) -> mx.array:
        """The codes the current latent weight and scales round to: ternary
        {-1, 0, 1} and binary {-1, 1} per weight (N, K), codebook indices
        (N, K / v). No gradient."""
        w = mx.stop_gradient(self.weight)
        s = mx.stop_gradient(self.scales)
        if self.fmt == "ternary":
            s = _expand(s, self.group_size)
            safe = mx.where(s == 0, 1.0, s)
            return mx.where(s == 0, 0.0, mx.clip(mx.round(w / safe), -1.0, 1.0))
        if self.fmt == "binary":
            centred = w
            if "biases" in self:
                centred = w - _expand(mx.stop_gradient(self.biases), self.group_size)
            return mx.where(centred * _expand(s, self.group_size) >= 0, 1.0, -1.0)
        # codebook: the pattern with the largest dot product with the run
        # (times the scale's sign) is the nearest one, since every pattern
        # has the same norm.
        n, k = w.shape
        v = self.vector_size
        sign = mx.where(_expand(s, self.group_size) < 0, -1.0, 1.0)
        runs = (w * sign).reshape(n, k // v, v)
        return mx.argmax(runs @ self.patterns.T, axis=-1).astype(mx.uint32)

    def _code_weights(self, codes: mx.array) -> mx.array:
        """Per-weight +-1 / 0 values (N, K) of ``codes``."""
        if self.fmt != "codebook":
            return codes
        n = codes.shape[0]
        return self.patterns[codes].reshape(n, -1)

    def dense(self) -> mx.array:
        """The weight the packed layer will hold, with straight-through
        gradients to the latent weight and exact ones to the scales."""
        t = mx.stop_gradient(self._code_weights(self.codes()))
        w = _expand(self.scales, self.group_size) * t
        if "biases" in self:
            w = w + _expand(self.biases, self.group_size)
        return w + (self.weight - mx.stop_gradient(self.weight))

    def __call__(self, x: mx.array) -> mx.array:
        if self._rotation is not None:
            x = self._rotation.rotate(x)
        y = x @ self.dense().astype(x.dtype).T
        if "bias" in self:
            y = y + self.bias.astype(y.dtype)
        return y

    def to_qweight(self) -> QuantizedWeight:
        """Pack the current codes with the current scales (in the layer's
        original scale dtype)."""
        codes = np.asarray(self.codes())  # computed where the model is, packed on the host
        if self.fmt == "ternary":
            packed = _ext.pack_ternary(mx.array(codes.astype(np.int8)))
        elif self.fmt == "binary":
            packed = _ext.pack_binary(mx.array((codes > 0).astype(np.uint8)))
        else:
            packed = _ext.pack_codebook(mx.array(codes), self.vector_size, self.index_bits)
        return QuantizedWeight(
            fmt=self.fmt,
            group_size=self.group_size,
            packed=packed,
            scales=mx.array(np.asarray(self.scales)).astype(self.scale_dtype, stream=mx.cpu),
            biases=(
                mx.array(np.asarray(self.biases)).astype(self.scale_dtype, stream=mx.cpu)
                if "biases" in self
                else None
            ),
            codebook=None if self._codebook is None else mx.array(self._codebook),
            vector_size=self.vector_size,
            index_bits=self.index_bits,
        )


@dataclass
class DistillResult:
    """What a distillation run did: the KL per step (the loss curve), held-out
    KL before and after, and the wall time."""

    steps: int
    tokens: int
    losses: List[float] = field(default_factory=list)
    kl_before: float = math.nan
    kl_after: float = math.nan
    seconds: float = 0.0

    def record(self) -> Dict[str, Any]:
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "kl_before": round(self.kl_before, 5),
            "kl_after": round(self.kl_after, 5),
            "seconds": round(self.seconds, 1),
        }


def kl_divergence(student: mx.array, teacher: mx.array, temperature: float = 1.0) -> mx.array:
    """Mean over positions of KL(teacher || student) of logits at a temperature,
    scaled by temperature^2 (so gradients keep their size), in float32."""
    t = nn.log_softmax(teacher.astype(mx.float32) / temperature, axis=-1)
    s = nn.log_softmax(student.astype(mx.float32) / temperature, axis=-1)
    return (mx.exp(t) * (t - s)).sum(-1).mean() * (temperature * temperature)


def sample_text(
    model: nn.Module,
    prompts: mx.array,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    chunk: int = 512,
) -> mx.array:
    """Continue each prompt row (B, P) with tokens the model samples, to
    ``length`` tokens in all (B, length): data-free distillation text.
    Rows are sampled ``chunk`` at a time (the KV cache and logits of all of
    them at once can fill a GPU that other jobs share)."""
    if length <= prompts.shape[1]:
        raise ValueError("[distill] length must exceed the prompt length.")
    if prompts.shape[0] > chunk:
        parts = [
            sample_text(
                model, prompts[i : i + chunk], length, temperature=temperature, seed=seed + i
            )
            for i in range(0, prompts.shape[0], chunk)
        ]
        return mx.concatenate(parts)
    from mlx_lm.models.cache import make_prompt_cache

    key = mx.random.key(seed)
    cache = make_prompt_cache(model)
    logits = model(prompts, cache=cache)[:, -1]
    out = [prompts]
    for _ in range(length - prompts.shape[1]):
        key, sub = mx.random.split(key)
        token = mx.random.categorical(logits.astype(mx.float32) / temperature, key=sub)[:, None]
        out.append(token)
        logits = model(token, cache=cache)[:, -1]
        mx.eval(token, logits)
    return mx.concatenate(out, axis=1)


def _swap_in(model: nn.Module) -> int:
    from ..nn import LowBitLinear

    swapped = []
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, LowBitLinear):
            if module.activation_bits:
                raise ValueError(
                    f"[distill] Layer {path!r} has activation_bits={module.activation_bits}; "
                    "distillation trains float activations only."
                )
            layer = FakeQuantLinear.from_qweight(
                module.qweight, module.get("bias"), module.rotation
            )
            swapped.append((path, layer))
    if not swapped:
        raise ValueError("[distill] The model has no low-bit linear layers to train.")
    model.update_modules(tree_unflatten(swapped))
    return len(swapped)


def _swap_out(model: nn.Module) -> None:
    from ..nn import LowBitLinear

    packed = []
    for path, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, FakeQuantLinear):
            layer = LowBitLinear.from_qweight(
                module.to_qweight(), module.get("bias"), rotation=module._rotation
            )
            packed.append((path, layer))
    model.update_modules(tree_unflatten(packed))


def _float_dtypes(model: nn.Module) -> Dict[str, mx.Dtype]:
    return {
        k: v.dtype
        for k, v in tree_flatten(model.parameters())
        if mx.issubdtype(v.dtype, mx.floating)
    }


def _cast(model: nn.Module, dtypes: Dict[str, mx.Dtype]) -> None:
    params = dict(tree_flatten(model.parameters()))
    model.update(
        tree_unflatten([(k, params[k].astype(d)) for k, d in dtypes.items() if k in params])
    )


def _trainable(model: nn.Module, train_weights: bool) -> None:
    """Unfreeze the latent weights (optionally), scales, biases and norms."""
    model.freeze()
    for _, module in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module):
        if isinstance(module, FakeQuantLinear):
            keys = ["scales"] + (["biases"] if "biases" in module else [])
            keys += ["weight"] if train_weights else []
            module.unfreeze(keys=keys, recurse=False)
        elif isinstance(module, (nn.RMSNorm, nn.LayerNorm)):
            module.unfreeze()


def learning_rate_at(
    step: int,
    elapsed: float,
    steps: int,
    warmup: int,
    learning_rate: float,
    time_limit: Optional[float] = None,
) -> float:
    """The rate for ``step`` (0-based) after ``elapsed`` seconds of training:
    a linear warmup over ``warmup`` steps, then a cosine decay to a tenth of
    ``learning_rate`` over the larger of the step fraction and, with a
    ``time_limit``, the time fraction."""
    warmup = max(1, min(warmup, steps))
    if step < warmup:
        return learning_rate * (step + 1) / warmup
    done = (step - warmup) / max(1, steps - warmup)
    if time_limit is not None:
        done = max(done, elapsed / time_limit)
    done = min(1.0, done)
    low = learning_rate / 10
    return low + (learning_rate - low) * 0.5 * (1.0 + math.cos(math.pi * done))


def check_micro_batch(micro_batch: Optional[int], batch_size: int) -> int:
    """The rows per pass (``batch_size`` for None); refuses one that is not
    >= 1 or does not divide ``batch_size``."""
    micro = batch_size if micro_batch is None else micro_batch
    if micro < 1 or batch_size % micro:
        raise ValueError(
            f"[distill] micro_batch={micro_batch} must be >= 1 and divide batch_size={batch_size}."
        )
    return micro


def distill_model(
    model: nn.Module,
    teacher: nn.Module,
    batches: mx.array,
    *,
    held_out: Optional[mx.array] = None,
    steps: int = 200,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    warmup: int = 10,
    temperature: float = 1.0,
    train_weights: bool = True,
    seed: int = 0,
    compile: bool = True,
    micro_batch: Optional[int] = None,
    time_limit: Optional[float] = None,
    compute_dtype: mx.Dtype = mx.float32,
    progress: Optional[Callable[[int, float], None]] = None,
) -> DistillResult:
    """Train a quantized ``model`` (its low-bit linear layers in place) to
    match ``teacher``'s next-token distributions on ``batches`` (S, L) token
    ids, then pack the layers back into their formats.

    Args:
        model: A model whose chosen layers are :class:`~mlx_lowbit.nn.LowBitLinear`
          (from RTN or GPTQ); modified in place.
        teacher: The float model (not modified).
        batches: Training token ids, (S, L); each step draws ``batch_size`` rows.
        held_out: Token ids (S', L') for the KL before and after (default: the
          first rows of ``batches``).
        steps, batch_size, learning_rate, warmup: Adam with linear warmup,
          then cosine decay to a tenth of ``learning_rate``.
        temperature: Of the KL. Default: ``1.0``.
        train_weights: Also train the latent weights (straight-through), so
          codes can change. Default: ``True``. ``False``: scales, biases and
          norms only.
        seed: Batch order.
        compile: ``mx.compile`` the training step. Default: ``True``.
        micro_batch: Rows per forward/backward pass; a step's gradient is the
          mean over its micro-batches (the same step, in less memory: at
          32 x 256 tokens and SmolLM2's 49k vocabulary one pass holds ~30 GB).
          Must divide ``batch_size``. Default: ``batch_size``.
        time_limit: Seconds of training (after setup) at most: training stops
          after the step that reaches it, and the result records the steps
          done. The cosine decay follows whichever of ``steps`` and
          ``time_limit`` runs out first, so a run stopped by the clock still
          ends at the low learning rate (one that stops at full rate leaves
          the straight-through codes flipping). For runs that must end by a
          deadline. Default: no limit.
        compute_dtype: Of the training passes' activations and products
          (the teacher's too). The trained parameters stay float32 (the
          optimizer updates those; a step of 1e-4 is below bfloat16's
          resolution near 1), and each low-bit layer rounds its float32
          latent weight to the grid before the product is cast, so its codes
          are the ones it will be packed with. ``mx.bfloat16`` runs a GPU's
          tensor cores and halves the activations' memory. The held-out KL
          is measured in float32 whatever this is. Default: ``mx.float32``.
        progress: Called with ``(step, loss)`` after every step.

    Returns:
        DistillResult: the loss curve and the held-out KL before and after.
    """
    if batches.ndim != 2 or batches.shape[0] < 1 or batches.shape[1] < 2:
        raise ValueError(f"[distill] batches must be (S, L) token ids, got {tuple(batches.shape)}.")
    if steps < 1 or batch_size < 1:
        raise ValueError("[distill] steps and batch_size must be >= 1.")
    if not learning_rate > 0 or not temperature > 0:
        raise ValueError("[distill] learning_rate and temperature must be > 0.")
    micro = check_micro_batch(micro_batch, batch_size)
    if compute_dtype not in (mx.float32, mx.bfloat16, mx.float16):
        raise ValueError(
            f"[distill] compute_dtype must be float32, bfloat16 or float16, got {compute_dtype}."
        )
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"[distill] time_limit must be > 0 seconds, got {time_limit!r}.")
    start = time.perf_counter()
    dtypes = _float_dtypes(model)
    _swap_in(model)
    _cast(model, {k: mx.float32 for k in _float_dtypes(model)})
    teacher = copy.deepcopy(teacher)
    _cast(teacher, {k: mx.float32 for k in _float_dtypes(teacher)})
    teacher.freeze()
    _trainable(model, train_weights)

    held = held_out if held_out is not None else batches[: min(8, batches.shape[0])]
    held_logits = teacher(held)
    mx.eval(held_logits)
    # Cast for the training passes: the teacher for good; the student's
    # parameters but the low-bit layers' (which cast their own products)
    # inside each pass, so that the float32 ones are what the optimizer sees.
    cast_keys = []
    if compute_dtype != mx.float32:
        _cast(teacher, {k: compute_dtype for k in _float_dtypes(teacher)})
        lowbit = {
            path
            for path, m in tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module)
            if isinstance(m, FakeQuantLinear)
        }
        cast_keys = [k for k in _float_dtypes(model) if k.rsplit(".", 1)[0] not in lowbit]

    def held_kl() -> float:
        return kl_divergence(model(held), held_logits, temperature).item()

    result = DistillResult(steps=steps, tokens=steps * batch_size * batches.shape[1])
    result.kl_before = held_kl()

    optimizer = optim.Adam(
        learning_rate=learning_rate_at(0, 0.0, steps, warmup, learning_rate, time_limit)
    )

    def loss_fn(m, x, target):
        if not cast_keys:
            return kl_divergence(m(x), target, temperature)
        params = dict(tree_flatten(m.parameters()))
        kept = [(k, params[k]) for k in cast_keys]
        # The gradient flows back through the casts to the float32 parameters.
        m.update(tree_unflatten([(k, v.astype(compute_dtype)) for k, v in kept]))
        loss = kl_divergence(m(x), target, temperature)
        m.update(tree_unflatten(kept))
        return loss

    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, target):
        loss, grads = loss_and_grad(model, x, target)
        optimizer.update(model, grads)
        return loss

    def grads_of(x, target):
        return loss_and_grad(model, x, target)

    def update(grads):
        optimizer.update(model, grads)

    if compile:
        state = [model.state, optimizer.state]
        step = mx.compile(step, inputs=state, outputs=state)
        grads_of = mx.compile(grads_of, inputs=model.state, outputs=model.state)
        update = mx.compile(update, inputs=state, outputs=state)

    rng = np.random.default_rng(seed)
    parts = batch_size // micro
    train_start = time.perf_counter()
    for i in range(steps):
        elapsed = time.perf_counter() - train_start
        optimizer.learning_rate = learning_rate_at(
            i, elapsed, steps, warmup, learning_rate, time_limit
        )
        rows = mx.array(rng.integers(0, batches.shape[0], size=batch_size))
        x = batches[rows]
        if parts == 1:
            loss = step(x, mx.stop_gradient(teacher(x)))
        else:
            # Gradient accumulation: each micro-batch's graph is evaluated
            # (and freed) before the next is built.
            loss, grads = 0.0, None
            for j in range(0, batch_size, micro):
                xj = x[j : j + micro]
                lj, gj = grads_of(xj, mx.stop_gradient(teacher(xj)))
                loss = loss + lj / parts
                grads = gj if grads is None else tree_map(mx.add, grads, gj)
                mx.eval(loss, grads)
            update(tree_map(lambda g: g / parts, grads))
        mx.eval(loss, model.parameters(), optimizer.state)
        result.losses.append(loss.item())
        if progress:
            progress(i + 1, result.losses[-1])
        if time_limit is not None and time.perf_counter() - train_start >= time_limit:
            break

    done = len(result.losses)
    result.steps, result.tokens = done, done * batch_size * batches.shape[1]
    result.kl_after = held_kl()
    model.unfreeze()  # the packed layers freeze themselves
    _swap_out(model)
    _cast(model, dtypes)
    result.seconds = time.perf_counter() - start
    return result
