// Copyright © 2026 mlx-lowbit contributors.
//
// GEMV (decode and small batches): out (M, N) = x (M, K) @ w^T for M up to
// a few rows. Each simdgroup owns kGemvRowsPerSimdgroup output rows; its
// lanes stride over K a lane block at a time (Decoder::kLaneBlocks blocks of
// kKMultiple weights). A lane decodes each weight once and uses it for all
// MR rows of x and, per x chunk, for all its output rows; sums are fp32,
// scales are applied once per block, and simd_sum joins the lanes.
#pragma once

#include "metal/utils.h"

template <typename Decoder, typename T, int MR>
[[kernel, max_total_threads_per_threadgroup(lowbit::kGemvSimdgroups * 32)]] void lowbit_gemv(
    const device T* x [[buffer(LOWBIT_BUFFER_X)]],
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    constant lowbit::MatmulParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint3 group [[threadgroup_position_in_grid]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using namespace lowbit;
  constexpr int R = kGemvRowsPerSimdgroup;
  constexpr int LB = Decoder::kLaneBlocks;
  constexpr int kChunksPerBlock = kKMultiple / kChunk;
  typedef typename Decoder::Block Block;

  const MatmulParams p = params;
  const WeightParams w = p.w;
  const int n0 = (int(group.x) * kGemvSimdgroups + int(sg)) * R;
  const int m0 = int(group.y) * MR;
  // The whole simdgroup leaves together, so simd_sum below sees all lanes.
  if (n0 >= w.N) {
    return;
  }
  const int rows = imin(MR, p.M - m0);
  const int blocks = w.K / kKMultiple;
  const WeightSource src = {packed, scales, biases, codebook};
  WeightRow wrow[R];
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) {
    // Rows past N decode row N - 1 and are never stored: no branch in the
    // inner loop, no read out of bounds.
    wrow[r] = row_of(src, w, imin(n0 + r, w.N - 1));
  }
  const device T* xrow = x + size_t(m0) * size_t(w.K);

  float acc[MR][R];
  LOWBIT_UNROLL
  for (int m = 0; m < MR; ++m) {
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      acc[m][r] = 0.0f;
    }
  }

  for (int b0 = int(lane) * LB; b0 < blocks; b0 += 32 * LB) {
    const int valid = imin(LB, blocks - b0);
    Block wb[R][LB];
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      Decoder::template load_lane<LB>(wrow[r], b0, valid, wb[r]);
    }
    LOWBIT_UNROLL
    for (int bb = 0; bb < LB; ++bb) {
      if (bb >= valid) {
        break;
      }
      const int k = (b0 + bb) * kKMultiple;
      ScaleBias sb[R];
      LOWBIT_UNROLL
      for (int r = 0; r < R; ++r) {
        sb[r] = load_scale_bias(src, w, imin(n0 + r, w.N - 1), k / w.group_size);
      }
      float part[MR][R];
      float xsum[MR];
      LOWBIT_UNROLL
      for (int m = 0; m < MR; ++m) {
        xsum[m] = 0.0f;
        LOWBIT_UNROLL
        for (int r = 0; r < R; ++r) {
          part[m][r] = 0.0f;
        }
      }
      LOWBIT_UNROLL
      for (int q = 0; q < kChunksPerBlock; ++q) {
        LOWBIT_UNROLL
        for (int m = 0; m < MR; ++m) {
          if (m < rows) {
            float xv[kChunk];
            const device T* xp = xrow + size_t(m) * size_t(w.K) + k + q * kChunk;
            LOWBIT_UNROLL
            for (int i = 0; i < kChunk; ++i) {
              xv[i] = float(xp[i]);
              xsum[m] += xv[i];
            }
            LOWBIT_UNROLL
            for (int r = 0; r < R; ++r) {
              part[m][r] += Decoder::dot8(wb[r][bb], q, xv);
            }
          }
        }
      }
      LOWBIT_UNROLL
      for (int m = 0; m < MR; ++m) {
        LOWBIT_UNROLL
        for (int r = 0; r < R; ++r) {
          acc[m][r] += Decoder::apply(part[m][r], xsum[m], sb[r]);
        }
      }
    }
  }

  LOWBIT_UNROLL
  for (int m = 0; m < MR; ++m) {
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      float total = simd_sum(acc[m][r]);
      if (lane == 0 && m < rows && n0 + r < w.N) {
        out[size_t(m0 + m) * size_t(w.N) + size_t(n0 + r)] = T(total);
      }
    }
  }
}
