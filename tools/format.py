"""Format (or, with --check, verify) the tree: ruff for Python, clang-format for C++ and MSL.

The pinned versions live in .pre-commit-config.yaml and .ci/run; a different
clang-format release formats differently, so the check refuses to run with one.
"""

import argparse
import re
import subprocess
import sys
from pathlib import Path

CLANG_FORMAT_VERSION = "19.1.7"
CXX_SUFFIXES = {".cpp", ".h", ".metal"}
PY_SUFFIXES = {".py"}


def tracked(root: Path, suffixes: set) -> list:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [p for p in out if Path(p).suffix in suffixes and (root / p).is_file()]


def clang_format_binary() -> str:
    for name in ("clang-format", f"clang-format-{CLANG_FORMAT_VERSION.split('.')[0]}"):
        try:
            text = subprocess.run([name, "--version"], capture_output=True, text=True).stdout
        except FileNotFoundError:
            continue
        if re.search(rf"\b{re.escape(CLANG_FORMAT_VERSION)}\b", text):
            return name
    sys.exit(
        f"clang-format {CLANG_FORMAT_VERSION} not found: pip install clang-format=={CLANG_FORMAT_VERSION}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail on unformatted files, change nothing"
    )
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    py = tracked(root, PY_SUFFIXES)
    cxx = tracked(root, CXX_SUFFIXES)
    if args.check:
        steps = [
            [sys.executable, "-m", "ruff", "check", *py],
            [sys.executable, "-m", "ruff", "format", "--check", *py],
            [clang_format_binary(), "--dry-run", "-Werror", *cxx],
        ]
    else:
        steps = [
            [sys.executable, "-m", "ruff", "check", "--fix", *py],
            [sys.executable, "-m", "ruff", "format", *py],
            [clang_format_binary(), "-i", *cxx],
        ]
    failed = [
        " ".join(s[2:4]) if s[0] == sys.executable else "clang-format"
        for s in steps
        if subprocess.run(s, cwd=root).returncode != 0
    ]
    if failed:
        sys.exit(f"format check failed ({', '.join(failed)}): run `python tools/format.py`")
    print(
        f"formatted: {len(py)} Python and {len(cxx)} C++/MSL files"
        + (" (checked)" if args.check else "")
    )


if __name__ == "__main__":
    main()
