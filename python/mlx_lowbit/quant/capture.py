# Copyright © 2026 mlx-lowbit contributors.
"""Input Hessians of a model's linear layers from calibration batches.

Each chosen layer is wrapped for the duration of the pass; the wrapper adds
X^T X of its input (float32) to a running sum and calls the layer unchanged.
"""

from typing import Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten


class _StopForward(Exception):
    """Raised once every recorder has seen the batch: the rest of the
    forward pass is not needed."""


class _Recorder(nn.Module):
    def __init__(self, inner: nn.Module, seen: Optional[List[int]] = None):
        super().__init__()
        self.inner = inner
        self.freeze()
        self._sum: Optional[mx.array] = None
        self._rows = 0
        self._seen = seen  # [calls this batch, recorders], shared; None: never stop

    def __call__(self, x: mx.array) -> mx.array:
        a = x.reshape(-1, x.shape[-1]).astype(mx.float32)
        xtx = a.T @ a
        self._sum = xtx if self._sum is None else self._sum + xtx
        self._rows += a.shape[0]
        mx.eval(self._sum)
        if self._seen is not None:
            self._seen[0] += 1
            if self._seen[0] == self._seen[1]:
                raise _StopForward
        return self.inner(x)

    def hessian(self) -> mx.array:
        return self._sum / self._rows


def input_hessians(
    model: nn.Module,
    batches: mx.array,
    layers: List[str],
    *,
    batch_size: int = 4,
    progress: Optional[Callable[[int], None]] = None,
    stop_early: bool = False,
) -> Dict[str, mx.array]:
    """``{path: H}`` for the linear layers at ``layers`` (module paths), with
    H = X^T X / n over every token of ``batches`` (B, L). The model is left
    as it was, also when the pass fails. ``stop_early``: end each forward
    pass once every layer has seen its input (the layers of one block, for
    sequential calibration); each layer must be called once per pass."""
    modules = dict(tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module))
    missing = [p for p in layers if p not in modules]
    if missing:
        raise ValueError(f"[calib] No layer at {', '.join(missing)}.")
    seen = [0, len(layers)] if stop_early else None
    recorders: List[Tuple[str, _Recorder]] = [(p, _Recorder(modules[p], seen)) for p in layers]
    model.update_modules(tree_unflatten(recorders))
    try:
        for i in range(0, batches.shape[0], batch_size):
            if seen is not None:
                seen[0] = 0
            try:
                mx.eval(model(batches[i : i + batch_size]))
            except _StopForward:
                pass
            if progress:
                progress(min(batch_size, batches.shape[0] - i))
    finally:
        model.update_modules(tree_unflatten([(p, r.inner) for p, r in recorders]))
    return {p: r.hessian() for p, r in recorders}
