"""Every kernel source of the package (metal/*.metal) type-checks and passes the lint, with the
include directories the package build uses: metal/ and the repository root (for headers shared
with the C++ host code)."""

import pytest
import runner
from msl_testing import REPO

METAL_FILES = sorted((REPO / "metal").glob("*.metal"))


def check_package_kernel(path, root):
    runner.check(path, include_dirs=[root / "metal", root])


@pytest.mark.parametrize("path", METAL_FILES, ids=[p.name for p in METAL_FILES])
def test_package_kernel_type_checks_and_lints(path):
    check_package_kernel(path, REPO)


def test_package_layout_includes_resolve(tmp_path):
    # The same check on a miniature package: a header shared with the host code at the root,
    # a decode header in metal/, a thin .metal that instantiates.
    (tmp_path / "mlx_lowbit").mkdir()
    (tmp_path / "metal").mkdir()
    (tmp_path / "mlx_lowbit" / "formats.h").write_text(
        "#pragma once\n#ifdef __METAL_VERSION__\n#define LOWBIT_CONST constant constexpr\n#else\n#define LOWBIT_CONST constexpr\n#endif\n"
        "LOWBIT_CONST int kTernaryPerByte = 4;\n"
    )
    (tmp_path / "metal" / "decode.h").write_text(
        '#pragma once\n#include <metal_stdlib>\n#include "mlx_lowbit/formats.h"\nusing namespace metal;\n'
        "inline float decode(uchar packed, int i) {\n  return float(int((packed >> (2 * i)) & 3) - 1);\n}\n"
    )
    kernel = tmp_path / "metal" / "ternary.metal"
    kernel.write_text(
        '#include "decode.h"\n[[kernel]] void unpack(device const uchar* w [[buffer(0)]], device float* out [[buffer(1)]],\n'
        "                   uint i [[thread_position_in_grid]]) {\n  out[i] = decode(w[i / kTernaryPerByte], i % kTernaryPerByte);\n}\n"
    )
    check_package_kernel(kernel, tmp_path)
    kernel.write_text(kernel.read_text().replace("decode(w[", "decode_missing(w["))
    with pytest.raises(
        runner.MSLCheckError,
        match="ternary.metal:4:.*use of undeclared identifier 'decode_missing'",
    ):
        check_package_kernel(kernel, tmp_path)
