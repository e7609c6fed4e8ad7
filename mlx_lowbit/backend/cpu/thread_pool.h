// Copyright © 2026 mlx-lowbit contributors.
//
// The CPU kernels' worker threads. MLX runs a CPU stream's tasks on one
// thread; a matmul splits its rows or columns over these workers and waits.
#pragma once

#include <functional>

namespace mlx_lowbit::cpu {

// Workers used by parallel_for (default: MLX_LOWBIT_NUM_THREADS or all cores).
// Both throw std::invalid_argument for a count outside [1, 8 x cores] or a
// malformed MLX_LOWBIT_NUM_THREADS; set_num_threads keeps the old workers
// (and throws std::runtime_error) when the new threads cannot be created.
int num_threads();
int max_threads();
void set_num_threads(long long n);

// Calls fn(begin, end) on disjoint chunks covering [0, n), one chunk per
// worker, and returns when all are done. Nested calls run inline.
void parallel_for(int n, const std::function<void(int, int)>& fn);

// The same with a plain function pointer, for the SIMD kernel files
// (kernel_abi.h's ParallelFor).
void parallel_for_c(int n, void (*body)(void* ctx, int begin, int end), void* ctx);

} // namespace mlx_lowbit::cpu
