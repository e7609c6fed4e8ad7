"""[[function_constant]]s: values set per run, derived constants, is_function_constant_defined and
optional buffers, as MLX specialises its GEMMs (align_M/N/K, has_batch)."""

import numpy as np
import pytest
import runner
from msl_testing import KERNELS

SOURCE = KERNELS / "function_constants.metal"


def launch(constants, bias=None):
    buffers = {0: np.zeros(2, np.float32)}
    if bias is not None:
        buffers[1] = bias
    return runner.run(
        SOURCE,
        "fc",
        grid=1,
        threadgroup=2,
        buffers=buffers,
        function_constants=constants,
    )[0]


def test_unset_constants_read_zero_and_are_not_defined():
    # align_M 0, safe_M = !align_M 1 (x10), tile 0, scale undefined (-1), no bias, tile undefined (+0).
    np.testing.assert_array_equal(launch({}), [9.0, 9.0])


def test_set_constants_derived_constants_and_an_optional_buffer():
    out = launch(
        {200: True, 201: 3, 202: 0.5, 203: np.float16(2.0), 10: True},
        bias=np.array([0.5, 0.25], np.float32),
    )
    # 1 + 0 * 10 + 3 * 100 + 0.5 + 2 + bias + 1000 (tile defined)
    np.testing.assert_array_equal(out, [1304.0, 1303.75])


def test_optional_buffer_may_stay_unbound():
    np.testing.assert_array_equal(launch({10: False, 200: True}), [1.0 + 0 - 1, 1.0 + 0 - 1])


def test_a_constant_of_the_wrong_size_is_an_error():
    with pytest.raises(
        runner.MSLRuntimeError,
        match=r"\[\[function_constant\(203\)\]\] 'hscale' \(.*function_constants.metal:9\) has 2 bytes, but the host set 4 bytes",
    ):
        launch({203: 2.0})


def test_values_that_cannot_be_constants():
    with pytest.raises(TypeError, match="function constant 200"):
        launch({200: "yes"})
