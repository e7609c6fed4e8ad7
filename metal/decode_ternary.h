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
  // GEMM: packed words of a row the tile stages at once (gemm.h): one
  // 16-word window. A K-iteration is 2 words from an even word, and windows
  // start on even words too (rows hold an even number), so it never needs
  // two.
  static constant constexpr const int kGemmRing = 16;
  static constant constexpr const int kWordsPerBlock = kKMultiple / ternary::kPerWord;

  struct Block {
    uint words[kWordsPerBlock];
  };

  // GEMV: lane `lane` takes block k0 / kKMultiple + lane of row r, 2 words
  // in one 64-bit load: the lanes of a simdgroup read 256 contiguous bytes.
  // Rows hold K / 16 words, an even number, and eval_gpu binds `packed`
  // kBindingAlignment-aligned, so the load is 8-byte aligned. No per-row
  // state and no table (the codebook decoder has both).
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
    static_assert(kWordsPerBlock == 2, "a block is one uint2");
    if (in_k) {
      int block = k0 / kKMultiple + int(lane);
      uint2 w = *(const device uint2*)(r.words + block * kWordsPerBlock);
      out.words[0] = w.x;
      out.words[1] = w.y;
    }
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

  // The words of a row that hold weights [k, k_end) (multiples of
  // kKMultiple): [first_word(k), end_word(k_end)).
  LOWBIT_METAL_FUNC static int first_word(int k, int /* index_bits */) {
    return k / ternary::kPerWord;
  }
  LOWBIT_METAL_FUNC static int end_word(int k_end, int /* index_bits */) {
    return ceil_div(k_end, ternary::kPerWord);
  }

  // Weights k .. k + 7 of the row (k a multiple of 8) as +-scale or 0.
  template <typename T, typename Row>
  LOWBIT_METAL_FUNC static void values8(Row r, int k, ScaleBias sb, thread T* out) {
    uint word = word_at(r, k / ternary::kPerWord);
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
