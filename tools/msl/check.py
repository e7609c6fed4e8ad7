#!/usr/bin/env python3
"""Type-check and lint .metal files on Linux, as Apple's Metal compiler would reject them.

    python tools/msl/check.py metal/*.metal -I metal -I .

Exit status 0 when every file passes, 1 when any fails (its diagnostics are printed), 2 when the
toolchain is missing. See docs/METAL_ON_LINUX.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help=".metal files to check")
    parser.add_argument(
        "-I",
        "--include-dir",
        action="append",
        default=[],
        help="#include search directory",
    )
    parser.add_argument("-D", "--define", action="append", default=[], help="NAME or NAME=VALUE")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            runner.check(path, include_dirs=args.include_dir, defines=args.define)
        except runner.ToolchainError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except (runner.MSLCheckError, FileNotFoundError) as e:
            failed += 1
            print(f"FAIL {path}\n{e}\n", file=sys.stderr)
        else:
            if not args.quiet:
                print(f"ok   {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
