// Copyright © 2026 mlx-lowbit contributors.
//
// ternary (formats/ternary.h): the decoder both kernel families use.
// GEMV sums x over the weights by sign select (no multiply per weight) and
// scales once per group; GEMM writes +-scale or 0 into its tile.
#pragma once

#include "metal/utils.h"

namespace lowbit {

struct TernaryDecoder {
  // GEMV: a lane takes one block of kKMultiple weights per step: two words,
  // one 64-bit load.
  static constant constexpr const int kLaneBlocks = 1;
  static constant constexpr const int kWordsPerBlock = kKMultiple / ternary::kPerWord;

  struct Block {
    uint words[kWordsPerBlock];
  };

  template <int LB>
  LOWBIT_METAL_FUNC static void load_lane(WeightRow r, int block, int valid, thread Block* out) {
    static_assert(LB == kLaneBlocks, "ternary GEMV lanes take one block");
    static_assert(kWordsPerBlock == 2, "a block is one uint2");
    (void)valid;
    // Rows hold K / 16 words, an even number, so the load is 8-byte aligned.
    uint2 w = *(const device uint2*)(r.words + block * kWordsPerBlock);
    out[0].words[0] = w.x;
    out[0].words[1] = w.y;
  }

  // sum of t * x over weights 8q .. 8q + 7 of the block.
  LOWBIT_METAL_FUNC static float dot8(Block b, int q, thread const float* x) {
    float s = 0.0f;
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      int k = q * kChunk + i;
      uint code = ternary::code_at(b.words[k / ternary::kPerWord], k % ternary::kPerWord);
      s += code == ternary::code_of(1) ? x[i] : (code == ternary::code_of(-1) ? -x[i] : 0.0f);
    }
    return s;
  }

  LOWBIT_METAL_FUNC static float apply(float part, float xsum, ScaleBias sb) {
    (void)xsum;
    return sb.scale * part;
  }

  // Weights k .. k + 7 of the row (k a multiple of 8) as +-scale or 0.
  template <typename T>
  LOWBIT_METAL_FUNC static void values8(WeightRow r, int k, ScaleBias sb, thread T* out) {
    uint word = r.words[k / ternary::kPerWord];
    int base = k % ternary::kPerWord;
    T plus = T(sb.scale);
    T minus = T(-sb.scale);
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      uint code = ternary::code_at(word, base + i);
      out[i] =
          code == ternary::code_of(1) ? plus : (code == ternary::code_of(-1) ? minus : T(0.0f));
    }
  }
};

} // namespace lowbit
