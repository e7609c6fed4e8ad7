// Copyright © 2026 mlx-lowbit contributors.
//
// binary (formats/binary.h): the decoder both kernel families use.
// sum(s * x) = 2 * sum(x where s = +1) - sum(x): GEMV adds x by sign select
// and applies scale and bias once per group; GEMM writes bias +- scale.
#pragma once

#include "metal/utils.h"

namespace lowbit {

struct BinaryDecoder {
  // GEMV: rows per simdgroup (kernel_params.h says why).
  static constant constexpr const int kGemvRows = 8;
  // GEMM: packed words of a row the tile stages at once (gemm.h): one
  // 16-word window, since a K-iteration is one word.
  static constant constexpr const int kGemmRing = 16;

  struct Block {
    uint word;
  };

  // GEMV: lane `lane` takes block (word) k0 / kKMultiple + lane of row r:
  // the lanes of a simdgroup read 128 contiguous bytes. No per-row state and
  // no table (the codebook decoder has both).
  struct Stream {};
  typedef ushort TableEntry;
  static constant constexpr const int kTableEntries = 1;
  LOWBIT_METAL_FUNC static void load_table(threadgroup TableEntry*, WeightRow, uint) {}
  LOWBIT_METAL_FUNC static void load_step(
      WeightRow r,
      thread Stream&,
      const threadgroup TableEntry*,
      int k0,
      ushort lane,
      bool in_k,
      thread Block& out) {
    if (in_k) {
      out.word = r.words[k0 / kKMultiple + int(lane)];
    }
  }

  // x_k is pre-scaled by 2^-k, so the bit, masked in place, needs no shift.
  LOWBIT_METAL_FUNC static float prescale(int k) {
    return 1.0f / float(1u << (k % binary::kPerWord));
  }

  // sum of x over the +1 weights among 8q .. 8q + 7 of the block (x
  // pre-scaled): a mask, a convert and an FMA per weight.
  LOWBIT_METAL_FUNC static float dot8(Block b, int q, thread const float* x) {
    float s = 0.0f;
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      s = fma(float(b.word & (1u << (q * kChunk + i))), x[i], s);
    }
    return s;
  }

  LOWBIT_METAL_FUNC static float apply(float part, float xsum, ScaleBias sb) {
    return sb.scale * (2.0f * part - xsum) + sb.bias * xsum;
  }

  // The words of a row that hold weights [k, k_end) (multiples of
  // kKMultiple): [first_word(k), end_word(k_end)).
  LOWBIT_METAL_FUNC static int first_word(int k, int /* index_bits */) {
    return k / binary::kPerWord;
  }
  LOWBIT_METAL_FUNC static int end_word(int k_end, int /* index_bits */) {
    return ceil_div(k_end, binary::kPerWord);
  }

  template <typename T, typename Row>
  LOWBIT_METAL_FUNC static void values8(Row r, int k, ScaleBias sb, thread T* out) {
    uint word = word_at(r, k / binary::kPerWord);
    int base = k % binary::kPerWord;
    T plus = T(sb.bias + sb.scale);
    T minus = T(sb.bias - sb.scale);
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      out[i] = binary::sign_of(binary::bit_at(word, base + i)) > 0 ? plus : minus;
    }
  }
};

} // namespace lowbit
