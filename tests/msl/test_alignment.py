"""Misaligned vector accesses: Metal faults on a uint2 load that is not 8-byte
aligned (x86 does not), so every emulator build checks alignment, and
`buffer_offsets` binds a buffer at an offset as MLX binds a view."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS

WORDS = np.arange(8, dtype=np.uint32)


def run(offset, sanitizer=None):
    return runner.run(
        KERNELS / "alignment.metal",
        "load_uint2",
        grid=1,
        threadgroup=4,
        buffers={0: WORDS, 1: np.zeros(4, np.uint32)},
        buffer_offsets={0: offset},
        sanitizer=sanitizer,
    )


@pytest.mark.parametrize("offset", [0, 8, 16])
def test_aligned_offsets_run(offset):
    out = run(offset)
    np.testing.assert_array_equal(out[1], WORDS[0::2] + WORDS[1::2])
    np.testing.assert_array_equal(out[0], WORDS)  # the offset's padding is not returned


@pytest.mark.parametrize("sanitizer", [None, "address"])
def test_a_word_offset_faults_as_on_metal(sanitizer):
    with pytest.raises(runner.MSLRuntimeError, match="misaligned access.*uint2 to 8 bytes"):
        run(4, sanitizer)


def test_offsets_are_checked():
    with pytest.raises(ValueError, match="buffer_offsets"):
        run(-4)
