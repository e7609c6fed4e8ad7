// Copyright © 2026 mlx-lowbit contributors.
//
// The expert gather-matmul (mixture-of-experts layers): output row
// i = b * M + m is x[lhs[b]][m] @ W[rhs[b]]^T, W[e] the e-th of E stacked
// (N, K) weights. Each simdgroup owns kGatherRowsPerSimdgroup output
// features; its lanes stride over K a chunk of kChunk weights at a time,
// decoded with the format's values8 (the GEMM's and dequantize's decoder,
// scale and bias applied), and each decoded chunk serves every row of the
// threadgroup's run of rows that share an expert: one row in decode, up to
// MR rows for sorted indices (prefill). fp32 sums, simd_sum joins the lanes.
#pragma once

#include "metal/utils.h"
#include "mlx_lowbit/gather_params.h"

namespace lowbit {

// Expert e's arrays inside the stacked ones.
LOWBIT_METAL_FUNC WeightSource expert_source(WeightSource all, GatherParams p, uint e) {
  const WeightParams w = p.w;
  const size_t rows = size_t(e) * size_t(w.N);
  const size_t group_bytes = size_t(w.K / w.group_size) * (w.scales_f32 ? 4 : 2);
  WeightSource s;
  s.packed = all.packed + rows * size_t(w.words_per_row);
  s.scales = all.scales + rows * group_bytes;
  s.biases = w.has_bias ? all.biases + rows * group_bytes : all.biases;
  s.codebook = all.codebook + size_t(e) * size_t(p.codebook_stride);
  return s;
}

} // namespace lowbit

template <typename Decoder, typename T, int MR>
[[kernel, max_total_threads_per_threadgroup(lowbit::kGatherSimdgroups * 32)]] void lowbit_gather(
    const device T* x [[buffer(LOWBIT_BUFFER_X)]],
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    constant lowbit::GatherParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    const device uint32_t* lhs [[buffer(LOWBIT_BUFFER_LHS)]],
    const device uint32_t* rhs [[buffer(LOWBIT_BUFFER_RHS)]],
    uint3 group [[threadgroup_position_in_grid]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using namespace lowbit;
  constexpr int R = kGatherRowsPerSimdgroup;

  const GatherParams p = params;
  const WeightParams w = p.w;
  const int n0 = (int(group.x) * kGatherSimdgroups + int(sg)) * R;
  // The whole simdgroup leaves together, so simd_sum below sees all lanes.
  if (n0 >= w.N) {
    return;
  }
  const int r0 = int(group.y) * MR;
  const int rows = imin(MR, p.rows - r0);
  const int chunks = w.K / kChunk;
  const WeightSource all = {packed, scales, biases, codebook};

  // Runs of consecutive rows with one expert (uniform over the threadgroup).
  for (int start = 0; start < rows;) {
    // Out-of-range indices are clamped (the CPU raises for them): never a
    // read outside the arrays.
    const uint e = min(rhs[(r0 + start) / p.M], uint(p.experts - 1));
    int count = 1;
    while (start + count < rows && min(rhs[(r0 + start + count) / p.M], uint(p.experts - 1)) == e) {
      ++count;
    }
    const WeightSource src = expert_source(all, p, e);
    const device T* xrow[MR];
    LOWBIT_UNROLL
    for (int m = 0; m < MR; ++m) {
      const int row = r0 + start + imin(m, count - 1);
      const uint b = uint(row / p.M);
      const uint entry = min(lhs[b], uint(p.x_batches - 1));
      xrow[m] = x + (size_t(entry) * size_t(p.M) + size_t(row % p.M)) * size_t(w.K);
    }
    float acc[MR][R];
    LOWBIT_UNROLL
    for (int m = 0; m < MR; ++m) {
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) {
        acc[m][r] = 0.0f;
      }
    }
    for (int c = int(lane); c < chunks; c += 32) {
      const int k = c * kChunk;
      float wv[R][kChunk];
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) {
        // Features past N decode feature N - 1 and are never stored.
        const int n = imin(n0 + r, w.N - 1);
        Decoder::template values8<float>(
            row_of(src, w, n), k, load_scale_bias(src, w, n, k / w.group_size), wv[r]);
      }
      LOWBIT_UNROLL
      for (int m = 0; m < MR; ++m) {
        if (m < count) {
          float xv[kChunk];
          LOWBIT_UNROLL
          for (int i = 0; i < kChunk; ++i) {
            xv[i] = float(xrow[m][k + i]);
          }
          LOWBIT_UNROLL
          for (int r = 0; r < R; ++r) {
            LOWBIT_UNROLL
            for (int i = 0; i < kChunk; ++i) {
              acc[m][r] = fma(wv[r][i], xv[i], acc[m][r]);
            }
          }
        }
      }
    }
    LOWBIT_UNROLL
    for (int m = 0; m < MR; ++m) {
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) {
        float total = simd_sum(acc[m][r]);
        if (lane == 0 && m < count && n0 + r < w.N) {
          out[size_t(r0 + start + m) * size_t(w.N) + size_t(n0 + r)] = T(total);
        }
      }
    }
    start += count;
  }
}
