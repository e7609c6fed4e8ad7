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

// Entry s of a weight's scales or biases (float16 or float32, as stored);
// 0 for a weight without that array.
float stored(const PackedWeight& w, const void* p, size_t s) {
  return p == nullptr   ? 0.0f
         : w.scales_f32 ? static_cast<const float*>(p)[s]
                        : _cvtsh_ss(static_cast<const uint16_t*>(p)[s]);
}

void repack_ternary(const PackedWeight& w, uint8_t* idx, float* scales) {
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
      scales[(size_t(g) * blocks + b) * kRowsPerBlock + i] = stored(w, w.scales, s);
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

// Binary: one table per 8 activations (an "octet") over its 256 sign
// patterns, e(i) = 1016 + sum_b s_b x_b in [0, 2032]: low bytes and high bits
// (0..7) in two 256-byte planes. The index of 8 weights is a byte of the
// packed word as it is (bit b = weight b), repacked into the same 64-row
// vectors as ternary; a lookup is two vpermi2b (7 index bits) blended by the
// index's top bit. Groups of at most 32 octets: 32 * 255 + 256 * 32 * 7 < 2^16.
constexpr int kOctetTableBytes = 512;
constexpr int kOctetOffset = 1016; // 8 * 127

void repack_binary(const PackedWeight& w, uint8_t* idx, float* scales, float* biases) {
  const int G = w.K / w.group_size, Q = w.group_size / 8;
  const int blocks = lut_row_blocks(w.N);
  std::memset(idx, 0, size_t(G) * blocks * Q * kRowsPerBlock);
  std::memset(scales, 0, sizeof(float) * size_t(G) * blocks * kRowsPerBlock);
  if (biases) {
    std::memset(biases, 0, sizeof(float) * size_t(G) * blocks * kRowsPerBlock);
  }
  for (int n = 0; n < w.N; ++n) {
    const int b = n / kRowsPerBlock, i = n % kRowsPerBlock;
    const int pos = i < 32 ? 2 * i : 2 * (i - 32) + 1;
    const uint32_t* row = w.packed + size_t(n) * w.words_per_row;
    for (int g = 0; g < G; ++g) {
      const size_t s = size_t(n) * G + g, d = (size_t(g) * blocks + b) * kRowsPerBlock + i;
      scales[d] = stored(w, w.scales, s);
      if (biases) {
        biases[d] = stored(w, w.biases, s);
      }
      uint8_t* dst = idx + (size_t(g) * blocks + b) * Q * kRowsPerBlock + pos;
      for (int q = 0; q < Q; ++q) {
        const int k = g * w.group_size + 8 * q;
        dst[size_t(q) * kRowsPerBlock] = uint8_t(row[k / 32] >> (k % 32));
      }
    }
  }
}

void build_tables_binary(const int8_t* x, int K, uint8_t* tables) {
  const __m512i lane = _mm512_set_epi16(
      31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
      7, 6, 5, 4, 3, 2, 1, 0);
  for (int q = 0; q < K / 8; ++q) {
    const int8_t* xo = x + 8 * q;
    int sum = 0;
    for (int b = 0; b < 8; ++b) {
      sum += xo[b];
    }
    uint8_t* dst = tables + size_t(q) * kOctetTableBytes;
    for (int v = 0; v < 8; ++v) {
      // Entries 32v .. 32v + 31: index = 32v + lane.
      const __m512i index = _mm512_add_epi16(lane, _mm512_set1_epi16(int16_t(32 * v)));
      __m512i e = _mm512_set1_epi16(int16_t(kOctetOffset - sum));
      for (int b = 0; b < 8; ++b) {
        const __mmask32 set = _mm512_test_epi16_mask(index, _mm512_set1_epi16(int16_t(1 << b)));
        e = _mm512_mask_add_epi16(e, set, e, _mm512_set1_epi16(int16_t(2 * xo[b])));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * v), _mm512_cvtepi16_epi8(e));
      _mm256_storeu_si256(
          reinterpret_cast<__m256i*>(dst + 256 + 32 * v),
          _mm512_cvtepi16_epi8(_mm512_srli_epi16(e, 8)));
    }
  }
}

struct Job {
  const LutWeight* w;
  const uint8_t* tables;
  const float* xsum; // (G), binary with biases only
  float* acc;        // (row blocks * 64)
};

// Group g's exact integer sums of 64 rows (even halves rows 0..31, odd
// halves rows 32..63, both < 2^16, offset by `offset`) into acc, scaled.
inline void flush(
    const Job& job, int g, int b, __m512i even, __m512i odd, __m512i high, int offset) {
  const LutWeight& w = *job.w;
  const int blocks = lut_row_blocks(w.N);
  const __m512i low = _mm512_set1_epi16(0xFF);
  const __m512i s0 = _mm512_add_epi16(even, _mm512_slli_epi16(_mm512_and_si512(high, low), 8));
  const __m512i s1 = _mm512_add_epi16(odd, _mm512_and_si512(high, _mm512_set1_epi16(-256)));
  const __m512i s[4] = {
      _mm512_cvtepu16_epi32(_mm512_castsi512_si256(s0)),
      _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(s0, 1)),
      _mm512_cvtepu16_epi32(_mm512_castsi512_si256(s1)),
      _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(s1, 1))};
  float* acc = job.acc + size_t(b) * kRowsPerBlock;
  const size_t at = (size_t(g) * blocks + b) * kRowsPerBlock;
  for (int v = 0; v < 4; ++v) {
    const __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(s[v], _mm512_set1_epi32(offset)));
    __m512 a =
        _mm512_fmadd_ps(f, _mm512_loadu_ps(w.scales + at + 16 * v), _mm512_loadu_ps(acc + 16 * v));
    if (job.xsum) { // binary bias: bias * sum x of the group
      a = _mm512_fmadd_ps(_mm512_loadu_ps(w.biases + at + 16 * v), _mm512_set1_ps(job.xsum[g]), a);
    }
    _mm512_storeu_ps(acc + 16 * v, a);
  }
}

// One table lookup: the 64 rows' (low, high) byte planes for their indices i.
struct Planes {
  __m512i lo, hi;
};

// Ternary: 4 weights an index, every index in 0..255 of one 256-entry table.
struct TernaryLookup {
  static constexpr int kPerIndex = 4;
  static constexpr size_t kBytes = kTableBytes;
  static constexpr int kBias = kOffset;
  static Planes at(const uint8_t* t, __m512i i) {
    return {
        _mm512_permutex2var_epi8(_mm512_loadu_si512(t), i, _mm512_loadu_si512(t + 64)),
        _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 128), i, _mm512_loadu_si512(t + 192))};
  }
};

// Binary: 8 signs an index; vpermi2b reaches 128 entries, so the index's top
// bit picks between the two halves of each plane.
struct BinaryLookup {
  static constexpr int kPerIndex = 8;
  static constexpr size_t kBytes = kOctetTableBytes;
  static constexpr int kBias = kOctetOffset;
  static __m512i half(const uint8_t* t, __m512i i, __mmask64 top) {
    return _mm512_mask_blend_epi8(
        top, _mm512_permutex2var_epi8(_mm512_loadu_si512(t), i, _mm512_loadu_si512(t + 64)),
        _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 128), i, _mm512_loadu_si512(t + 192)));
  }
  static Planes at(const uint8_t* t, __m512i i) {
    const __mmask64 top = _mm512_movepi8_mask(i); // entries 128..255
    return {half(t, i, top), half(t + 256, i, top)};
  }
};

template <typename Lookup>
void lookup_blocks(void* ctx, int b0, int b1) {
  const Job& job = *static_cast<const Job*>(ctx);
  const LutWeight& w = *job.w;
  const int G = w.K / w.group_size, Q = w.group_size / Lookup::kPerIndex;
  const int blocks = lut_row_blocks(w.N);
  const __m512i low = _mm512_set1_epi16(0xFF);
  for (int b = b0; b < b1; ++b) {
    std::memset(job.acc + size_t(b) * kRowsPerBlock, 0, sizeof(float) * kRowsPerBlock);
  }
  // Groups outer: one group's tables stay in L1 for all blocks.
  for (int g = 0; g < G; ++g) {
    const uint8_t* tg = job.tables + size_t(g) * Q * Lookup::kBytes;
    for (int b = b0; b < b1; ++b) {
      const uint8_t* ib = w.idx + (size_t(g) * blocks + b) * Q * kRowsPerBlock;
      __m512i even = _mm512_setzero_si512(), odd = even, high = even;
      for (int q = 0; q < Q; ++q) {
        const __m512i i = _mm512_loadu_si512(ib + size_t(q) * kRowsPerBlock);
        const Planes p = Lookup::at(tg + size_t(q) * Lookup::kBytes, i);
        even = _mm512_add_epi16(even, _mm512_and_si512(p.lo, low));
        odd = _mm512_add_epi16(odd, _mm512_srli_epi16(p.lo, 8));
        high = _mm512_add_epi8(high, p.hi);
      }
      flush(job, g, b, even, odd, high, Lookup::kBias * Q);
    }
  }
}

void repack(const PackedWeight& w, uint8_t* idx, float* scales, float* biases) {
  if (w.format == int(lowbit::Format::Binary)) {
    repack_binary(w, idx, scales, biases);
  } else {
    repack_ternary(w, idx, scales);
  }
}

bool gemv(const LutWeight& w, const int8_t* xq, float xscale, float* out, ParallelFor parallel) {
  const bool binary = w.format == int(lowbit::Format::Binary);
  const int blocks = lut_row_blocks(w.N), G = w.K / w.group_size;
  const size_t table_bytes =
      binary ? size_t(w.K / 8) * kOctetTableBytes : size_t(w.K / 4) * kTableBytes;
  auto* tables = static_cast<uint8_t*>(std::malloc(table_bytes));
  auto* acc =
      static_cast<float*>(std::malloc(sizeof(float) * (size_t(blocks) * kRowsPerBlock + G)));
  if (!tables || !acc) {
    std::free(tables);
    std::free(acc);
    return false;
  }
  float* xsum = acc + size_t(blocks) * kRowsPerBlock;
  if (binary && w.biases) {
    for (int g = 0; g < G; ++g) {
      int sum = 0;
      for (int k = g * w.group_size; k < (g + 1) * w.group_size; ++k) {
        sum += xq[k];
      }
      xsum[g] = float(sum);
    }
  }
  Job job{&w, tables, binary && w.biases ? xsum : nullptr, acc};
  if (binary) {
    build_tables_binary(xq, w.K, tables);
    parallel(blocks, &lookup_blocks<BinaryLookup>, &job);
  } else {
    build_tables(xq, w.K, tables);
    parallel(blocks, &lookup_blocks<TernaryLookup>, &job);
  }
  for (int n = 0; n < w.N; ++n) {
    out[n] = xscale * acc[n];
  }
  std::free(tables);
  std::free(acc);
  return true;
}

// Float x, by table lookup of nibble sums. A 4-bit index covers 2 ternary
// weights (index c_0 + 3 c_1 of their codes c = t + 1) or 4 binary ones (its
// bits are their signs, as stored); per 2 or 4 activations a 16-float table
// holds the sum sum_k t_k x_k (ternary: 9 entries) or sum_k s_k x_k (binary:
// all 16) of every index, and vpermps looks up 16 rows' entries at once from
// the low 4 bits of each lane. Per index vector (16 rows x 2 or 4 weights)
// that is a shift, a permute and an add, where decoding codes for an FMA
// costs a broadcast, a shift, a permute and the FMA per 16 weights. The sums
// stay fp32 (each entry rounded once, then fp32 adds), in another order than
// the FMA kernel's.
constexpr int kNibbleRows = 16;
constexpr uint32_t kTernaryZeros = 0x44444444u; // every pair t = (0, 0): rows past N

void repack_nibbles(const PackedWeight& w, uint32_t* idx, float* scales, float* biases) {
  const bool binary = w.format == int(lowbit::Format::Binary);
  const int per_word = 8 * lut_nibble_weights(w.format);
  const int G = w.K / w.group_size, D = w.group_size / per_word; // words per group
  const int blocks = lut_nibble_blocks(w.N);
  const size_t words = lut_nibble_words(w.N, w.K, w.format);
  const size_t count = lut_nibble_scale_count(w.N, w.K, w.group_size);
  for (size_t i = 0; i < words; ++i) {
    idx[i] = binary ? 0 : kTernaryZeros;
  }
  std::memset(scales, 0, sizeof(float) * count);
  if (biases) {
    std::memset(biases, 0, sizeof(float) * count);
  }
  for (int n = 0; n < w.N; ++n) {
    const int b = n / kNibbleRows, lane = n % kNibbleRows;
    const uint32_t* row = w.packed + size_t(n) * w.words_per_row;
    for (int g = 0; g < G; ++g) {
      const size_t s = size_t(n) * G + g, at = (size_t(g) * blocks + b) * kNibbleRows + lane;
      scales[at] = stored(w, w.scales, s);
      if (biases) {
        biases[at] = stored(w, w.biases, s);
      }
      for (int d = 0; d < D; ++d) {
        uint32_t out = 0;
        if (binary) {
          out = row[(g * w.group_size) / 32 + d]; // bit b = weight b: nibbles as they are
        } else {
          const uint32_t word = row[(g * w.group_size + 16 * d) / lowbit::ternary::kPerWord];
          for (int j = 0; j < 8; ++j) {
            const uint32_t c0 = (word >> (4 * j)) & 3, c1 = (word >> (4 * j + 2)) & 3;
            out |= (c0 + 3 * c1) << (4 * j);
          }
        }
        idx[((size_t(g) * blocks + b) * D + d) * kNibbleRows + lane] = out;
      }
    }
  }
}

struct NibbleJob {
  const LutNibbleWeight* w;
  int M;
  const float* tables; // (M, K / weights per index, 16)
  const float* xsum;   // (M, G), binary with biases only
  float* out;          // (M, blocks * 16)
};

constexpr int kNibbleBlocksPerPass = 4; // row blocks that share each table load

// Rows [b0, b1) of 16-row blocks, every row of x.
void nibble_blocks(void* ctx, int b0, int b1) {
  const NibbleJob& job = *static_cast<const NibbleJob*>(ctx);
  const LutNibbleWeight& w = *job.w;
  const int per_index = lut_nibble_weights(w.format);
  const int G = w.K / w.group_size, D = w.group_size / (8 * per_index);
  const int blocks = lut_nibble_blocks(w.N);
  const size_t row_tables = size_t(w.K / per_index) * kNibbleRows;
  const size_t row_out = size_t(blocks) * kNibbleRows;
  const uint32_t pad = w.format == int(lowbit::Format::Binary) ? 0 : kTernaryZeros;
  for (int m = 0; m < job.M; ++m) {
    std::memset(
        job.out + m * row_out + size_t(b0) * kNibbleRows, 0,
        sizeof(float) * (b1 - b0) * kNibbleRows);
  }
  // Groups outer: a group's tables (8 indices x 64 bytes a word, per row of
  // x) stay in L1 while every block of the thread passes over them.
  for (int g = 0; g < G; ++g) {
    for (int b = b0; b < b1; b += kNibbleBlocksPerPass) {
      const int nb = b1 - b < kNibbleBlocksPerPass ? b1 - b : kNibbleBlocksPerPass;
      const uint32_t* ib = w.idx + (size_t(g) * blocks + b) * D * kNibbleRows;
      for (int m = 0; m < job.M; ++m) {
        const float* tg = job.tables + m * row_tables + size_t(g) * 8 * D * kNibbleRows;
        __m512 acc[kNibbleBlocksPerPass][2];
#pragma GCC unroll 4
        for (int j = 0; j < kNibbleBlocksPerPass; ++j) {
          acc[j][0] = acc[j][1] = _mm512_setzero_ps();
        }
        for (int d = 0; d < D; ++d) {
          __m512i iv[kNibbleBlocksPerPass];
#pragma GCC unroll 4
          for (int j = 0; j < kNibbleBlocksPerPass; ++j) {
            iv[j] = j < nb ? _mm512_loadu_si512(ib + (size_t(j) * D + d) * kNibbleRows)
                           : _mm512_set1_epi32(int(pad));
          }
          // Unrolled, so that the accumulators stay in registers.
#pragma GCC unroll 8
          for (int p = 0; p < 8; ++p) {
            const __m512 t = _mm512_loadu_ps(tg + size_t(8 * d + p) * kNibbleRows);
#pragma GCC unroll 4
            for (int j = 0; j < kNibbleBlocksPerPass; ++j) {
              acc[j][p & 1] = _mm512_add_ps(acc[j][p & 1], _mm512_permutexvar_ps(iv[j], t));
              iv[j] = _mm512_srli_epi32(iv[j], 4);
            }
          }
        }
        for (int j = 0; j < nb; ++j) {
          float* o = job.out + m * row_out + size_t(b + j) * kNibbleRows;
          const size_t at = (size_t(g) * blocks + b + j) * kNibbleRows;
          __m512 r = _mm512_fmadd_ps(
              _mm512_add_ps(acc[j][0], acc[j][1]), _mm512_loadu_ps(w.scales + at),
              _mm512_loadu_ps(o));
          if (job.xsum) { // binary bias: bias * sum x of the group
            r = _mm512_fmadd_ps(
                _mm512_loadu_ps(w.biases + at), _mm512_set1_ps(job.xsum[m * G + g]), r);
          }
          _mm512_storeu_ps(o, r);
        }
      }
    }
  }
}

// The 16-entry tables of one row of x: entry i of table q is the sum of
// x_{qP + k} times weight k's value under index i (P weights an index).
void build_nibble_tables(const float* x, int K, bool binary, float* tables) {
  alignas(64) float v[4][kNibbleRows];
  for (int i = 0; i < kNibbleRows; ++i) {
    for (int k = 0; k < 4; ++k) {
      if (binary) {
        v[k][i] = (i >> k) & 1 ? 1.0f : -1.0f;
      } else {
        v[k][i] = k < 2 && i < 9 ? float((k == 0 ? i % 3 : i / 3) - 1) : 0.0f;
      }
    }
  }
  const __m512 v0 = _mm512_load_ps(v[0]), v1 = _mm512_load_ps(v[1]);
  if (!binary) {
    for (int q = 0; q < K / 2; ++q) {
      _mm512_storeu_ps(
          tables + size_t(q) * kNibbleRows,
          _mm512_fmadd_ps(
              v1, _mm512_set1_ps(x[2 * q + 1]), _mm512_mul_ps(v0, _mm512_set1_ps(x[2 * q]))));
    }
    return;
  }
  const __m512 v2 = _mm512_load_ps(v[2]), v3 = _mm512_load_ps(v[3]);
  for (int q = 0; q < K / 4; ++q) {
    const float* xq = x + 4 * q;
    __m512 e = _mm512_mul_ps(v0, _mm512_set1_ps(xq[0]));
    e = _mm512_fmadd_ps(v1, _mm512_set1_ps(xq[1]), e);
    e = _mm512_fmadd_ps(v2, _mm512_set1_ps(xq[2]), e);
    _mm512_storeu_ps(
        tables + size_t(q) * kNibbleRows, _mm512_fmadd_ps(v3, _mm512_set1_ps(xq[3]), e));
  }
}

bool gemv_nibbles(
    const LutNibbleWeight& w, const float* x, int M, float* out, ParallelFor parallel) {
  const bool binary = w.format == int(lowbit::Format::Binary);
  const int blocks = lut_nibble_blocks(w.N), G = w.K / w.group_size;
  const size_t row_tables = size_t(w.K / lut_nibble_weights(w.format)) * kNibbleRows;
  const size_t row_out = size_t(blocks) * kNibbleRows;
  const bool bias = binary && w.biases;
  auto* tables = static_cast<float*>(std::malloc(sizeof(float) * M * row_tables));
  auto* acc = static_cast<float*>(std::malloc(sizeof(float) * M * (row_out + G)));
  if (!tables || !acc) {
    std::free(tables);
    std::free(acc);
    return false;
  }
  float* xsum = acc + M * row_out;
  for (int m = 0; m < M; ++m) {
    const float* xm = x + size_t(m) * w.K;
    build_nibble_tables(xm, w.K, binary, tables + m * row_tables);
    for (int g = 0; bias && g < G; ++g) {
      __m512 s = _mm512_setzero_ps();
      for (int k = g * w.group_size; k < (g + 1) * w.group_size; k += 16) {
        s = _mm512_add_ps(s, _mm512_loadu_ps(xm + k));
      }
      xsum[m * G + g] = _mm512_reduce_add_ps(s);
    }
  }
  NibbleJob job{&w, M, tables, bias ? xsum : nullptr, acc};
  parallel(blocks, &nibble_blocks, &job);
  for (int m = 0; m < M; ++m) {
    std::memcpy(out + size_t(m) * w.N, acc + m * row_out, sizeof(float) * size_t(w.N));
  }
  std::free(tables);
  std::free(acc);
  return true;
}

} // namespace

const LutKernels* avx512_lut_kernels() {
  static const LutKernels table{&repack, &gemv, &repack_nibbles, &gemv_nibbles};
  return &table;
}

} // namespace mlx_lowbit::cpu
