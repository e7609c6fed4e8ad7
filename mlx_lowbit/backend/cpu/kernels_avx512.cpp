// Copyright © 2026 mlx-lowbit contributors.
//
// The SIMD kernels for AVX-512 (F, BW, VL, DQ, VNNI: Ice Lake, Zen 4 and
// later). Compiled with those flags (CMakeLists.txt) and called only after
// isa.cpp has checked the CPU for them.

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

namespace mlx_lowbit::cpu {

namespace {

#define LOWBIT_SIMD_BYTES 64
#define LOWBIT_SIMD_MR 12
#define LOWBIT_SIMD_PERMUTE_CODES 1
#define LOWBIT_SIMD_WIDE_CODES 1
#define LOWBIT_SIMD_PATTERN_MASK 1
#include "mlx_lowbit/backend/cpu/simd_types.h"

// u8 codes x s8 activations, 4 per lane: one vpdpbusd.
inline vi dot4(vi acc, vi a, vi b) {
  return (vi)_mm512_dpbusd_epi32((__m512i)acc, (__m512i)a, (__m512i)b);
}
inline vb bits_to_bytes(uint64_t bits) {
  return (vb)_mm512_maskz_mov_epi8(bits, _mm512_set1_epi8(1));
}
inline vi broadcast128(const void* p) {
  return (vi)_mm512_broadcast_i32x4(_mm_loadu_si128(static_cast<const __m128i*>(p)));
}
inline vf add_if(vf acc, vu word, vu bit, vf x) {
  return (vf)_mm512_mask_add_ps(
      (__m512)acc, _mm512_test_epi32_mask((__m512i)word, (__m512i)bit), (__m512)acc, (__m512)x);
}
inline vf permute_codes(vu idx) {
  const __m512 table = _mm512_setr_ps(0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0);
  return (vf)_mm512_permutexvar_ps((__m512i)idx, table);
}
// The 16-bit pattern of 16 codebook weights is their lane mask, loaded
// straight into a mask register.
inline vf add_pattern16(vf acc, const uint16_t* pattern, int, vf x) {
  return (vf)_mm512_mask_add_ps(
      (__m512)acc, _load_mask16(const_cast<__mmask16*>(pattern)), (__m512)acc, (__m512)x);
}
// The same bits as 0.0 / 1.0 without a mask register: broadcast, shift bit
// i down in lane i, and vpermps picks from {0, 1, 0, 1, ...} by the low bits.
inline vf pattern_codes16(const uint16_t* pattern, int) {
  int32_t word;
  std::memcpy(&word, pattern, 4);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 bit = _mm512_setr_ps(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  return (vf)_mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi32(word), lane), bit);
}
inline vi round_even(vf v) {
  return (vi)_mm512_cvtps_epi32((__m512)v); // MXCSR's default: to nearest even
}
inline float half_to_float1(uint16_t h) {
  return _cvtsh_ss(h);
}
inline void half_to_float_w(const uint16_t* src, float* dst) {
  _mm512_storeu_ps(dst, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))));
}
inline void float_to_half_w(const float* src, uint16_t* dst) {
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(dst),
      _mm512_cvtps_ph(_mm512_loadu_ps(src), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

#include "mlx_lowbit/backend/cpu/simd_kernels.h"

} // namespace

const KernelTable* avx512_kernels() {
  static const KernelTable table{"avx512",       &matmul_nt,     &matmul_nt_int8, &matmul_nn,
                                 &half_to_float, &float_to_half, &quantize_int8};
  return &table;
}

} // namespace mlx_lowbit::cpu
