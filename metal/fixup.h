// Copyright © 2026 mlx-lowbit contributors.
//
// The second pass of split-K and stream-K: tiles that several threadgroups
// worked on are summed from the fp32 workspace, in K order (so the result is
// the same whichever threadgroup ran first), rounded once and written to out.
// No threadgroup ever waits on another: this pass runs after the GEMM in the
// same command stream.
#pragma once

#include "metal/utils.h"
#include "mlx_lowbit/work_split.h"

template <typename T, int BM, int BN>
[[kernel, max_total_threads_per_threadgroup(lowbit::kFixupThreads)]] void lowbit_fixup(
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    const device float* workspace [[buffer(LOWBIT_BUFFER_WORKSPACE)]],
    constant lowbit::MatmulParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]]) {
  using namespace lowbit;
  static_assert((BM * BN) % kFixupThreads == 0, "whole tiles per threadgroup");
  constexpr int kPerThread = BM * BN / kFixupThreads;
  const MatmulParams p = params;
  const int t = int(group.x);
  const int count = contributor_count(p, t);
  if (count == 0) {
    return; // written whole by one threadgroup
  }
  float sum[kPerThread];
  LOWBIT_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    sum[e] = 0.0f;
  }
  for (int j = 0; j < count; ++j) {
    const device float* slot = workspace + size_t(contributor_slot(p, t, j)) * size_t(BM * BN);
    LOWBIT_UNROLL
    for (int e = 0; e < kPerThread; ++e) {
      sum[e] += slot[int(tid) + e * kFixupThreads];
    }
  }
  const TileCoord at = tile_coord(p, t);
  const int m0 = at.m * BM;
  const int n0 = at.n * BN;
  LOWBIT_UNROLL
  for (int e = 0; e < kPerThread; ++e) {
    int i = int(tid) + e * kFixupThreads;
    int m = m0 + i / BN;
    int n = n0 + i % BN;
    if (m < p.M && n < p.w.N) {
      out[size_t(m) * size_t(p.w.N) + size_t(n)] = T(sum[e]);
    }
  }
}
