# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit bench`` and ``mlx-lowbit layer``: kernel tables against MLX's
own products, ablations, the report and plots (docs/BENCHMARKS.md).

run: the command and its sections; kernels: timing, devices, the kernel
tables; ablations: one study each; report: Markdown, CSV and plots; layer: the
one-layer report; common: what they share."""

from .kernels import FORMATS, QUICK
from .run import SECTIONS, bench, main, setup_arg_parser

__all__ = ["FORMATS", "QUICK", "SECTIONS", "bench", "main", "setup_arg_parser"]
