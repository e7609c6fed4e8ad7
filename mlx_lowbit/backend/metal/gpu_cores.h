// Copyright © 2026 mlx-lowbit contributors.
//
// How many GPU cores the persistent (stream-K) grid is sized for.
#pragma once

#include <optional>
#include <string_view>

namespace mlx_lowbit {

// $MLX_LOWBIT_GPU_CORES when set (for experiments), else the device's core
// count (macOS: the IORegistry's "gpu-core-count", which MLX does not
// expose), else PlannerConstants::kDefaultGpuCores.
int gpu_core_count();

// The value of $MLX_LOWBIT_GPU_CORES: a positive integer, else
// std::invalid_argument naming the variable.
int parse_gpu_cores(std::string_view text);

} // namespace mlx_lowbit
