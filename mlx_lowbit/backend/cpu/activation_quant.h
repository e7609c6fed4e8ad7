// Copyright © 2026 mlx-lowbit contributors.
//
// activation_bits = 8: each row of x becomes q = round(x * 127 / max|x|)
// in [-127, 127] with the row scale max|x| / 127 (BitNet b1.58's per-token
// absmax quantization). The product is then scale * (q @ W.T). A row with
// NaN or Inf, or whose max|x| is below kInt8MinAbsmax (zero, subnormal, or so
// small that 127 / max|x| or the scale would leave the normal range), is not
// quantized: the kernels compute it with float activations, so NaN and Inf
// propagate as in x @ dequantize(w).T and tiny rows keep their precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"

namespace mlx_lowbit::cpu {

// The largest |x| of a row, as its bits (the order of non-negative floats is
// that of their bits): 0x7F800000 and above is Inf or NaN.
inline uint32_t absmax_bits(const float* x, int K) {
  uint32_t m = 0;
  for (int k = 0; k < K; ++k) {
    uint32_t u;
    std::memcpy(&u, x + k, 4);
    m = std::max(m, u & 0x7FFFFFFFu);
  }
  return m;
}

// Quantizes one row; returns the scale, or 0 with q all zero when the row
// is not quantized (absmax_quantizable): the caller computes that row from
// its float values instead.
inline float quantize_row_int8(const float* x, int K, int8_t* q) {
  const uint32_t bits = absmax_bits(x, K);
  float amax;
  std::memcpy(&amax, &bits, 4);
  if (!absmax_quantizable(bits)) {
    std::fill_n(q, std::max(K, 0), int8_t(0));
    return 0.0f;
  }
  float inv = 127.0f / amax;
  for (int k = 0; k < K; ++k) {
    q[k] = int8_t(std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f));
  }
  return amax / 127.0f;
}

// The float path's view of an int8 row: q * scale, in place; a row that is
// not quantized keeps its values.
inline void round_row_to_int8_grid(float* x, int K, int8_t* scratch) {
  float scale = quantize_row_int8(x, K, scratch);
  if (scale == 0.0f) {
    return;
  }
  for (int k = 0; k < K; ++k) {
    x[k] = float(scratch[k]) * scale;
  }
}

} // namespace mlx_lowbit::cpu
