"""Dispatch semantics (dispatchThreadgroups / dispatchThreads), threadgroup memory and the runner's API."""

import itertools
import os

import numpy as np
import pytest
import runner
from msl_testing import KERNELS, pack

DISPATCH = KERNELS / "dispatch.metal"
SENTINEL = 0xFFFFFFFF


def expected_positions(groups, nominal, grid_threads, partial):
    """thread linear grid index -> the 20 values `positions` writes."""
    expected = {}
    for g in itertools.product(*(range(n) for n in groups)):
        size = [
            (min(nominal[d], grid_threads[d] - g[d] * nominal[d]) if partial else nominal[d])
            for d in range(3)
        ]
        n = size[0] * size[1] * size[2]
        for lz, ly, lx in itertools.product(range(size[2]), range(size[1]), range(size[0])):
            pos = [g[d] * nominal[d] + (lx, ly, lz)[d] for d in range(3)]
            index = lx + ly * size[0] + lz * size[0] * size[1]
            linear = (pos[2] * grid_threads[1] + pos[1]) * grid_threads[0] + pos[0]
            expected[linear] = [
                *pos,
                lx,
                ly,
                lz,
                g[0],
                g[1],
                *size,
                *groups,
                grid_threads[0],
                grid_threads[1],
                index,
                index % 32,
                (index // 32) * 100 + (n + 31) // 32,
                32,
            ]
    return expected


def check_positions(out, expected, total):
    out = out.reshape(total, 20)
    for linear in range(total):
        if linear in expected:
            assert list(out[linear]) == expected[linear], f"thread at grid index {linear}"
        else:
            assert (out[linear] == SENTINEL).all()


def test_dispatch_threadgroups_positions():
    groups, tg = (
        (3, 2, 2),
        (
            8,
            3,
            2,
        ),
    )  # 48 threads per threadgroup: a partial second simdgroup
    grid_threads = [groups[d] * tg[d] for d in range(3)]
    total = int(np.prod(grid_threads))
    out = runner.run(
        DISPATCH,
        "positions",
        grid=groups,
        threadgroup=tg,
        buffers={0: np.full(total * 20, SENTINEL, np.uint32)},
    )[0]
    check_positions(out, expected_positions(groups, tg, grid_threads, partial=False), total)


def test_dispatch_threads_makes_partial_edge_threadgroups():
    grid_threads, tg = (10, 5, 1), (4, 4, 1)  # edge threadgroups of 2 columns and 1 row
    groups = tuple(-(-grid_threads[d] // tg[d]) for d in range(3))
    total = int(np.prod(grid_threads))
    out = runner.run(
        DISPATCH,
        "positions",
        grid=grid_threads,
        threadgroup=tg,
        dispatch="threads",
        buffers={0: np.full(total * 20, SENTINEL, np.uint32)},
    )[0]
    expected = expected_positions(groups, tg, grid_threads, partial=True)
    assert len(expected) == total  # exactly the grid's threads ran
    check_positions(out, expected, total)
    corner = out.reshape(5, 10, 20)[4, 9]
    assert list(corner[8:11]) == [
        2,
        1,
        1,
    ]  # threads_per_threadgroup of the corner threadgroup


def test_scalar_position_forms_are_the_x_components():
    out = runner.run(
        DISPATCH,
        "positions_scalar",
        grid=70,
        threadgroup=32,
        dispatch="threads",
        buffers={0: np.zeros(280, np.uint32)},
    )[0]
    gid = np.arange(70)
    np.testing.assert_array_equal(
        out.reshape(70, 4),
        np.stack([gid, gid % 32, gid // 32, np.where(gid < 64, 32, 6)], 1),
    )


@pytest.mark.parametrize("order,seed", [("fixed", 0), ("shuffled", 0), ("shuffled", 1)])
def test_threadgroup_order(order, seed):
    out = runner.run(
        DISPATCH,
        "threadgroup_order",
        grid=16,
        threadgroup=1,
        buffers={0: np.zeros(1, np.uint32), 1: np.zeros(16, np.uint32)},
        order=order,
        seed=seed,
    )[1]
    assert sorted(out) == list(range(16))
    if order == "fixed":
        assert list(out) == list(range(16))
    else:
        assert list(out) != list(range(16))
        again = runner.run(
            DISPATCH,
            "threadgroup_order",
            grid=16,
            threadgroup=1,
            buffers={0: np.zeros(1, np.uint32), 1: np.zeros(16, np.uint32)},
            seed=seed,
        )[1]
        np.testing.assert_array_equal(out, again)  # seeded: reproducible


@pytest.mark.parametrize("sanitizer", [None, "address"])
def test_threadgroup_memory_is_poisoned_with_nan_before_every_threadgroup(sanitizer):
    out = runner.run(
        DISPATCH,
        "read_before_write",
        grid=3,
        threadgroup=64,
        buffers={0: np.zeros(192, np.uint32), 1: np.zeros(192, np.uint16)},
        threadgroup_buffers={0: 128},
        order="fixed",  # threadgroups 1 and 2 run after 0 wrote its memory
        sanitizer=sanitizer,
    )
    np.testing.assert_array_equal(out[0], 0x7FA07FA0)
    np.testing.assert_array_equal(out[1], 0x7FA0)
    as_float = out[0].view(np.float32)
    assert np.isnan(as_float).all()
    assert not (out[0] & 0x00400000).any()  # quiet bit clear: a signalling NaN as float32
    assert np.isnan(out[1].view(np.float16)).all()
    assert np.isnan(runner.bfloat16_to_float(out[1])).all()


def test_static_and_dynamic_threadgroup_memory_within_32k():
    out = runner.run(
        DISPATCH,
        "static_and_dynamic",
        grid=1,
        threadgroup=32,
        buffers={0: np.zeros(32, np.float32)},
        threadgroup_buffers={0: 16384},
    )[0]
    np.testing.assert_array_equal(out, 1.0 + (np.arange(32) + 1) % 32)


def test_static_plus_dynamic_threadgroup_memory_over_32k():
    with pytest.raises(runner.MSLRuntimeError) as e:
        runner.run(
            DISPATCH,
            "static_and_dynamic",
            grid=1,
            threadgroup=32,
            buffers={0: np.zeros(32, np.float32)},
            threadgroup_buffers={0: 16400},
        )
    report = e.value.report
    assert "kernel 'static_and_dynamic'" in report
    assert "threadgroup memory of 32784 bytes exceeds the 32768-byte limit" in report
    assert "'static_tg' (" in report and "16384 bytes" in report
    assert "[[threadgroup(i)]] buffers: 16400 bytes" in report


def test_static_threadgroup_memory_over_32k():
    with pytest.raises(runner.MSLRuntimeError) as e:
        runner.run(
            DISPATCH,
            "too_much_threadgroup_memory",
            grid=1,
            threadgroup=32,
            buffers={0: np.zeros(32, np.float32)},
        )
    assert "kernel 'too_much_threadgroup_memory'" in e.value.report
    assert "threadgroup memory of 32772 bytes exceeds the 32768-byte limit" in e.value.report
    assert "'b' (" in e.value.report and "dispatch.metal:" in e.value.report


def test_run_sequence_shares_buffers_between_launches():
    x = np.arange(100, dtype=np.float32)
    out = runner.run_sequence(
        DISPATCH,
        [
            runner.Launch(
                "scale",
                grid=128,
                threadgroup=64,
                dispatch="threads",
                buffers={0: "x", 1: pack("fI", 3.0, 100)},
            ),
            runner.Launch(
                "sum_into",
                grid=2,
                threadgroup=64,
                buffers={0: "x", 1: "total", 2: pack("fI", 0.0, 100)},
            ),
            runner.Launch(
                "scale",
                grid=2,
                threadgroup=64,
                buffers={0: "total", 1: pack("fI", 0.5, 1)},
            ),
        ],
        buffers={"x": x, "total": np.zeros(1, np.float32)},
    )
    np.testing.assert_array_equal(out["x"], 3 * x)
    assert out["total"][0] == 0.5 * 3 * x.sum()


def test_mlx_arrays_in_and_out():
    import mlx.core as mx

    x = mx.arange(100, dtype=mx.float32)
    total = mx.zeros((1,), dtype=mx.float32)
    out = runner.run(
        DISPATCH,
        "sum_into",
        grid=2,
        threadgroup=64,
        buffers={0: x, 1: total, 2: pack("fI", 0.0, 100)},
    )
    assert isinstance(out[1], mx.array) and out[1].dtype == mx.float32
    assert out[1].item() == 4950.0


@pytest.mark.parametrize(
    "name", ["bfloat16", "float16", "float32", "uint8", "uint16", "uint32", "int32"]
)
def test_mlx_dtypes_round_trip(name):
    import mlx.core as mx

    src = """
#include <metal_stdlib>
using namespace metal;
[[kernel]] void copy_bytes(device const uchar* in [[buffer(0)]], device uchar* out [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  out[i] = in[i];
}
"""
    a = mx.array(np.arange(16) - 3).astype(getattr(mx, name))
    nbytes = a.nbytes
    out = runner.run(
        src,
        "copy_bytes",
        grid=nbytes,
        threadgroup=1,
        buffers={0: a, 1: mx.zeros_like(a)},
        name="copy_bytes.metal",
    )
    assert out[1].dtype == a.dtype and out[1].shape == a.shape
    assert mx.array_equal(out[1], a).item()


def test_unbound_buffer_is_an_error():
    with pytest.raises(
        runner.MSLRuntimeError,
        match=r"\[\[buffer\(1\)\]\] parameter 'total' is not bound",
    ):
        runner.run(
            DISPATCH,
            "sum_into",
            grid=1,
            threadgroup=32,
            buffers={0: np.zeros(32, np.float32), 2: pack("fI", 0.0, 32)},
        )


def test_constant_struct_shorter_than_its_type_is_an_error():
    with pytest.raises(
        runner.MSLRuntimeError,
        match=r"\[\[buffer\(1\)\]\] parameter 's' is bound to 4 bytes, fewer than the 8 bytes of its type",
    ):
        runner.run(
            DISPATCH,
            "scale",
            grid=1,
            threadgroup=32,
            buffers={0: np.zeros(32, np.float32), 1: pack("f", 2.0)},
        )


def test_threadgroup_parameter_without_memory_is_an_error():
    with pytest.raises(
        runner.MSLRuntimeError,
        match=r"\[\[threadgroup\(0\)\]\] parameter 'dynamic_tg' has no memory",
    ):
        runner.run(
            DISPATCH,
            "static_and_dynamic",
            grid=1,
            threadgroup=32,
            buffers={0: np.zeros(32, np.float32)},
        )


def test_api_validation():
    buffers = {0: np.zeros(32, np.float32), 1: pack("fI", 1.0, 32)}
    with pytest.raises(ValueError, match=r"has no kernel 'nope'; its host names are \['positions'"):
        runner.run(DISPATCH, "nope", grid=1, threadgroup=32, buffers=buffers)
    with pytest.raises(ValueError, match="more than 1024 threads"):
        runner.run(DISPATCH, "scale", grid=1, threadgroup=(32, 33), buffers=buffers)
    with pytest.raises(ValueError, match="multiple of 16"):
        runner.run(
            DISPATCH,
            "static_and_dynamic",
            grid=1,
            threadgroup=32,
            buffers=buffers,
            threadgroup_buffers={0: 100},
        )
    with pytest.raises(ValueError, match="sanitizer must be"):
        runner.run(
            DISPATCH,
            "scale",
            grid=1,
            threadgroup=32,
            buffers=buffers,
            sanitizer="memory",
        )
    with pytest.raises(ValueError, match="dispatch must be"):
        runner.run(DISPATCH, "scale", grid=1, threadgroup=32, buffers=buffers, dispatch="grid")


def test_missing_clang_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MLX_LOWBIT_CLANG", "/nonexistent/clang++-19")
    runner.msl_build.clang.cache_clear()
    try:
        with pytest.raises(
            runner.ToolchainError,
            match=r"MLX_LOWBIT_CLANG='/nonexistent/clang\+\+-19' is not an executable.*apt-get install clang-19 libclang-rt-19-dev",
        ):
            runner.check("#include <metal_stdlib>\n", name="toolchain.metal")
    finally:
        runner.msl_build.clang.cache_clear()


def test_runner_loads_by_path_without_sys_path(tmp_path):
    # mlx_lowbit.testing will load tools/msl/runner.py from the checkout by its path.
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('msl_runner', {str(runner.__file__)!r})\n"
        "m = sys.modules['msl_runner'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m)\n"
        f"print(m.kernel_names({str(DISPATCH)!r})[:2])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['positions', 'positions_scalar']"


def test_an_edited_header_is_picked_up_in_the_same_process(tmp_path):
    (tmp_path / "value.h").write_text("#pragma once\n#define VALUE 1.0f\n")
    kernel = tmp_path / "k.metal"
    kernel.write_text(
        '#include <metal_stdlib>\n#include "value.h"\n[[kernel]] void k(device float* o [[buffer(0)]]) {\n  o[0] = VALUE;\n}\n'
    )
    first = runner.run(kernel, "k", grid=1, threadgroup=1, buffers={0: np.zeros(1, np.float32)})[0]
    (tmp_path / "value.h").write_text("#pragma once\n#define VALUE 2.0f\n")
    os.utime(tmp_path / "value.h", ns=(1, 10**18))  # a distinct mtime even on coarse clocks
    second = runner.run(kernel, "k", grid=1, threadgroup=1, buffers={0: np.zeros(1, np.float32)})[0]
    assert (first[0], second[0]) == (1.0, 2.0)


@pytest.mark.parametrize(
    "host,dtype", [("k_float", np.float32), ("k_half", np.float16), ("k_int", np.int32)]
)
def test_instantiation_forms(host, dtype):
    source = KERNELS / "instantiations.metal"
    assert runner.kernel_names(source) == ["k_float", "k_half", "k_int"]
    out = runner.run(source, host, grid=1, threadgroup=4, buffers={0: np.zeros(4, dtype)})
    np.testing.assert_array_equal(out[0], np.arange(4, dtype=dtype))
