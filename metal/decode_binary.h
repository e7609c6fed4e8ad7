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

  struct Block {
    uint word;
  };

  // One block (a word) of row r; consecutive lanes read consecutive words.
  LOWBIT_METAL_FUNC static void load_lane(WeightRow r, int block, thread Block& out) {
    out.word = r.words[block];
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

  template <typename T>
  LOWBIT_METAL_FUNC static void values8(WeightRow r, int k, ScaleBias sb, thread T* out) {
    uint word = r.words[k / binary::kPerWord];
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
