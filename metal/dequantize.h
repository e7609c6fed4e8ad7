// Copyright © 2026 mlx-lowbit contributors.
//
// The (N, K) weight in a float dtype, decoded by the same Decoder::values8
// the GEMM uses for its weight tiles. A threadgroup writes kDequantizeK
// weights of one row: it first copies their packed words and group scales
// to threadgroup memory, consecutive threads reading consecutive words (a
// simdgroup's loads are whole 64-byte lines, where each thread's own chunk
// would read a quarter of a word, or a codebook index and its following
// word), then each thread decodes kChunk weights from the copy and writes
// them with one 16-byte store (two for float).
#pragma once

#include "metal/utils.h"

namespace lowbit {

// Packed words of kDequantizeK weights of a row: ternary 2 bits per weight,
// binary 1, a codebook at most 1 (c <= v). Every range starts on a word
// boundary (kDequantizeK / v runs of c bits are whole words).
LOWBIT_CONST int kDequantizeWords = kDequantizeK * 2 / kWordBits;
// Groups of kDequantizeK weights: group sizes are multiples of kKMultiple,
// and the range may start inside one.
LOWBIT_CONST int kDequantizeGroups = kDequantizeK / kKMultiple + 1;

} // namespace lowbit

template <typename Decoder, typename T>
[[kernel, max_total_threads_per_threadgroup(lowbit::kDequantizeThreads)]] void lowbit_dequantize(
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    constant lowbit::WeightParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]]) {
  using namespace lowbit;
  threadgroup uint32_t words[kDequantizeWords];
  threadgroup float group_scales[kDequantizeGroups];
  threadgroup float group_biases[kDequantizeGroups];

  const WeightParams w = params;
  const int n = int(group.y);
  const int k0 = int(group.x) * kDequantizeK;
  const int k1 = imin(k0 + kDequantizeK, w.K);
  const WeightSource src = {packed, scales, biases, codebook};
  const WeightRow row = row_of(src, w, n);
  const int first = Decoder::first_word(k0, w.index_bits);
  const int end = Decoder::end_word(k1, w.index_bits);
  // Thread t reads the word t places past the line that holds the first
  // word, so a simdgroup's loads start on a line boundary even where the row
  // does not (codebook rows are any number of words).
  const int lead = int((size_t(n) * size_t(w.words_per_row) + size_t(first)) % kLineWords);
  for (int i = int(tid) - lead; i < end - first; i += kDequantizeThreads) {
    if (i >= 0) {
      words[i] = row.words[first + i];
    }
  }
  const int g0 = k0 / w.group_size;
  for (int i = int(tid); i < ceil_div(k1, w.group_size) - g0; i += kDequantizeThreads) {
    ScaleBias sb = load_scale_bias(src, w, n, g0 + i);
    group_scales[i] = sb.scale;
    group_biases[i] = sb.bias;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);

  const int k = k0 + int(tid) * kChunk;
  if (k >= k1) {
    return;
  }
  // A codebook index reads its following word only inside the copy.
  const StagedRow staged = {words, first, -1, 0, end, w.index_bits, codebook};
  const int g = k / w.group_size - g0;
  const ScaleBias sb = {group_scales[g], group_biases[g]};
  T v[kChunk];
  Decoder::template values8<T>(staged, k, sb, v);
  // K is a multiple of kKMultiple and out a fresh array: the store is aligned.
  Chunk8<int(sizeof(T))>::store(out + size_t(n) * size_t(w.K) + size_t(k), v);
}
