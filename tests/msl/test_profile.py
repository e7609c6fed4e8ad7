"""The cost model's measurements (sanitizer="profile") on access patterns whose
cost is known: coalesced vs strided device loads, conflict-free vs 32-way
bank-conflicted threadgroup accesses, barriers."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS, pack


@pytest.mark.parametrize("stride,lines", [(1, 2), (16, 32)])
def test_coalescing(stride, lines):
    prof = []
    out = runner.run(
        KERNELS / "profile.metal",
        "strided",
        grid=1,
        threadgroup=32,
        buffers={
            0: np.arange(32 * 16, dtype=np.uint32),
            1: np.zeros(32, np.uint32),
            2: pack("I", stride),
        },
        sanitizer="profile",
        profile=prof,
    )
    np.testing.assert_array_equal(out[1], np.arange(32) * stride)
    (launch,) = prof
    load = launch["device"][0]
    assert (load["requested"], load["useful"], load["lines"], load["accesses"]) == (
        128,
        128,
        lines,
        1,
    )
    store = launch["device"][1]
    assert (store["useful"], store["lines"]) == (128, 2)


@pytest.mark.parametrize("stride,wavefronts", [(1, 1), (32, 32)])
def test_bank_conflicts_and_barriers(stride, wavefronts):
    prof = []
    runner.run(
        KERNELS / "profile.metal",
        "banks",
        grid=2,
        threadgroup=32,
        buffers={0: np.zeros(32, np.uint32), 1: pack("I", stride)},
        sanitizer="profile",
        profile=prof,
    )
    (launch,) = prof
    assert launch["threadgroups"] == 2 and launch["barriers"] == 2  # one per threadgroup
    # A store and a load per threadgroup, each 1 wavefront ideally.
    assert launch["tg_accesses"] == 4 and launch["tg_ideal"] == 4
    assert launch["tg_wavefronts"] == 4 * wavefronts
    # The same, per threadgroup allocation (this kernel has one).
    (per_array,) = launch["threadgroup"].values()
    assert per_array == {"accesses": 4, "wavefronts": 4 * wavefronts, "ideal": 4}
