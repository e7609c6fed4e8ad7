// Copyright © 2026 mlx-lowbit contributors.
//
// activation_bits = 8: each row of x becomes q = round(x * 127 / max|x|)
// in [-127, 127] with the row scale max|x| / 127 (BitNet b1.58's per-token
// absmax quantization). The product is then scale * (q @ W.T).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace mlx_lowbit::cpu {

// Quantizes one row; returns the scale (0 for an all-zero row).
inline float quantize_row_int8(const float* x, int K, int8_t* q) {
  float amax = 0.0f;
  for (int k = 0; k < K; ++k) {
    amax = std::max(amax, std::fabs(x[k]));
  }
  if (amax == 0.0f) {
    std::fill_n(q, std::max(K, 0), int8_t(0));
    return 0.0f;
  }
  float inv = 127.0f / amax;
  for (int k = 0; k < K; ++k) {
    q[k] = int8_t(std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f));
  }
  return amax / 127.0f;
}

// The float path's view of an int8 row: q * scale, in place.
inline void round_row_to_int8_grid(float* x, int K, int8_t* scratch) {
  float scale = quantize_row_int8(x, K, scratch);
  for (int k = 0; k < K; ++k) {
    x[k] = float(scratch[k]) * scale;
  }
}

} // namespace mlx_lowbit::cpu
