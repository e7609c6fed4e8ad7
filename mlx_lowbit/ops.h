// Copyright © 2026 mlx-lowbit contributors.
#pragma once

#include <optional>
#include <string>

#include "mlx/ops.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/planner.h"

namespace mlx_lowbit {

// x @ dequantize(w).T for x of shape (..., K) (transpose = true), or
// x @ dequantize(w) for x of shape (..., N); output in x's dtype.
mx::array lowbit_matmul(
    const mx::array& x,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::string& format,
    int group_size,
    int vector_size = 0,
    int index_bits = 0,
    bool transpose = true,
    const std::string& schedule = "auto",
    const std::string& streamk_fixup = "deterministic",
    int split_k = 0,
    int bm = 0,
    int bn = 0,
    int bk = 0,
    int activation_bits = 0,
    mx::StreamOrDevice s = {});

// The same op for callers that already hold a parsed spec (vjp, tests).
mx::array lowbit_matmul(
    const mx::array& x,
    const std::vector<mx::array>& weight, // packed, scales, [biases], [codebook]
    const FormatSpec& spec,
    bool transpose,
    const ScheduleRequest& schedule,
    int activation_bits = 0,
    mx::StreamOrDevice s = {});

// x rounded, row by row (the last axis), to BitNet's per-token int8 grid:
// q * max|x| / 127 with q = round(x * 127 / max|x|) in [-127, 127] (0 for an
// all-zero row), in float32: backend/cpu/activation_quant.h's rule as MLX ops.
// On a GPU stream lowbit_matmul's activation_bits=8 is this, then the float kernel.
mx::array round_to_int8_grid(const mx::array& x, mx::StreamOrDevice s = {});

// The (N, K) weight, in dtype (a float type).
mx::array lowbit_dequantize(
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::string& format,
    int group_size,
    int vector_size = 0,
    int index_bits = 0,
    mx::Dtype dtype = mx::float32,
    mx::StreamOrDevice s = {});

} // namespace mlx_lowbit
