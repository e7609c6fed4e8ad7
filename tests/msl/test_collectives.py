"""The runtime's checks on barriers and simd collectives: each bug is reported, naming the kernel and the line."""

import re

import numpy as np
import pytest
import runner

HEAD = "#include <metal_stdlib>\nusing namespace metal;\n"


def kernel(body: str) -> str:
    return HEAD + (
        "[[kernel]] void k(device float* out [[buffer(0)]], device atomic_uint* flag [[buffer(1)]],\n"
        "              uint tid [[thread_index_in_threadgroup]], ushort lane [[thread_index_in_simdgroup]],\n"
        "              ushort sg [[simdgroup_index_in_threadgroup]]) {\n" + body + "\n}\n"
    )


def line_of(source: str, text: str) -> int:
    return next(i + 1 for i, l in enumerate(source.splitlines()) if text in l)


def fails(source, name, threads=64, timeout=None):
    with pytest.raises(runner.MSLRuntimeError) as e:
        runner.run(
            source,
            "k",
            grid=1,
            threadgroup=threads,
            buffers={0: np.zeros(threads, np.float32), 1: np.zeros(1, np.uint32)},
            timeout=timeout,
            name=name,
        )
    assert "kernel 'k'" in e.value.report
    return e.value.report


def test_shuffle_reading_a_returned_lane():
    source = kernel("  if (lane >= 16) return;\n  out[tid] = simd_shuffle_down(float(lane), 8);")
    report = fails(source, "shuffle_returned.metal")
    assert re.search(
        r"simd_shuffle_down: lane (8|9|1[0-5]) reads lane (1[6-9]|2[0-3]), which is inactive",
        report,
    )
    assert f"shuffle_returned.metal:{line_of(source, 'simd_shuffle_down')}:" in report


def test_shuffle_reading_past_a_partial_simdgroup():
    source = kernel("  out[tid] = simd_shuffle_xor(float(lane), 16);")
    report = fails(source, "shuffle_partial.metal", threads=40)  # simdgroup 1 has lanes 0-7 only
    assert re.search(
        r"simd_shuffle_xor: lane [0-7] reads lane (1[6-9]|2[0-3]), which is inactive \(it has returned or was not launched\)",
        report,
    )


def test_lanes_of_a_simdgroup_at_a_collective_and_at_a_barrier():
    source = kernel(
        "  float x = 1.0f;\n  if (lane < 16) {\n    x = simd_sum(x);\n  }\n"
        "  threadgroup_barrier(mem_flags::mem_threadgroup);\n  out[tid] = x;"
    )
    report = fails(source, "sum_or_barrier.metal")
    assert "wait at different synchronisation points and can never meet" in report
    assert re.search(
        rf"lanes 0-15 wait at simd_sum \([^)]*sum_or_barrier.metal:{line_of(source, 'simd_sum')}:",
        report,
    )
    assert re.search(
        rf"lanes 16-31 wait at threadgroup_barrier \([^)]*sum_or_barrier.metal:{line_of(source, 'threadgroup_barrier')}:",
        report,
    )


def test_threads_at_different_barrier_calls():
    source = kernel(
        "  if (sg == 0) {\n    threadgroup_barrier(mem_flags::mem_threadgroup);\n  } else {\n"
        "    threadgroup_barrier(mem_flags::mem_device);\n  }"
    )
    report = fails(source, "two_barriers.metal")
    assert "threads wait at different threadgroup_barrier calls" in report
    assert f"two_barriers.metal:{line_of(source, 'mem_threadgroup')}:" in report
    assert f"two_barriers.metal:{line_of(source, 'mem_device')}:" in report


def test_deadlock_timeout_reports_where_threads_are():
    # Simdgroup 0 waits at a barrier; in simdgroup 1, lane 0 spins on a flag nobody sets (the usual
    # wait-for-another-threadgroup bug) while its other lanes wait for it in simd_sum.
    source = kernel(
        "  if (sg == 0) {\n    threadgroup_barrier(mem_flags::mem_none);\n  } else {\n"
        "    while (lane == 0 && atomic_load_explicit(flag, memory_order_relaxed) == 0) {\n    }\n"
        "    out[tid] = simd_sum(1.0f);\n  }"
    )
    report = fails(source, "deadlock.metal", timeout=1)
    assert "deadlock: the threadgroup did not finish within 1 s" in report
    assert re.search(
        rf"threads 0-31: wait at threadgroup_barrier \([^)]*deadlock.metal:{line_of(source, 'threadgroup_barrier')}:",
        report,
    )
    assert "thread 32: running (not at a barrier or collective)" in report
    assert re.search(
        rf"threads 33-63: wait at simd_sum \([^)]*deadlock.metal:{line_of(source, 'simd_sum')}:",
        report,
    )


def test_simdgroup_matrix_with_a_returned_lane():
    source = HEAD + (
        "[[kernel]] void k(device float* out [[buffer(0)]], device atomic_uint* flag [[buffer(1)]],\n"
        "              ushort lane [[thread_index_in_simdgroup]]) {\n"
        "  if (lane == 31) return;\n  simdgroup_float8x8 m;\n  simdgroup_load(m, out);\n  simdgroup_store(m, out);\n}\n"
    )
    report = fails(source, "matrix_returned.metal", threads=32)
    assert (
        "simdgroup_load needs all 32 lanes of the simdgroup, but the active lanes are 0x7fffffff"
        in report
    )
    assert f"matrix_returned.metal:{line_of(source, 'simdgroup_load')}:" in report


def test_collectives_after_returns_in_other_simdgroups_are_fine():
    # Whole simdgroups may leave early when no barrier follows: not an error.
    source = kernel(
        "  if (sg == 1) return;\n  out[tid] = simd_sum(1.0f) + simd_shuffle(float(lane), 31 - lane);"
    )
    out = runner.run(
        source,
        "k",
        grid=1,
        threadgroup=64,
        buffers={0: np.zeros(64, np.float32), 1: np.zeros(1, np.uint32)},
        name="early_simdgroup.metal",
    )[0]
    np.testing.assert_array_equal(out[:32], 32 + 31 - np.arange(32))
    np.testing.assert_array_equal(out[32:], 0)
