// Copyright © 2026 mlx-lowbit contributors.
//
// codebook (sub-1-bit): each run of v weights along K (v in {8, 16}) is
//   w[n, j*v + i] = scale[n, (j*v) / group] * (bit i of codebook[idx[n, j]] ? +1 : -1).
// codebook: uint8 (2^c,) for v = 8, uint16 (2^c,) for v = 16; bit i of a
//   pattern is weight i of the run (LSB first), bit 1 means +1.
// packed: uint32 (N, index_words_per_row(K, v, c)); row n is a little-endian
//   bit stream in which index j occupies bits [j*c, j*c + c) (it may straddle
//   two words); the row is padded with zero bits to a whole word.
#pragma once

#include "mlx_lowbit/formats/common.h"

namespace lowbit::codebook {

LOWBIT_CONST int kMinIndexBits = 4;
LOWBIT_CONST int kMaxIndexBits = 16;

#ifndef __METAL_VERSION__ // see common.h
static_assert(
    0 < kMinIndexBits && kMinIndexBits <= kMaxIndexBits, "a non-empty range of index widths");
// index_from_words reads an index from at most two words and masks it with
// (1u << c) - 1, both of which need c < 32.
static_assert(kMaxIndexBits < kWordBits, "an index is narrower than a word");
static_assert(kKMultiple % 16 == 0, "every valid K is whole runs of v = 8 or 16");
#endif

LOWBIT_FUNC int runs_per_row(int K, int v) {
  return K / v;
}
LOWBIT_FUNC int index_words_per_row(int K, int v, int c) {
  return (runs_per_row(K, v) * c + kWordBits - 1) / kWordBits;
}
// Index j of a row given the row's words: `lo` = word (j*c)/32 and `hi` the
// word after it (any value when the index does not straddle).
LOWBIT_FUNC uint32_t index_from_words(uint32_t lo, uint32_t hi, int j, int c) {
  int bit = (j * c) % kWordBits;
  uint64_t both = uint64_t(lo) | (uint64_t(hi) << 32);
  return uint32_t(both >> bit) & ((1u << c) - 1u);
}
LOWBIT_FUNC int first_word_of(int j, int c) {
  return (j * c) / kWordBits;
}
LOWBIT_FUNC uint32_t pattern_bit(uint32_t pattern, int i) {
  return (pattern >> i) & 1u;
}

} // namespace lowbit::codebook
