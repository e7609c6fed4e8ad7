"""The reference reduction (simd_sum, threadgroup memory, atomics) and the bugs the harness catches in it."""

import re

import numpy as np
import pytest
import runner
from msl_testing import KERNELS, kernel_source, mutate, pack

N = 1000
GROUPS, THREADS = 3, 128  # 384 threads stride over 1000 values: 2-3 values per thread


def launch(source, kernel="reduce_sum_float32", dtype=np.float32, sanitizer=None, name=None):
    x = np.random.default_rng(7).standard_normal(N).astype(dtype)
    out = runner.run(
        source,
        kernel,
        grid=GROUPS,
        threadgroup=THREADS,
        buffers={
            0: x,
            1: np.zeros(1, np.float32),
            2: np.zeros(1, np.uint32),
            3: pack("I", N),
        },
        sanitizer=sanitizer,
        name=name,
    )
    return x, out


@pytest.mark.parametrize("sanitizer", [None, "thread", "address"])
@pytest.mark.parametrize(
    "kernel,dtype",
    [("reduce_sum_float32", np.float32), ("reduce_sum_float16", np.float16)],
)
def test_reference_reduction_matches_numpy(kernel, dtype, sanitizer):
    x, out = launch(KERNELS / "reduction.metal", kernel, dtype, sanitizer)
    np.testing.assert_allclose(out[1][0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-4)
    assert out[2][0] == N  # every value counted once, through a device atomic


def reduction(old, new, name):
    return mutate(kernel_source("reduction.metal"), old, new), f"reduction_{name}.metal"


def test_missing_barrier_is_a_data_race_under_tsan():
    source, name = reduction(
        "  threadgroup_barrier(mem_flags::mem_threadgroup);\n", "", "missing_barrier"
    )
    with pytest.raises(runner.MSLSanitizerError) as e:
        launch(source, sanitizer="thread", name=name)
    report = e.value.report
    assert e.value.sanitizer == "thread"
    assert "WARNING: ThreadSanitizer: data race" in report
    # The racing write is `partial[sg] = acc;` and the read is `partial[lane]` in the same file.
    line_of = {l.strip(): i + 1 for i, l in enumerate(source.splitlines())}
    assert f"{name}:{line_of['partial[sg] = acc;']}" in report
    assert "reduce_sum<float>" in report


def test_non_atomic_shared_counter_is_a_data_race_under_tsan():
    source = mutate(
        kernel_source("reduction.metal"),
        "device atomic_uint* count",
        "device uint* count",
    )
    source = mutate(
        source,
        "atomic_fetch_add_explicit(count, seen, memory_order_relaxed);",
        "count[0] += seen;",
    )
    with pytest.raises(runner.MSLSanitizerError) as e:
        launch(source, sanitizer="thread", name="reduction_non_atomic.metal")
    line = next(i + 1 for i, l in enumerate(source.splitlines()) if "count[0] += seen;" in l)
    assert "WARNING: ThreadSanitizer: data race" in e.value.report
    assert f"reduction_non_atomic.metal:{line}" in e.value.report


def test_out_of_bounds_read_is_reported_by_asan():
    source, name = reduction("i < params.n;", "i <= params.n;", "out_of_bounds")
    with pytest.raises(runner.MSLSanitizerError) as e:
        launch(source, sanitizer="address", name=name)
    report = e.value.report
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in report
    assert "READ of size 4" in report
    assert "0 bytes after 4000-byte region" in report  # right past the 1000 floats of `in`
    line = next(i + 1 for i, l in enumerate(source.splitlines()) if "acc += float(in[i]);" in l)
    assert f"{name}:{line}" in report


def test_early_return_before_a_barrier():
    source, name = reduction(
        "  threadgroup_barrier(mem_flags::mem_threadgroup);\n",
        "  if (sg == sg_count - 1) return;\n  threadgroup_barrier(mem_flags::mem_threadgroup);\n",
        "early_return",
    )
    with pytest.raises(runner.MSLRuntimeError) as e:
        launch(source, name=name)
    assert "kernel 'reduce_sum_float32'" in e.value.report
    # Which check fires depends on whether the returning or the waiting threads get there first.
    assert re.search(
        r"threadgroup_barrier reached after \d+ of the threadgroup's 128 threads returned"
        r"|thread \d+ returned while \d+ other thread\(s\) of its threadgroup wait at threadgroup_barrier",
        e.value.report,
    )


def test_divergent_shuffle():
    source, name = reduction(
        "  acc = simd_sum(acc);\n",
        "  if (lane % 2 == 0) acc += simd_shuffle_xor(acc, 1);\n  acc = simd_sum(acc);\n",
        "divergent_shuffle",
    )
    with pytest.raises(runner.MSLRuntimeError) as e:
        launch(source, name=name)
    report = e.value.report
    line = next(i + 1 for i, l in enumerate(source.splitlines()) if "simd_shuffle_xor" in l)
    even = ",".join(str(l) for l in range(0, 32, 2))
    odd = ",".join(str(l) for l in range(1, 32, 2))
    assert "divergent simd collective in simdgroup" in report
    assert re.search(rf"lanes {even} wait at simd_shuffle_xor \([^)]*{name}:{line}:\d+\)", report)
    assert re.search(rf"lanes {odd} wait at simd_sum \([^)]*{name}:{line + 1}:\d+\)", report)
