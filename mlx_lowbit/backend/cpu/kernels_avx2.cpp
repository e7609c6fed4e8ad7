// Copyright © 2026 mlx-lowbit contributors.
//
// The SIMD kernels for AVX2 + FMA + F16C (Haswell, Zen 1 and later).
// Compiled with those flags (CMakeLists.txt) and called only after isa.cpp
// has checked the CPU for them.

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

namespace mlx_lowbit::cpu {

namespace {

#define LOWBIT_SIMD_BYTES 32
#define LOWBIT_SIMD_MR 6
#define LOWBIT_SIMD_PATTERN_MASK 0
#define LOWBIT_SIMD_PERMUTE_CODES 1
#define LOWBIT_SIMD_WIDE_CODES 1
#include "mlx_lowbit/backend/cpu/simd_types.h"

// u8 codes x s8 activations: vpmaddubsw (pairs into int16; codes <= 2 keep
// them far from saturation) then vpmaddwd with ones (pairs into int32).
inline vi dot4(vi acc, vi a, vi b) {
  __m256i pairs = _mm256_maddubs_epi16((__m256i)a, (__m256i)b);
  return acc + (vi)_mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}
inline vb bits_to_bytes(uint64_t bits) {
  // Byte i takes source byte i / 8 (pshufb works per 128-bit half, and both
  // halves hold the 4 source bytes), then tests its bit i % 8.
  __m256i v = _mm256_set1_epi32(int(uint32_t(bits)));
  const __m256i spread = _mm256_setr_epi8(
      0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3,
      3);
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  v = _mm256_and_si256(_mm256_shuffle_epi8(v, spread), bit);
  return (vb)_mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(1));
}
inline vi broadcast128(const void* p) {
  return (vi)_mm256_broadcastsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}
inline vf add_if(vf acc, vu word, vu bit, vf x) {
  return acc + (vf)((vi)((word & bit) == bit) & (vi)x);
}
inline vf permute_codes(vu idx) {
  const __m256 table = _mm256_setr_ps(0, 1, 2, 0, 0, 1, 2, 0);
  return (vf)_mm256_permutevar8x32_ps(table, (__m256i)idx);
}
inline vi round_even(vf v) {
  return (vi)_mm256_cvtps_epi32((__m256)v); // MXCSR's default: to nearest even
}
inline float half_to_float1(uint16_t h) {
  return _cvtsh_ss(h);
}
inline void half_to_float_w(const uint16_t* src, float* dst) {
  _mm256_storeu_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src))));
}
inline void float_to_half_w(const float* src, uint16_t* dst) {
  _mm_storeu_si128(
      reinterpret_cast<__m128i*>(dst),
      _mm256_cvtps_ph(_mm256_loadu_ps(src), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

#include "mlx_lowbit/backend/cpu/simd_kernels.h"

} // namespace

const KernelTable* avx2_kernels() {
  static const KernelTable table{"avx2",         &matmul_nt,     &matmul_nt_int8, &matmul_nn,
                                 &half_to_float, &float_to_half, &quantize_int8};
  return &table;
}

} // namespace mlx_lowbit::cpu
