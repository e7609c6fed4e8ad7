// Copyright © 2026 mlx-lowbit contributors.
//
// CPU kernels on float32 activations; fp32 accumulation throughout.
#pragma once

#include "mlx_lowbit/backend/cpu/portable_decoder.h"

namespace mlx_lowbit::cpu {

// out (M, N) = x (M, K) @ w.T
void matmul_nt(const WeightView& w, const float* x, int M, float* out);

// out (M, K) = x (M, N) @ w   (the gradient of matmul_nt with respect to x)
void matmul_nn(const WeightView& w, const float* x, int M, float* out);

// Row n of the dequantized weight, scales and biases applied, as float.
void dequantize_row(const WeightView& w, int n, float* dst);

} // namespace mlx_lowbit::cpu
