// Copyright © 2026 mlx-lowbit contributors.
//
// The (N, K) weight in a float dtype, decoded by the same Decoder::values8
// the GEMM uses for its weight tiles: one thread per kChunk weights.
#pragma once

#include "metal/utils.h"

template <typename Decoder, typename T>
[[kernel, max_total_threads_per_threadgroup(lowbit::kDequantizeThreads)]] void lowbit_dequantize(
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    constant lowbit::WeightParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint i [[thread_position_in_grid]]) {
  using namespace lowbit;
  const WeightParams w = params;
  const int chunks_per_row = w.K / kChunk;
  if (int(i) >= w.N * chunks_per_row) {
    return;
  }
  const int n = int(i) / chunks_per_row;
  const int k = (int(i) % chunks_per_row) * kChunk;
  const WeightSource src = {packed, scales, biases, codebook};
  T v[kChunk];
  Decoder::template values8<T>(
      row_of(src, w, n), k, load_scale_bias(src, w, n, k / w.group_size), v);
  device T* dst = out + size_t(n) * size_t(w.K) + size_t(k);
  LOWBIT_UNROLL
  for (int j = 0; j < kChunk; ++j) {
    dst[j] = v[j];
  }
}
