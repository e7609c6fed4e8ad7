# Copyright © 2026 mlx-lowbit contributors.
"""Keeps `from conftest import ...` in tests/*.py pointing at tests/conftest.py.

pytest imports every conftest.py outside a package as the module `conftest`,
the last one replacing the earlier: tests/msl/conftest.py (the harness's
sys.path setup) would otherwise shadow tests/conftest.py (the shared test
helpers) for the test modules collected after tests/msl/. Nothing in
tests/msl imports `conftest` by name.
"""

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent / "tests"
_helpers = None


def pytest_plugin_registered(plugin, manager):
    global _helpers
    if getattr(plugin, "__name__", None) != "conftest":
        return
    path = Path(getattr(plugin, "__file__", "") or "").resolve()
    if path == _TESTS / "conftest.py":
        _helpers = plugin
    elif _helpers is not None and path.parent != _TESTS.parent:
        sys.modules["conftest"] = _helpers
