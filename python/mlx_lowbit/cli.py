# Copyright © 2026 mlx-lowbit contributors.
"""``mlx-lowbit <command>``: dispatches to the module that owns the command."""

import importlib
import sys

# command -> module with a main(argv) entry point
COMMANDS = {
    "layer": "mlx_lowbit.bench.layer",
    "convert": "mlx_lowbit.lm.convert",
    "demo": "mlx_lowbit.demo",
    "bench": "mlx_lowbit.bench",
    "verify-metal": "mlx_lowbit.verify_metal",
}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: mlx-lowbit <command> [options]\n\ncommands:")
        for name, module in COMMANDS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
            print(f"  {name:<13} {doc}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
