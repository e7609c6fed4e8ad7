// Copyright © 2026 mlx-lowbit contributors.
//
// What every kernel family shares: the weight's buffers, per-group scales,
// and the lane layout of an 8x8 simdgroup matrix.
#pragma once

#include <metal_stdlib>
#include <metal_simdgroup>
#include <metal_simdgroup_matrix>

using namespace metal;

#include "mlx_lowbit/formats.h"
#include "mlx_lowbit/kernel_params.h"

#define LOWBIT_METAL_FUNC inline __attribute__((always_inline))
#define LOWBIT_UNROLL _Pragma("clang loop unroll(full)")

namespace lowbit {

// Words of a 64-byte line: staging loads that start on a line boundary read
// whole lines.
LOWBIT_CONST int kLineWords = 16;
// Words a simdgroup loads at once, one per lane (128 bytes, two lines).
LOWBIT_CONST int kSimdWords = 32;

// The arrays of one quantized weight (slots LOWBIT_BUFFER_PACKED ..
// LOWBIT_BUFFER_CODEBOOK). Scales and biases are float16 or float32
// (WeightParams::scales_f32); biases and codebook may be dummies that are
// never read.
struct WeightSource {
  const device uint32_t* packed;
  const device uchar* scales;
  const device uchar* biases;
  const device uchar* codebook;
};

// One row of the packed array, with what a decoder needs besides it.
struct WeightRow {
  const device uint32_t* words;
  int words_per_row;
  int index_bits;
  const device uchar* codebook;
  // Where the row's first word sits in its kSimdWords block of the buffer
  // (rows are any number of words): loads aligned to these blocks read
  // whole lines.
  int phase;
};

LOWBIT_METAL_FUNC WeightRow row_of(WeightSource src, WeightParams w, int n) {
  WeightRow r;
  const size_t first = size_t(n) * size_t(w.words_per_row);
  r.words = src.packed + first;
  r.words_per_row = w.words_per_row;
  r.index_bits = w.index_bits;
  r.codebook = src.codebook;
  r.phase = int(first % size_t(kSimdWords));
  return r;
}

// Word i of the row. The decoders read words only through word_at, so they
// decode from device memory and from a staged copy alike.
LOWBIT_METAL_FUNC uint word_at(WeightRow r, int i) {
  return r.words[i];
}

// Words of one row that a kernel staged in threadgroup memory, read once from
// device memory with whole-line loads. Word i sits at slot
// ((i - first) & mask) ^ swizzle: a flat copy (mask -1, swizzle 0) starting
// at word `first`, or a ring of mask + 1 slots whose XOR swizzle spreads the
// rows of a tile over the banks (gemm.h). words_per_row bounds what a
// codebook index may read after itself.
struct StagedRow {
  const threadgroup uint32_t* slots;
  int first;
  int mask;
  int swizzle;
  int words_per_row;
  int index_bits;
  const device uchar* codebook;
};

LOWBIT_METAL_FUNC uint word_at(StagedRow r, int i) {
  return r.slots[((i - r.first) & r.mask) ^ r.swizzle];
}

// Eight consecutive values (kChunk) in as few 16-byte stores as they fill:
// one for 2-byte types, two for float.
template <int Bytes>
struct Chunk8;
template <>
struct Chunk8<2> {
  template <typename T>
  LOWBIT_METAL_FUNC static uint4 pack(thread const T* v) {
    uint2 lo = as_type<uint2>(vec<T, 4>(v[0], v[1], v[2], v[3]));
    uint2 hi = as_type<uint2>(vec<T, 4>(v[4], v[5], v[6], v[7]));
    return uint4(lo.x, lo.y, hi.x, hi.y);
  }
  template <typename T>
  LOWBIT_METAL_FUNC static void store(threadgroup T* dst, thread const T* v) {
    *(threadgroup uint4*)dst = pack(v);
  }
  template <typename T>
  LOWBIT_METAL_FUNC static void store(device T* dst, thread const T* v) {
    *(device uint4*)dst = pack(v);
  }
};
template <>
struct Chunk8<4> {
  template <typename T>
  LOWBIT_METAL_FUNC static void store(threadgroup T* dst, thread const T* v) {
    *(threadgroup vec<T, 4>*)dst = vec<T, 4>(v[0], v[1], v[2], v[3]);
    *(threadgroup vec<T, 4>*)(dst + 4) = vec<T, 4>(v[4], v[5], v[6], v[7]);
  }
  template <typename T>
  LOWBIT_METAL_FUNC static void store(device T* dst, thread const T* v) {
    *(device vec<T, 4>*)dst = vec<T, 4>(v[0], v[1], v[2], v[3]);
    *(device vec<T, 4>*)(dst + 4) = vec<T, 4>(v[4], v[5], v[6], v[7]);
  }
};

// Scale and bias of (row n, group g), read once per group.
struct ScaleBias {
  float scale;
  float bias;
};

LOWBIT_METAL_FUNC float load_group_value(const device uchar* values, WeightParams w, int n, int g) {
  size_t i = size_t(n) * size_t(w.K / w.group_size) + size_t(g);
  return w.scales_f32 ? ((const device float*)values)[i] : float(((const device half*)values)[i]);
}

LOWBIT_METAL_FUNC ScaleBias load_scale_bias(WeightSource src, WeightParams w, int n, int g) {
  ScaleBias sb;
  sb.scale = load_group_value(src.scales, w, n, g);
  sb.bias = w.has_bias ? load_group_value(src.biases, w, n, g) : 0.0f;
  return sb;
}

// Lane `lane` of an 8x8 simdgroup matrix holds row .y, columns .x and .x + 1
// (Apple's fragment layout).
LOWBIT_METAL_FUNC short2 fragment_coord(ushort lane) {
  const short quad = short(lane / 4);
  return short2(short((quad & 2) * 2 + (lane % 2) * 2), short((quad & 4) + (lane / 2) % 4));
}

} // namespace lowbit
