// Copyright © 2026 mlx-lowbit contributors.
//
// The portable path's decoder: raw pointers to one quantized weight's arrays,
// plus the decoders that turn a stretch of a row into floats (the SIMD files
// decode in simd/decode.h instead). The bit layout comes from formats/*.h.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mlx/array.h"
#include "mlx_lowbit/format_spec.h"

namespace mlx_lowbit::cpu {

struct WeightView {
  FormatSpec spec;
  int N = 0, K = 0;
  int words_per_row = 0;
  const uint32_t* packed = nullptr;
  const void* scales = nullptr;
  const void* biases = nullptr;   // binary only, may be null
  const void* codebook = nullptr; // codebook only
  bool scales_f32 = false;        // else float16

  int groups() const {
    return K / spec.group_size;
  }
  // scale and bias of (row n, group g) as float.
  float scale(int n, int g) const;
  float bias(int n, int g) const;

  // Writes the sign part of weights [k0, k0 + len) of row n: t in {-1, 0, 1},
  // s in {-1, 1} or the pattern's +-1, without scale or bias. k0 and len are
  // multiples of the format's unit (16 ternary, 32 binary, v codebook).
  void decode_signs(int n, int k0, int len, float* dst) const;
};

// Builds a view of inputs (packed, scales, [biases], [codebook]) as laid out
// by LowBitMatmul / LowBitDequantize.
WeightView make_view(
    const FormatSpec& spec, bool has_bias, const std::vector<mlx::core::array>& weight_inputs);

} // namespace mlx_lowbit::cpu
