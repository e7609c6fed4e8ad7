# Copyright © 2026 mlx-lowbit contributors.
"""Input Hessians of a model's linear layers from calibration batches.

Each chosen layer is wrapped for the duration of the pass; the wrapper adds
X^T X of its input (float32) to a running sum and calls the layer unchanged.
"""

from typing import Callable, Dict, List, Optional, Tuple

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_unflatten


class _Recorder(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.freeze()
        self._sum: Optional[mx.array] = None
        self._rows = 0

    def __call__(self, x: mx.array) -> mx.array:
        a = x.reshape(-1, x.shape[-1]).astype(mx.float32)
        xtx = a.T @ a
        self._sum = xtx if self._sum is None else self._sum + xtx
        self._rows += a.shape[0]
        mx.eval(self._sum)
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
) -> Dict[str, mx.array]:
    """``{path: H}`` for the linear layers at ``layers`` (module paths), with
    H = X^T X / n over every token of ``batches`` (B, L). The model is left
    as it was, also when the pass fails."""
    modules = dict(tree_flatten(model.leaf_modules(), is_leaf=nn.Module.is_module))
    missing = [p for p in layers if p not in modules]
    if missing:
        raise ValueError(f"[calib] No layer at {', '.join(missing)}.")
    recorders: List[Tuple[str, _Recorder]] = [(p, _Recorder(modules[p])) for p in layers]
    model.update_modules(tree_unflatten(recorders))
    try:
        for i in range(0, batches.shape[0], batch_size):
            mx.eval(model(batches[i : i + batch_size]))
            if progress:
                progress(min(batch_size, batches.shape[0] - i))
    finally:
        model.update_modules(tree_unflatten([(p, r.inner) for p, r in recorders]))
    return {p: r.hessian() for p, r in recorders}
