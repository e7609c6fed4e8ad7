// Copyright © 2026 mlx-lowbit contributors.
//
// ternary (formats/ternary.h): the decoder both kernel families use.
// A code is t + 1 (0, 1, 2), as an MLX affine 2-bit code with bias -scale,
// so the GEMV uses MLX's 2-bit qdot: sum t x = sum code x - sum x, and
// code_i x_i = (word & (3 << 2i)) * (x_i / 4^i): one mask, one convert, one
// FMA per weight, with x pre-scaled once per lane and shared by all rows.
// GEMM writes +-scale or 0 into its tile.
#pragma once

#include "metal/utils.h"

namespace lowbit {

struct TernaryDecoder {
  // GEMV: rows per simdgroup (kernel_params.h says why).
  static constant constexpr const int kGemvRows = 4;
  static constant constexpr const int kWordsPerBlock = kKMultiple / ternary::kPerWord;

  struct Block {
    uint words[kWordsPerBlock];
  };

  // One block (2 words) of row r: one 64-bit load. Rows hold K / 16 words,
  // an even number, and eval_gpu binds `packed` kBindingAlignment-aligned,
  // so the load is 8-byte aligned.
  LOWBIT_METAL_FUNC static void load_lane(WeightRow r, int block, thread Block& out) {
    static_assert(kWordsPerBlock == 2, "a block is one uint2");
    uint2 w = *(const device uint2*)(r.words + block * kWordsPerBlock);
    out.words[0] = w.x;
    out.words[1] = w.y;
  }

  // What x_k of the block is multiplied by before dot8: 4^-(k % 16), so the
  // code, masked in place, needs no shift.
  LOWBIT_METAL_FUNC static float prescale(int k) {
    return 1.0f / float(1u << (ternary::kBits * (k % ternary::kPerWord)));
  }

  // sum of code * x over weights 8q .. 8q + 7 of the block (x pre-scaled).
  LOWBIT_METAL_FUNC static float dot8(Block b, int q, thread const float* x) {
    float s = 0.0f;
    LOWBIT_UNROLL
    for (int i = 0; i < kChunk; ++i) {
      int k = q * kChunk + i;
      uint mask = ternary::kCodeMask << (ternary::kBits * (k % ternary::kPerWord));
      s = fma(float(b.words[k / ternary::kPerWord] & mask), x[i], s);
    }
    return s;
  }

  // sum t x = sum code x - sum x (code = t + 1, ternary::code_of).
  LOWBIT_METAL_FUNC static float apply(float part, float xsum, ScaleBias sb) {
    return sb.scale * (part - xsum);
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
