// Copyright © 2026 mlx-lowbit contributors.
//
// binary: w[n, k] = scale[n, g] * s + bias[n, g] (bias optional), s in {-1, +1},
// g = k / group. packed: uint32 (N, K / 32); bit b = (packed[n, k / 32] >> (k % 32)) & 1
// and s = 2 * b - 1 (bit 1 means +1). The bit order is MLX's affine 1-bit
// order; an affine checkpoint (w = a * b + c) maps to scale = a / 2,
// bias = c + a / 2.
#pragma once

#include "mlx_lowbit/formats/common.h"

namespace lowbit::binary {

LOWBIT_CONST int kPerWord = 32;

#ifndef __METAL_VERSION__ // see common.h
static_assert(kPerWord == kWordBits, "one bit per weight fills a word");
static_assert(kKMultiple % kPerWord == 0, "every valid K is whole words");
#endif

LOWBIT_FUNC uint32_t bit_at(uint32_t word, int i) {
  return (word >> i) & 1u;
}
LOWBIT_FUNC int sign_of(uint32_t bit) {
  return 2 * int(bit) - 1;
}
LOWBIT_FUNC int words_per_row(int K) {
  return K / kPerWord;
}

} // namespace lowbit::binary
