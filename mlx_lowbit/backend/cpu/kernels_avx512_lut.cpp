// Copyright © 2026 mlx-lowbit contributors.
//
// Ternary GEMV with int8 activations by table lookup (AVX-512 VBMI: Ice
// Lake, Zen 4 and later), for M = 1 (decode). The vpdpbusd kernel spends one
// dot product per 64 weights and row, which Zen 4 issues in two halves;
// here one vpermi2b looks up the sums of 4 weights for 64 rows at once.
//
// Per row of x, and per 4 activations x_0..x_3 (a "quad"), the table holds
// e(i) = 508 + sum_k t_k x_k for the 81 code quads i = sum_k 3^k (t_k + 1),
// in [0, 1016]: its low bytes in one 128-byte plane and its high bits (0..3)
// in another, so two vpermi2b give 64 exact sums. The weight is repacked once
// (ternary_lut_repack, cached by the backend) into those base-3 indices, one
// byte per quad, 64 rows per 64-byte vector: [group][row block][quad][64],
// byte 2i for row i of the block and byte 2i + 1 for row 32 + i, so the even
// and odd 16-bit halves of a vector are rows in order. Within a group (at
// most 64 quads) the low bytes add into 16-bit sums and the high bits into
// bytes without overflow (64 * 255 + 256 * 64 * 3 < 2^16); at the group's end
// they become fp32 and take the scale (w = scale * t for ternary).
//
// Compiled with the AVX-512 file's flags plus -mavx512vbmi; isa.cpp hands out
// the table only where the CPU has VBMI. As in the other ISA files nothing
// here has external linkage but the table getter (kernel_abi.h says why).

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

namespace mlx_lowbit::cpu {

namespace {

constexpr int kRowsPerBlock = 64;
constexpr int kTableBytes = 256; // per quad: low plane, high plane
constexpr int kOffset = 508;     // 4 * 127: makes every entry non-negative

void repack(const PackedWeight& w, uint8_t* idx, float* scales) {
  const int G = w.K / w.group_size, Q = w.group_size / 4;
  const int blocks = lut_row_blocks(w.N);
  std::memset(idx, 40, size_t(G) * blocks * Q * kRowsPerBlock); // 40: t = 0 0 0 0
  std::memset(scales, 0, sizeof(float) * size_t(G) * blocks * kRowsPerBlock);
  for (int n = 0; n < w.N; ++n) {
    const int b = n / kRowsPerBlock, i = n % kRowsPerBlock;
    const int pos = i < 32 ? 2 * i : 2 * (i - 32) + 1;
    const uint32_t* row = w.packed + size_t(n) * w.words_per_row;
    for (int g = 0; g < G; ++g) {
      const size_t s = size_t(n) * G + g;
      scales[(size_t(g) * blocks + b) * kRowsPerBlock + i] =
          w.scales_f32 ? static_cast<const float*>(w.scales)[s]
                       : _cvtsh_ss(static_cast<const uint16_t*>(w.scales)[s]);
      uint8_t* dst = idx + (size_t(g) * blocks + b) * Q * kRowsPerBlock + pos;
      for (int q = 0; q < Q; ++q) {
        const int k = g * w.group_size + 4 * q;
        const uint32_t bits = row[k / lowbit::ternary::kPerWord] >> (2 * (k % 16));
        dst[size_t(q) * kRowsPerBlock] = uint8_t(
            (bits & 3) + 3 * ((bits >> 2) & 3) + 9 * ((bits >> 4) & 3) + 27 * ((bits >> 6) & 3));
      }
    }
  }
}

// The tables of one row of x: K / 4 quads of kTableBytes.
void build_tables(const int8_t* x, int K, uint8_t* tables) {
  // t_k of the code quads 0..95 (entries past 80 are never looked up).
  __m512i t[4][3];
  for (int k = 0; k < 4; ++k) {
    for (int v = 0; v < 3; ++v) {
      alignas(64) int16_t lane[32];
      for (int l = 0; l < 32; ++l) {
        int i = 32 * v + l;
        for (int j = 0; j < k; ++j) {
          i /= 3;
        }
        lane[l] = int16_t(32 * v + l < 81 ? i % 3 - 1 : 0);
      }
      t[k][v] = _mm512_load_si512(lane);
    }
  }
  const __m512i offset = _mm512_set1_epi16(kOffset);
  for (int q = 0; q < K / 4; ++q) {
    const __m512i x0 = _mm512_set1_epi16(x[4 * q]), x1 = _mm512_set1_epi16(x[4 * q + 1]);
    const __m512i x2 = _mm512_set1_epi16(x[4 * q + 2]), x3 = _mm512_set1_epi16(x[4 * q + 3]);
    uint8_t* dst = tables + size_t(q) * kTableBytes;
    for (int v = 0; v < 3; ++v) {
      __m512i e = _mm512_add_epi16(offset, _mm512_mullo_epi16(t[0][v], x0));
      e = _mm512_add_epi16(e, _mm512_mullo_epi16(t[1][v], x1));
      e = _mm512_add_epi16(e, _mm512_mullo_epi16(t[2][v], x2));
      e = _mm512_add_epi16(e, _mm512_mullo_epi16(t[3][v], x3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * v), _mm512_cvtepi16_epi8(e));
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(dst + 128 + 32 * v),
          _mm512_cvtepi16_epi8(_mm512_srli_epi16(e, 8)));
    }
  }
}

struct Job {
  const TernaryLut* w;
  const uint8_t* tables;
  float* acc; // (row blocks * 64)
};

void row_blocks(void* ctx, int b0, int b1) {
  const Job& job = *static_cast<const Job*>(ctx);
  const TernaryLut& w = *job.w;
  const int G = w.K / w.group_size, Q = w.group_size / 4, blocks = lut_row_blocks(w.N);
  const __m512i low = _mm512_set1_epi16(0xFF);
  const __m512i offset = _mm512_set1_epi32(kOffset * Q);
  for (int b = b0; b < b1; ++b) {
    std::memset(job.acc + size_t(b) * kRowsPerBlock, 0, sizeof(float) * kRowsPerBlock);
  }
  // Groups outer: one group's tables (Q * 256 bytes) stay in L1 for all blocks.
  for (int g = 0; g < G; ++g) {
    const uint8_t* tg = job.tables + size_t(g) * Q * kTableBytes;
    for (int b = b0; b < b1; ++b) {
      const uint8_t* ib = w.idx + (size_t(g) * blocks + b) * Q * kRowsPerBlock;
      __m512i even = _mm512_setzero_si512(), odd = even, high = even;
      for (int q = 0; q < Q; ++q) {
        const __m512i i = _mm512_loadu_si512(ib + size_t(q) * kRowsPerBlock);
        const uint8_t* t = tg + size_t(q) * kTableBytes;
        const __m512i lo =
            _mm512_permutex2var_epi8(_mm512_loadu_si512(t), i, _mm512_loadu_si512(t + 64));
        const __m512i hi =
            _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 128), i, _mm512_loadu_si512(t + 192));
        even = _mm512_add_epi16(even, _mm512_and_si512(lo, low));
        odd = _mm512_add_epi16(odd, _mm512_srli_epi16(lo, 8));
        high = _mm512_add_epi8(high, hi);
      }
      // Rows 0..31 in the even halves, 32..63 in the odd ones; both < 2^16.
      const __m512i s0 = _mm512_add_epi16(even, _mm512_slli_epi16(_mm512_and_si512(high, low), 8));
      const __m512i s1 = _mm512_add_epi16(odd, _mm512_and_si512(high, _mm512_set1_epi16(-256)));
      const __m512i s[4] = {
          _mm512_cvtepu16_epi32(_mm512_castsi512_si256(s0)),
          _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(s0, 1)),
          _mm512_cvtepu16_epi32(_mm512_castsi512_si256(s1)),
          _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(s1, 1))};
      float* acc = job.acc + size_t(b) * kRowsPerBlock;
      const float* sc = w.scales + (size_t(g) * blocks + b) * kRowsPerBlock;
      for (int v = 0; v < 4; ++v) {
        const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(s[v], offset));
        _mm512_storeu_ps(
            acc + 16 * v,
            _mm512_fmadd_ps(f, _mm512_loadu_ps(sc + 16 * v), _mm512_loadu_ps(acc + 16 * v)));
      }
    }
  }
}

bool gemv(const TernaryLut& w, const int8_t* xq, float xscale, float* out, ParallelFor parallel) {
  const int blocks = lut_row_blocks(w.N);
  auto* tables = static_cast<uint8_t*>(std::malloc(size_t(w.K / 4) * kTableBytes));
  auto* acc = static_cast<float*>(std::malloc(sizeof(float) * size_t(blocks) * kRowsPerBlock));
  if (!tables || !acc) {
    std::free(tables);
    std::free(acc);
    return false;
  }
  build_tables(xq, w.K, tables);
  Job job{&w, tables, acc};
  parallel(blocks, &row_blocks, &job);
  for (int n = 0; n < w.N; ++n) {
    out[n] = xscale * acc[n];
  }
  std::free(tables);
  std::free(acc);
  return true;
}

} // namespace

const TernaryLutKernels* avx512_lut_kernels() {
  static const TernaryLutKernels table{&repack, &gemv};
  return &table;
}

} // namespace mlx_lowbit::cpu
