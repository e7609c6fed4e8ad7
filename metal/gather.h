// Copyright © 2026 mlx-lowbit contributors.
//
// The expert gather-matmul (mixture-of-experts layers): output row
// i = b * M + m is x[lhs[b]][m] @ W[rhs[b]]^T, W[e] the e-th of E stacked
// (N, K) weights. Both kernels decode with the format's values8 (the dense
// GEMM's and dequantize's decoder, scale and bias applied) and sum in fp32.
// lowbit_gather (decode): each simdgroup owns kGatherRowsPerSimdgroup output
// features; its lanes stride over K a chunk of kChunk weights at a time, and
// each decoded chunk serves every row of the threadgroup's run of rows that
// share an expert (one row, or up to MR); simd_sum joins the lanes.
// lowbit_gather_gemm (prefill): see below.
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

// Grouped GEMM: a threadgroup owns output rows [r0, r0 + kGatherTileM) and
// features [n0, n0 + kGatherTileN); for each run of its rows that shares an
// expert it stages, per K-iteration, the run's x rows (others zero) and the
// expert's decoded weight tile in threadgroup memory as float, and 2 x 2
// simdgroups multiply-accumulate 8x8 fragments into float accumulators (the
// dense GEMM's scheme, metal/gemm.h, with its tiles fixed and gathered rows).
template <typename Decoder, typename T>
[[kernel, max_total_threads_per_threadgroup(lowbit::kGatherGemmThreads)]] void lowbit_gather_gemm(
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
    uint tid [[thread_index_in_threadgroup]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using namespace lowbit;
  constexpr int BM = kGatherTileM;
  constexpr int BN = kGatherTileN;
  constexpr int BK = kGemmBK;
  constexpr int kLd = BK + 4; // rows padded by 16 bytes against bank conflicts
  constexpr int kThreads = kGatherGemmThreads;
  constexpr int TM = BM / 16; // 8x8 fragments per simdgroup along M and N
  constexpr int TN = BN / 16;
  static_assert(kThreads == 4 * 32, "2 x 2 simdgroups");
  threadgroup float xs[BM * kLd];
  threadgroup float ws[BN * kLd];

  const GatherParams p = params;
  const WeightParams w = p.w;
  const int r0 = int(group.y) * BM;
  const int n0 = int(group.x) * BN;
  const int rows = imin(BM, p.rows - r0);
  const int sm = (int(sg) / 2) * 16;
  const int sn = (int(sg) % 2) * 16;
  const short2 fc = fragment_coord(lane);
  const WeightSource all = {packed, scales, biases, codebook};

  // Runs of consecutive rows with one expert: the same for every thread, so
  // every thread reaches every barrier.
  for (int start = 0; start < rows;) {
    const uint e = min(rhs[(r0 + start) / p.M], uint(p.experts - 1));
    int count = 1;
    while (start + count < rows && min(rhs[(r0 + start + count) / p.M], uint(p.experts - 1)) == e) {
      ++count;
    }
    const WeightSource src = expert_source(all, p, e);
    simdgroup_matrix<float, 8, 8> acc[TM][TN];
    LOWBIT_UNROLL
    for (int i = 0; i < TM; ++i) {
      LOWBIT_UNROLL
      for (int j = 0; j < TN; ++j) {
        acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      }
    }
    for (int k0 = 0; k0 < w.K; k0 += BK) {
      for (int i = int(tid); i < BM * BK; i += kThreads) {
        const int r = i / BK;
        const int c = i % BK;
        float v = 0.0f;
        if (r >= start && r < start + count) {
          const int row = r0 + r;
          const uint entry = min(lhs[row / p.M], uint(p.x_batches - 1));
          v = float(
              x[(size_t(entry) * size_t(p.M) + size_t(row % p.M)) * size_t(w.K) + size_t(k0 + c)]);
        }
        xs[r * kLd + c] = v;
      }
      for (int i = int(tid); i < BN * (BK / kChunk); i += kThreads) {
        const int r = i / (BK / kChunk);
        const int k = k0 + (i % (BK / kChunk)) * kChunk;
        const int n = n0 + r;
        float v[kChunk];
        if (n < w.N) {
          Decoder::template values8<float>(
              row_of(src, w, n), k, load_scale_bias(src, w, n, k / w.group_size), v);
        } else {
          LOWBIT_UNROLL
          for (int j = 0; j < kChunk; ++j) {
            v[j] = 0.0f;
          }
        }
        LOWBIT_UNROLL
        for (int j = 0; j < kChunk; ++j) {
          ws[r * kLd + (k - k0) + j] = v[j];
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
      LOWBIT_UNROLL
      for (int kk = 0; kk < BK; kk += 8) {
        simdgroup_matrix<float, 8, 8> a[TM];
        simdgroup_matrix<float, 8, 8> b[TN];
        LOWBIT_UNROLL
        for (int i = 0; i < TM; ++i) {
          const threadgroup float* s = xs + (sm + 8 * i + fc.y) * kLd + kk + fc.x;
          a[i].thread_elements()[0] = s[0];
          a[i].thread_elements()[1] = s[1];
        }
        LOWBIT_UNROLL
        for (int j = 0; j < TN; ++j) {
          // b(k, n) = w(n, k): the weight tile read transposed.
          const threadgroup float* s = ws + (sn + 8 * j + fc.x) * kLd + kk + fc.y;
          b[j].thread_elements()[0] = s[0];
          b[j].thread_elements()[1] = s[kLd];
        }
        LOWBIT_UNROLL
        for (int i = 0; i < TM; ++i) {
          LOWBIT_UNROLL
          for (int j = 0; j < TN; ++j) {
            simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
          }
        }
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    // This run's rows only: the tile's other rows belong to other runs.
    LOWBIT_UNROLL
    for (int i = 0; i < TM; ++i) {
      const int r = sm + 8 * i + fc.y;
      if (r < start || r >= start + count) {
        continue;
      }
      LOWBIT_UNROLL
      for (int j = 0; j < TN; ++j) {
        const int n = n0 + sn + 8 * j + fc.x;
        device T* dst = out + size_t(r0 + r) * size_t(w.N) + size_t(n);
        LOWBIT_UNROLL
        for (int q = 0; q < 2; ++q) {
          if (n + q < w.N) {
            dst[q] = T(acc[i][j].thread_elements()[q]);
          }
        }
      }
    }
    start += count;
  }
}
