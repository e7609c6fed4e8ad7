// Copyright © 2026 mlx-lowbit contributors.
//
// How many GPU cores the persistent (stream-K) grid is sized for.
#pragma once

#include <string>
#include <string_view>

namespace mlx_lowbit {

// The core count the planner uses and where it came from.
struct GpuCores {
  int cores;
  std::string source; // "MLX_LOWBIT_GPU_CORES" or "IORegistry gpu-core-count"
};

// $MLX_LOWBIT_GPU_CORES when set (for experiments), else the device's core
// count (macOS: the IORegistry's "gpu-core-count", which MLX does not
// expose). There is no guessed default: a grid planned for 8 cores on a
// 40-core GPU leaves most of it idle, so when neither says, this throws
// std::runtime_error naming the variable to set. With
// MLX_LOWBIT_VERBOSE=1 the value and its source are printed once (stderr).
GpuCores gpu_core_info();
int gpu_core_count();

// The value of $MLX_LOWBIT_GPU_CORES: a positive integer, else
// std::invalid_argument naming the variable.
int parse_gpu_cores(std::string_view text);

} // namespace mlx_lowbit
