// Copyright © 2026 mlx-lowbit contributors.
//
// codebook (formats/codebook.h), V = vector_size: the decoder both kernel
// families use. Each run of V weights is the pattern codebook[index]; the
// pattern's +-1 bits are then treated like binary signs.
#pragma once

#include "metal/utils.h"

namespace lowbit {

template <int V>
struct CodebookDecoder {
  static_assert(V == 8 || V == 16, "codebook runs are 8 or 16 weights");
  // GEMV: rows per simdgroup (kernel_params.h says why).
  static constant constexpr const int kGemvRows = 8;
  static constant constexpr const int kRunsPerBlock = kKMultiple / V;

  struct Block {
    uint patterns[kRunsPerBlock];
  };

  // Index j of the row; it may straddle two words, and the last index of a
  // row has no word after it.
  LOWBIT_METAL_FUNC static uint index_at(WeightRow r, int j) {
    int w = codebook::first_word_of(j, r.index_bits);
    uint lo = r.words[w];
    uint hi = w + 1 < r.words_per_row ? r.words[w + 1] : 0u;
    return codebook::index_from_words(lo, hi, j, r.index_bits);
  }

  LOWBIT_METAL_FUNC static uint pattern_at(WeightRow r, int j) {
    uint index = index_at(r, j);
    return V == 8 ? uint(((const device uint8_t*)r.codebook)[index])
                  : uint(((const device uint16_t*)r.codebook)[index]);
  }

  LOWBIT_METAL_FUNC static void load_lane(WeightRow r, int block, thread Block& out) {
    LOWBIT_UNROLL
    for (int u = 0; u < kRunsPerBlock; ++u) {
      out.patterns[u] = pattern_at(r, block * kRunsPerBlock + u);
    }
  }

  // x_k is pre-scaled by 2^-(k % V), so the pattern bit, masked in place,
  // needs no shift.
  LOWBIT_METAL_FUNC static float prescale(int k) {
    return 1.0f / float(1u << (k % V));
  }

  // sum of x over the +1 weights among 8q .. 8q + 7 of the block (x
  // pre-scaled): a mask, a convert and an FMA per weight.
  LOWBIT_METAL_FUNC static float dot8(Block b, int q, thread const float* x) {
    float s = 0.0f;
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      int k = q * kChunk + i;
      s = fma(float(b.patterns[k / V] & (1u << (k % V))), x[i], s);
    }
    return s;
  }

  LOWBIT_METAL_FUNC static float apply(float part, float xsum, ScaleBias sb) {
    return sb.scale * (2.0f * part - xsum);
  }

  template <typename T>
  LOWBIT_METAL_FUNC static void values8(WeightRow r, int k, ScaleBias sb, thread T* out) {
    uint pattern = pattern_at(r, k / V);
    int base = k % V;
    T plus = T(sb.scale);
    T minus = T(-sb.scale);
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      out[i] = codebook::pattern_bit(pattern, base + i) ? plus : minus;
    }
  }
};

} // namespace lowbit
