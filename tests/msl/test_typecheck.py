"""The type-check (clang against the shim) and the lint: what Apple's compiler rejects is rejected,
with the diagnostic pointing at the .metal line; valid MLX-style MSL is accepted."""

import subprocess
import sys

import numpy as np
import pytest
import runner
from msl_testing import KERNELS, REPO

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n"
PARAMS = "device float* out [[buffer(0)]], uint tid [[thread_position_in_grid]]"


def kernel(body: str, params: str = PARAMS) -> str:
    return HEAD + f"[[kernel]] void k({params}) {{\n{body}\n}}\n"


def rejected(source: str, name: str) -> runner.MSLCheckError:
    with pytest.raises(runner.MSLCheckError) as e:
        runner.check(source, name=name)
    return e.value


# (name, source, text the error must contain, line of the error in the source or None)
REJECTED = [
    (
        "threadgroup_to_device",
        HEAD
        + "void f(device float* p) {}\n[[kernel]] void k(device float* out [[buffer(0)]]) {\n  threadgroup float s[4];\n  f(s);\n}\n",
        "no known conversion from '__local float[4]' to '__global float *'",
        6,
    ),
    (
        "device_to_thread",
        kernel("  thread float* p = out;"),
        "cannot initialize a variable of type 'float *' with an lvalue of type '__global float *'",
        4,
    ),
    (
        "threadgroup_to_thread",
        kernel("  threadgroup float s[4];\n  thread float* p = s;"),
        "with an lvalue of type '__local float[4]'",
        5,
    ),
    (
        "device_to_threadgroup",
        kernel("  threadgroup float* p = out;"),
        "'__local float *' with an lvalue of type '__global float *'",
        4,
    ),
    (
        "write_through_constant_pointer",
        kernel("  c[0] = 1.0f;", "constant float* c [[buffer(0)]]"),
        "read-only variable is not assignable",
        4,
    ),
    (
        "write_through_constant_reference",
        HEAD
        + "struct P { uint n; };\n[[kernel]] void k(constant P& p [[buffer(0)]]) {\n  p.n = 3;\n}\n",
        "cannot assign to variable 'p' with const-qualified type 'const P &'",
        5,
    ),
    (
        "implicit_float2_to_half2",
        kernel("  float2 f = float2(1.0f, 2.0f);\n  half2 h = f;"),
        "cannot initialize a variable of type 'half2' (vector of 2 'half' values) with an lvalue of type 'float2'",
        5,
    ),
    (
        "implicit_half4_to_float4",
        kernel("  half4 h = half4(1.0h);\n  float4 f = h;"),
        "cannot initialize a variable of type 'float4'",
        5,
    ),
    (
        "implicit_float4_to_int4",
        kernel("  int4 i = float4(1.0f);"),
        "cannot initialize a variable of type 'int4'",
        4,
    ),
    (
        "too_few_vector_components",
        kernel("  float4 v = float4(1.0f, 2.0f);"),
        "vector constructor: the arguments do not supply exactly as many components",
        4,
    ),
    (
        "too_many_vector_components",
        kernel("  float3 v = float3(float2(1.0f), float2(2.0f));"),
        "vector constructor: the arguments do not supply exactly as many components",
        4,
    ),
    (
        "vector_argument_of_another_type",
        kernel("  float4 v = float4(half2(1.0h), 1.0f, 2.0f);"),
        "a vector argument's element type differs",
        4,
    ),
    (
        "cuda_syncthreads",
        kernel("  __syncthreads();"),
        "use of undeclared identifier '__syncthreads'",
        4,
    ),
    (
        "cuda_threadidx",
        kernel("  out[threadIdx.x] = 0;"),
        "use of undeclared identifier 'threadIdx'",
        4,
    ),
    (
        "undeclared_name",
        kernel("  out[0] = undeclared_thing;"),
        "use of undeclared identifier 'undeclared_thing'",
        4,
    ),
    (
        "as_type_size_mismatch",
        kernel("  uint u = as_type<uint>(half(1.0h));"),
        "as_type: the source and destination types differ in size",
        4,
    ),
    (
        "simdgroup_load_element_type",
        HEAD
        + "[[kernel]] void k(device half* in [[buffer(0)]]) {\n  simdgroup_float8x8 m;\n  simdgroup_load(m, in);\n}\n",
        "no matching function for call to 'simdgroup_load'",
        5,
    ),
    (
        "bfloat_max_is_ambiguous",
        kernel("  bfloat a = bfloat(1.0f);\n  out[0] = max(a, a);"),
        "no matching function for call to 'max'",
        5,
    ),
    (
        "threadgroup_variable_initialised",
        kernel("  threadgroup float x = 0;"),
        "automatic variable qualified with an address space",
        4,
    ),
    (
        "buffer_parameter_by_value",
        kernel("", "float x [[buffer(0)]]"),
        "a [[buffer(i)]] parameter must be a pointer or a reference",
        3,
    ),
    (
        "buffer_parameter_thread_pointer",
        kernel("", "thread float* x [[buffer(0)]]"),
        "a [[buffer(i)]] parameter must be a device pointer or a constant pointer",
        3,
    ),
    (
        "threadgroup_parameter_device_pointer",
        kernel("", "device float* t [[threadgroup(0)]]"),
        "a [[threadgroup(i)]] parameter must be a threadgroup pointer",
        3,
    ),
    (
        "position_parameter_float",
        kernel("", "device float* o [[buffer(0)]], float tid [[thread_position_in_grid]]"),
        "must be uint, ushort, or a 2- or 3-vector of them",
        3,
    ),
    (
        "index_parameter_vector",
        kernel(
            "",
            "device float* o [[buffer(0)]], uint2 lane [[thread_index_in_simdgroup]]",
        ),
        "this position attribute's parameter must be uint or ushort",
        3,
    ),
    (
        "kernel_returning_a_value",
        HEAD + "[[kernel]] int k(device float* out [[buffer(0)]]) {\n  return 0;\n}\n",
        "a [[kernel]] function must return void",
        3,
    ),
]


@pytest.mark.parametrize("name,source,message,line", REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected(name, source, message, line):
    error = rejected(source, f"{name}.metal")
    assert message in str(error)
    if line is not None:
        assert f"{name}.metal:{line}:" in error.diagnostics


def test_system_headers_are_not_available():
    error = rejected("#include <cmath>\n" + kernel(""), "cmath.metal")
    assert "'cmath' file not found" in str(error)


@pytest.mark.parametrize(
    "name,source,message",
    [
        (
            "double",
            kernel("  double d = out[0];\n  out[0] = float(d);"),
            "double.metal:4: 'double' is not supported in MSL",
        ),
        (
            "duplicate_buffer_index",
            kernel("", "device float* a [[buffer(1)]], device float* b [[buffer(1)]]"),
            "duplicate_buffer_index.metal:3: kernel 'k': [[buffer(1)]] is used by both 'a' and 'b'",
        ),
        (
            "duplicate_threadgroup_index",
            kernel(
                "",
                "threadgroup float* a [[threadgroup(0)]], threadgroup float* b [[threadgroup(0)]]",
            ),
            "[[threadgroup(0)]] is used by both 'a' and 'b'",
        ),
        (
            "buffer_index_out_of_range",
            kernel("", "device float* a [[buffer(31)]]"),
            "[[buffer(31)]] is outside 0..30",
        ),
        (
            "recursion",
            HEAD
            + "int fact(int n) {\n  return n <= 1 ? 1 : n * fact(n - 1);\n}\n[[kernel]] void k(device int* out [[buffer(0)]]) {\n  out[0] = fact(out[0]);\n}\n",
            "recursion.metal:3: recursion is not allowed in MSL: fact (recursion.metal:3) -> fact (recursion.metal:3)",
        ),
        (
            "mutual_recursion",
            HEAD
            + "int odd(int n);\nint even(int n) { return n == 0 ? 1 : odd(n - 1); }\nint odd(int n) { return n == 0 ? 0 : even(n - 1); }\n"
            "[[kernel]] void k(device int* out [[buffer(0)]]) {\n  out[0] = even(out[0]);\n}\n",
            "recursion is not allowed in MSL: even (mutual_recursion.metal:4) -> odd (mutual_recursion.metal:5) -> even",
        ),
        (
            "c_style_vector_cast",
            kernel("  float4 f = float4(1.0f);\n  int4 i = (int4)f;\n  out[0] = float(i.x);"),
            "c_style_vector_cast.metal:5: C-style cast to int4",
        ),
        (
            "unattributed_parameter_of_template",
            HEAD
            + "template <typename T>\n[[kernel]] void k(device T* a [[buffer(0)]], device T* b) {\n}\n",
            "kernel 'k' parameter 'b' needs an explicit [[buffer(i)]]",
        ),
    ],
)
def test_lint(name, source, message):
    error = rejected(source, f"{name}.metal")
    assert message in str(error)
    assert error.findings and not error.diagnostics  # the lint, not clang, rejected it


@pytest.mark.parametrize(
    "name,source,message",
    [
        (
            "unsupported_attribute",
            kernel("", "texture2d<float> t [[texture(0)]]"),
            "kernel 'k': [[texture]] is not supported by the Linux harness",
        ),
        (
            "function_constant_in_a_function",
            kernel("  constant bool fc [[function_constant(0)]];"),
            "[[function_constant(i)]] must declare a program-scope `constant T name`",
        ),
        (
            "kernel_parameter_without_attribute",
            kernel("", "device float* a [[buffer(0)]], device float* b"),
            "kernel 'k' parameter 'b' has no [[buffer(i)]]",
        ),
        (
            "duplicate_host_name",
            HEAD + "template <typename T>\n[[kernel]] void k(device T* a [[buffer(0)]]) {}\n"
            'template [[host_name("k")]] [[kernel]] decltype(k<float>) k<float>;\n'
            'template [[host_name("k")]] [[kernel]] decltype(k<half>) k<half>;\n',
            "host name 'k' is already used by 'k < float >'",
        ),
    ],
)
def test_rewrite_errors(name, source, message):
    assert message in str(rejected(source, f"{name}.metal"))


def test_metal_predefined_macros():
    source = (
        "#if __METAL_VERSION__ != 310 || !defined(__METAL__) || !defined(__HAVE_BFLOAT__)\n#error missing\n#endif\n"
        "#if defined(__x86_64__) || defined(__linux__) || defined(__GNUC__)\n#error host macro\n#endif\n"
        + kernel("")
    )
    runner.check(source, name="macros.metal")
    with pytest.raises(runner.MSLCheckError, match="#error missing"):
        runner.check(source, defines=["__METAL_VERSION__=300"], name="macros.metal")


def test_mlx_style_source_is_accepted_and_runs():
    runner.check(KERNELS / "mlx_style.metal")
    a = np.arange(64, dtype=np.float32) - 20
    for tname, data, dtype in [
        ("float32", a, np.float32),
        ("float16", a.astype(np.float16), np.float16),
        ("bfloat16", runner.float_to_bfloat16(a), None),
    ]:
        out = runner.run(
            KERNELS / "mlx_style.metal",
            f"frag_identity_{tname}",
            grid=1,
            threadgroup=32,
            buffers={0: data, 1: np.zeros(64, np.float32)},
        )[1]
        np.testing.assert_array_equal(out, a, err_msg=tname)
    h = np.array([[1.5, -2.5, 3.75, -4.25]], np.float16)
    out = runner.run(
        KERNELS / "mlx_style.metal",
        "convert",
        grid=1,
        threadgroup=1,
        buffers={0: h, 1: np.zeros((1, 4), np.float32)},
    )[1]
    np.testing.assert_array_equal(out[0], [1.5, -2.5, 3.0, -4.0])


def test_diagnostics_name_the_header_line(tmp_path):
    (tmp_path / "scale.h").write_text(
        "#pragma once\ninline float twice(float x) {\n  return x * undeclared_scale;\n}\n"
    )
    source = '#include "scale.h"\n' + kernel("  out[0] = twice(1.0f);")
    assert "'scale.h' file not found" in str(rejected(source, "uses_header.metal"))
    with pytest.raises(runner.MSLCheckError) as e:
        runner.check(source, include_dirs=[tmp_path], name="uses_header.metal")
    assert f"{tmp_path / 'scale.h'}:3:" in e.value.diagnostics
    assert "use of undeclared identifier 'undeclared_scale'" in e.value.diagnostics


def test_command_line_entry_point(tmp_path):
    good, bad = tmp_path / "good.metal", tmp_path / "bad.metal"
    good.write_text(kernel("  out[tid] = 1.0f;"))
    bad.write_text(kernel("  __syncthreads();"))
    cmd = [sys.executable, str(REPO / "tools" / "msl" / "check.py")]
    ok = subprocess.run(cmd + [str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and f"ok   {good}" in ok.stdout
    fail = subprocess.run(
        cmd + [str(good), str(bad), "-I", str(tmp_path)], capture_output=True, text=True
    )
    assert fail.returncode == 1
    assert (
        f"FAIL {bad}" in fail.stderr
        and "bad.metal:4:" in fail.stderr
        and "'__syncthreads'" in fail.stderr
    )


def test_template_type_constructed_from_a_vector_element():
    # T(v[i]) with T a template parameter: a vector element is no addressable
    # lvalue (like a bit-field), so the constructor helper must take values.
    source = """#include <metal_stdlib>
using namespace metal;
template <typename T>
[[kernel]] void widen(device const float* x [[buffer(0)]], device T* y [[buffer(1)]],
                      uint i [[thread_position_in_grid]]) {
  float2 v = float2(x[2 * i], x[2 * i + 1]);
  y[2 * i] = T(v[0]);
  y[2 * i + 1] = T(v.y);
}
template [[host_name("widen_half")]] [[kernel]] decltype(widen<half>) widen<half>;
"""
    x = np.array([1.5, -2.25, 3.0, 65504.0], np.float32)
    out = runner.run(
        source,
        "widen_half",
        grid=2,
        threadgroup=2,
        buffers={0: x, 1: np.zeros(4, np.float16)},
        name="widen.metal",
    )[1]
    np.testing.assert_array_equal(out, x.astype(np.float16))
