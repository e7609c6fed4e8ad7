// Copyright © 2026 mlx-lowbit contributors.
//
// What every kernel family shares: the weight's buffers, per-group scales,
// and the lane layout of an 8x8 simdgroup matrix.
#pragma once

#include <metal_stdlib>
#include <metal_simdgroup>
#include <metal_simdgroup_matrix>

using namespace metal;

#include "mlx_lowbit/formats.h"
#include "mlx_lowbit/kernel_params.h"

#define LOWBIT_METAL_FUNC inline __attribute__((always_inline))
#define LOWBIT_UNROLL _Pragma("clang loop unroll(full)")

namespace lowbit {

// The arrays of one quantized weight (slots LOWBIT_BUFFER_PACKED ..
// LOWBIT_BUFFER_CODEBOOK). Scales and biases are float16 or float32
// (WeightParams::scales_f32); biases and codebook may be dummies that are
// never read.
struct WeightSource {
  const device uint32_t* packed;
  const device uchar* scales;
  const device uchar* biases;
  const device uchar* codebook;
};

// One row of the packed array, with what a decoder needs besides it.
struct WeightRow {
  const device uint32_t* words;
  int words_per_row;
  int index_bits;
  const device uchar* codebook;
};

LOWBIT_METAL_FUNC WeightRow row_of(WeightSource src, WeightParams w, int n) {
  WeightRow r;
  r.words = src.packed + size_t(n) * size_t(w.words_per_row);
  r.words_per_row = w.words_per_row;
  r.index_bits = w.index_bits;
  r.codebook = src.codebook;
  return r;
}

// Scale and bias of (row n, group g), read once per group.
struct ScaleBias {
  float scale;
  float bias;
};

LOWBIT_METAL_FUNC float load_group_value(const device uchar* values, WeightParams w, int n, int g) {
  size_t i = size_t(n) * size_t(w.K / w.group_size) + size_t(g);
  return w.scales_f32 ? ((const device float*)values)[i] : float(((const device half*)values)[i]);
}

LOWBIT_METAL_FUNC ScaleBias load_scale_bias(WeightSource src, WeightParams w, int n, int g) {
  ScaleBias sb;
  sb.scale = load_group_value(src.scales, w, n, g);
  sb.bias = w.has_bias ? load_group_value(src.biases, w, n, g) : 0.0f;
  return sb;
}

// Lane `lane` of an 8x8 simdgroup matrix holds row .y, columns .x and .x + 1
// (Apple's fragment layout).
LOWBIT_METAL_FUNC short2 fragment_coord(ushort lane) {
  const short quad = short(lane / 4);
  return short2(short((quad & 2) * 2 + (lane % 2) * 2), short((quad & 4) + (lane / 2) % 4));
}

} // namespace lowbit
