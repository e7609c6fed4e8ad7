"""tests/msl: the Metal-on-Linux harness (tools/msl) and the kernels it checks."""

import sys
from pathlib import Path

TOOLS_MSL = Path(__file__).resolve().parents[2] / "tools" / "msl"
if str(TOOLS_MSL) not in sys.path:
    sys.path.insert(0, str(TOOLS_MSL))
