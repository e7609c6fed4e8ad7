// Copyright © 2026 mlx-lowbit contributors.
//
// ternary: w[n, k] = scale[n, k / group] * t, t in {-1, 0, +1}.
// packed: uint32 (N, K / 16); weight k of row n is the 2-bit code
//   (packed[n, k / 16] >> (2 * (k % 16))) & 3, and t = code - 1.
// Code 3 is never written and is rejected when a checkpoint is loaded.
// These are exactly MLX's affine 2-bit codes with bias = -scale, so a
// ternary weight also runs through mx.quantized_matmul(bits=2).
#pragma once

#include "mlx_lowbit/formats/common.h"

namespace lowbit::ternary {

LOWBIT_CONST int kBits = 2;
LOWBIT_CONST int kPerWord = 16;
LOWBIT_CONST uint32_t kCodeMask = 3u;

#ifndef __METAL_VERSION__ // see common.h
static_assert(kBits * kPerWord == kWordBits, "a word holds whole codes and no padding");
static_assert(kCodeMask == (1u << kBits) - 1u, "code_at masks exactly one code");
static_assert(kKMultiple % kPerWord == 0, "every valid K is whole words");
#endif

LOWBIT_FUNC uint32_t code_at(uint32_t word, int i) {
  return (word >> (kBits * i)) & kCodeMask;
}
LOWBIT_FUNC int value_of(uint32_t code) {
  return int(code) - 1;
}
LOWBIT_FUNC uint32_t code_of(int t) {
  return uint32_t(t + 1);
}
LOWBIT_FUNC int words_per_row(int K) {
  return K / kPerWord;
}

} // namespace lowbit::ternary
