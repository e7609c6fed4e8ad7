// Copyright © 2026 mlx-lowbit contributors.
//
// GEMV (decode and small batches): out (M, N) = x (M, K) @ w^T for M up to
// a few rows. A threadgroup of kGemvSimdgroups simdgroups owns
// kGemvSimdgroups * Decoder::kGemvRows output rows and MR rows of x. Per step
// of kGemvStepK weights it stages x once, as float, with coalesced 4-wide
// loads, in threadgroup memory; then lane l of every simdgroup takes block
// l of the step (kKMultiple weights) of each of its rows
// (Decoder::load_step), so a simdgroup's weight loads are contiguous across
// lanes. A lane decodes each weight once and uses it for all MR rows of x;
// each x value it reads (pre-scaled once, Decoder::prescale) serves all its
// rows. Sums are fp32, scales are applied
// once per block, and simd_sum joins the lanes; lane r stores row r.
#pragma once

#include "metal/utils.h"

namespace lowbit {

// Staged x: per row of x, element e of the step at [e % 32][e / 32], rows
// of 33 floats. Lane l reads its block's element i at [i][l] (consecutive
// lanes, consecutive banks), and staging thread t writes its 4 elements
// 4t .. 4t + 3 at [4 (t % 8) + j][t / 8], banks 4 (t % 8) + j + t / 8 mod
// 32: distinct for the 32 threads of a simdgroup. No bank conflicts either
// way.
LOWBIT_CONST int kGemvLd = 33;
LOWBIT_CONST int kGemvRowFloats = kKMultiple * kGemvLd;

} // namespace lowbit

template <typename Decoder, typename T, int MR>
[[kernel, max_total_threads_per_threadgroup(lowbit::kGemvThreads)]] void lowbit_gemv(
    const device T* x [[buffer(LOWBIT_BUFFER_X)]],
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    constant lowbit::MatmulParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using namespace lowbit;
  constexpr int R = Decoder::kGemvRows;
  constexpr int kChunksPerBlock = kKMultiple / kChunk;
  static_assert(kGemvStepK == kGemvThreads * 4, "one 4-wide x load per thread and row per step");
  typedef typename Decoder::Block Block;
  threadgroup float xs[MR * kGemvRowFloats];
  threadgroup typename Decoder::TableEntry table[Decoder::kTableEntries];

  const MatmulParams p = params;
  const WeightParams w = p.w;
  const int n0 = (int(group.x) * kGemvSimdgroups + int(sg)) * R;
  const int m0 = int(group.y) * MR;
  const int rows = imin(MR, p.M - m0);
  const int blocks = w.K / kKMultiple;
  // A simdgroup past N still stages x and reaches every barrier; it
  // computes and stores nothing. Uniform over the simdgroup, so simd_sum
  // below sees all lanes.
  const bool active = n0 < w.N;
  const WeightSource src = {packed, scales, biases, codebook};
  WeightRow wrow[R];
  LOWBIT_UNROLL
  for (int r = 0; r < R; ++r) {
    // Rows past N decode row N - 1 and are never stored: no branch in the
    // inner loop, no read out of bounds.
    wrow[r] = row_of(src, w, imin(n0 + r, w.N - 1));
  }
  const device T* xrow = x + size_t(m0) * size_t(w.K);
  // The codebook's patterns, if any; the first step's barriers order these
  // stores before every read.
  Decoder::load_table(table, wrow[0], tid);
  typename Decoder::Stream stream[R];

  float acc[MR][R];
  LOWBIT_UNROLL
  for (int m = 0; m < MR; ++m) {
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      acc[m][r] = 0.0f;
    }
  }

  for (int k0 = 0; k0 < w.K; k0 += kGemvStepK) {
    // x[m0 .. m0 + rows) [k0, k0 + kGemvStepK), zeros past K and M. K is a
    // multiple of kKMultiple and rows start kBindingAlignment-aligned, so
    // every 4-wide load is whole and aligned.
    threadgroup_barrier(mem_flags::mem_threadgroup); // the last step's reads are done
    const int e = int(tid) * 4;
    LOWBIT_UNROLL
    for (int m = 0; m < MR; ++m) {
      vec<T, 4> v = vec<T, 4>(T(0.0f));
      if (m < rows && k0 + e < w.K) {
        v = *(const device vec<T, 4>*)(xrow + size_t(m) * size_t(w.K) + size_t(k0 + e));
      }
      threadgroup float* dst = xs + m * kGemvRowFloats + e / kKMultiple;
      LOWBIT_UNROLL
      for (int j = 0; j < 4; ++j) {
        dst[((e + j) % kKMultiple) * kGemvLd] = float(v[j]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (!active) {
      continue;
    }
    // Every lane loads (the codebook's lanes share words by simd_shuffle);
    // lanes past K then stop.
    const int b = k0 / kKMultiple + int(lane);
    const bool in_k = b < blocks;
    Block wb[R];
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      Decoder::load_step(wrow[r], stream[r], table, k0, lane, in_k, wb[r]);
    }
    if (!in_k) {
      continue;
    }
    ScaleBias sb[R];
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      sb[r] = load_scale_bias(src, w, imin(n0 + r, w.N - 1), b * kKMultiple / w.group_size);
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
          const threadgroup float* xp = xs + m * kGemvRowFloats + q * kChunk * kGemvLd + int(lane);
          LOWBIT_UNROLL
          for (int i = 0; i < kChunk; ++i) {
            xv[i] = xp[i * kGemvLd];
            xsum[m] += xv[i];
            xv[i] *= Decoder::prescale(q * kChunk + i);
          }
          LOWBIT_UNROLL
          for (int r = 0; r < R; ++r) {
            part[m][r] += Decoder::dot8(wb[r], q, xv);
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

  if (!active) {
    return;
  }
  // Every lane gets each row's total; lane r keeps row r's, so one store of
  // R consecutive outputs per row of x.
  LOWBIT_UNROLL
  for (int m = 0; m < MR; ++m) {
    float mine = 0.0f;
    LOWBIT_UNROLL
    for (int r = 0; r < R; ++r) {
      float total = simd_sum(acc[m][r]);
      mine = int(lane) == r ? total : mine;
    }
    if (int(lane) < R && m < rows && n0 + int(lane) < w.N) {
      out[size_t(m0 + m) * size_t(w.N) + size_t(n0 + int(lane))] = T(mine);
    }
  }
}
