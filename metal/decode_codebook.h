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
  // GEMM: packed words of a row the tile stages at once (gemm.h): two
  // 16-word windows, since a K-iteration's c * 32 / V <= 32 bits may
  // straddle two words and so two windows.
  static constant constexpr const int kGemmRing = 32;
  static constant constexpr const int kRunsPerBlock = kKMultiple / V;

  struct Block {
    uint patterns[kRunsPerBlock];
  };

  // Index j of the row; it may straddle two words, and the last index of a
  // row has no word after it.
  template <typename Row>
  LOWBIT_METAL_FUNC static uint index_at(Row r, int j) {
    int w = codebook::first_word_of(j, r.index_bits);
    uint lo = word_at(r, w);
    uint hi = w + 1 < r.words_per_row ? word_at(r, w + 1) : 0u;
    return codebook::index_from_words(lo, hi, j, r.index_bits);
  }

  template <typename Row>
  LOWBIT_METAL_FUNC static uint device_pattern(Row r, uint index) {
    return V == 8 ? uint(((const device uint8_t*)r.codebook)[index])
                  : uint(((const device uint16_t*)r.codebook)[index]);
  }

  template <typename Row>
  LOWBIT_METAL_FUNC static uint pattern_at(Row r, int j) {
    return device_pattern(r, index_at(r, j));
  }

  // GEMV. The patterns of a codebook of up to kTableBits bits (all of v = 8,
  // whose c <= 8; v = 16 up to 8 KB) are copied once per threadgroup into
  // threadgroup memory; larger ones are read from device memory.
  static constant constexpr const int kTableBits = V == 8 ? 8 : 12;
  typedef ushort TableEntry;
  static constant constexpr const int kTableEntries = 1 << kTableBits;

  LOWBIT_METAL_FUNC static void load_table(threadgroup TableEntry* table, WeightRow r, uint tid) {
    if (r.index_bits <= kTableBits) {
      for (int i = int(tid); i < (1 << r.index_bits); i += kGemvThreads) {
        table[i] = TableEntry(device_pattern(r, uint(i)));
      }
    }
  }

  // GEMV: a simdgroup's window on one row's index words. A step of
  // kGemvStepK weights takes B = c * 32 / V <= 32 words (c <= v), starting
  // on a word boundary; lane l holds words base + l (lo) and base + 32 + l
  // (hi), 0 outside the row, with `base` on a kSimdWords block of the
  // buffer. Each word is loaded once, by 32 lanes reading 128 contiguous,
  // aligned bytes (whole lines), and the lanes take the words their indices
  // sit in from each other with simd_shuffle. (Before, each lane read each
  // index and its following word itself: neighbouring lanes read the same
  // words, and a simdgroup used 59-74% of the lines it touched.)
  struct Stream {
    uint lo;
    uint hi;
    int base;
  };

  LOWBIT_METAL_FUNC static uint stream_word(WeightRow r, int w) {
    return 0 <= w && w < r.words_per_row ? r.words[w] : 0u;
  }

  // Word base + d of the window, d in [0, 2 * kSimdWords], to every lane
  // that asks (all lanes must take part).
  LOWBIT_METAL_FUNC static uint window_word(thread const Stream& s, int d) {
    ushort from = ushort(d % kSimdWords);
    uint lo = simd_shuffle(s.lo, from);
    uint hi = simd_shuffle(s.hi, from);
    return d < kSimdWords ? lo : (d < 2 * kSimdWords ? hi : 0u);
  }

  // Block k0 / kKMultiple + lane of row r (k0 a multiple of kGemvStepK).
  // Every lane of the simdgroup calls it (the shuffles); lanes past K
  // (in_k false) look up no patterns.
  LOWBIT_METAL_FUNC static void load_step(
      WeightRow r,
      thread Stream& s,
      const threadgroup TableEntry* table,
      int k0,
      ushort lane,
      bool in_k,
      thread Block& out) {
    const int c = r.index_bits;
    // The window moves to the block of the step's first word: by one block
    // at most, since a step is at most kSimdWords words.
    const int base = ((r.phase + first_word(k0, c)) & ~(kSimdWords - 1)) - r.phase;
    if (k0 == 0) {
      s.lo = stream_word(r, base + int(lane));
      s.hi = stream_word(r, base + kSimdWords + int(lane));
    } else if (base != s.base) {
      s.lo = s.hi;
      s.hi = stream_word(r, base + kSimdWords + int(lane));
    }
    s.base = base;
    // The lane's indices span at most two words (c * 32 / V <= 32 bits).
    const int j0 = (k0 / kKMultiple + int(lane)) * kRunsPerBlock;
    const int w0 = codebook::first_word_of(j0, c);
    const uint first = window_word(s, w0 - base);
    const uint second = window_word(s, w0 - base + 1);
    if (!in_k) {
      return;
    }
    LOWBIT_UNROLL
    for (int u = 0; u < kRunsPerBlock; ++u) {
      const int j = j0 + u;
      const bool in_first = codebook::first_word_of(j, c) == w0;
      const uint index =
          codebook::index_from_words(in_first ? first : second, in_first ? second : 0u, j, c);
      out.patterns[u] = c <= kTableBits ? uint(table[index]) : device_pattern(r, index);
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

  // The words of a row that hold weights [k, k_end) (multiples of
  // kKMultiple, so whole runs): [first_word(k), end_word(k_end)).
  LOWBIT_METAL_FUNC static int first_word(int k, int index_bits) {
    return codebook::first_word_of(k / V, index_bits);
  }
  LOWBIT_METAL_FUNC static int end_word(int k_end, int index_bits) {
    return codebook::index_words_per_row(k_end, V, index_bits);
  }

  template <typename T, typename Row>
  LOWBIT_METAL_FUNC static void values8(Row r, int k, ScaleBias sb, thread T* out) {
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
