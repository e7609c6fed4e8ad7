# Copyright © 2026 mlx-lowbit contributors.
"""Lets mlx-lm's own commands (``mlx_lm.generate``, ``chat``, ``server`` ...)
load mlx-lowbit model directories in a process that never imports mlx_lowbit.

``mlx_lowbit-autoload.pth`` (installed into site-packages with the package)
imports this module at interpreter start. It only puts a finder on
``sys.meta_path`` (no MLX import, nothing else loaded). When ``mlx_lm`` is
imported, the finder lets the import run and then imports ``mlx_lowbit``,
which teaches MLX's layers our formats (``mlx_lowbit.lm.hook``), so
``mlx_lm.load`` rebuilds our layers from ``config.json``. The same happens
after ``mlx_lm.utils`` (whose ``dequantize_model`` learns our layers) and
``mlx_lm.models.bitlinear_layers`` (BitNet's layer) and
``mlx_lm.models.switch_layers`` (MoE experts) are imported.

Set ``MLX_LOWBIT_NO_AUTOLOAD=1`` to turn this off.
"""

import os
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder

# mlx_lm.utils: before mlx_lm.convert binds its dequantize_model.
WATCHED = (
    "mlx_lm.utils",
    "mlx_lm",
    "mlx_lm.models.bitlinear_layers",
    "mlx_lm.models.switch_layers",  # MoE experts (SwitchLinear)
)


def _install() -> None:
    try:
        from mlx_lowbit.lm import hook
    except Exception as e:  # a broken install must not break mlx-lm itself
        import warnings

        warnings.warn(
            f"mlx-lowbit is installed but failed to import ({e}); mlx-lm cannot load mlx-lowbit models."
        )
        return
    hook.install()


class _Finder(MetaPathFinder):
    """Finds nothing itself: for a watched module it takes the normal spec and
    runs :func:`_install` after the module's code has run."""

    def find_spec(self, name, path=None, target=None):
        if name not in WATCHED:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _install()

        spec.loader.exec_module = exec_module  # this module's own loader instance
        return spec


def enable() -> None:
    if os.environ.get("MLX_LOWBIT_NO_AUTOLOAD") or any(
        isinstance(f, _Finder) for f in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, _Finder())


enable()
