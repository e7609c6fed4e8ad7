"""Device and threadgroup atomics, plain and under ThreadSanitizer (atomics must not race)."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS

GROUPS, THREADS = 4, 96


@pytest.mark.parametrize("sanitizer", [None, "thread"])
def test_atomics(sanitizer):
    n = GROUPS * THREADS
    u = np.array([0, 0, 0, 0, 0xFFFF], np.uint32)
    s = np.array([0, 1000], np.int32)
    f = np.array([1.0, 0.0], np.float32)
    out = runner.run(
        KERNELS / "atomics.metal",
        "atomics",
        grid=GROUPS,
        threadgroup=THREADS,
        buffers={0: u, 1: s, 2: f, 3: np.zeros(GROUPS * 2, np.uint32)},
        sanitizer=sanitizer,
    )
    u, s, f, per_group = out[0], out[1], out[2], out[3]
    assert u[0] == n
    assert u[1] == n - 1
    assert u[2] == 0xFFFFFFFF
    assert 1 <= u[3] <= n  # the one thread whose compare-exchange saw 0
    assert u[4] < n  # the last thread's exchange
    assert s[0] == -(n - 1)
    assert s[1] == 1000 - 2 * n
    assert f[0] == 1.0 + 0.5 * n
    assert f[1] == -0.25 * n
    np.testing.assert_array_equal(per_group.reshape(GROUPS, 2), [[THREADS, THREADS - 1]] * GROUPS)
