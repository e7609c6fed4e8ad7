// Copyright © 2026 mlx-lowbit contributors.
//
// The SIMD kernels for arm64 NEON with the dot-product extension (sdot:
// every Apple silicon CPU, most ARMv8.2+ cores). Compiled with
// -march=armv8.2-a+dotprod+fp16 (CMakeLists.txt) and called only after
// isa.cpp has checked the CPU for it.

#include <arm_neon.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

namespace mlx_lowbit::cpu {

namespace {

#define LOWBIT_SIMD_BYTES 16
#define LOWBIT_SIMD_MR 12
#define LOWBIT_SIMD_PATTERN_MASK 0
#define LOWBIT_SIMD_PERMUTE_CODES 0
#define LOWBIT_SIMD_WIDE_CODES 0
#include "mlx_lowbit/backend/cpu/simd_types.h"

// Codes (0..2) are valid signed bytes too, so sdot serves u8 x s8 here.
inline vi dot4(vi acc, vi a, vi b) {
  return (vi)vdotq_s32((int32x4_t)acc, (int8x16_t)a, (int8x16_t)b);
}
inline vb bits_to_bytes(uint64_t bits) {
  uint8x16_t v = vcombine_u8(vdup_n_u8(uint8_t(bits)), vdup_n_u8(uint8_t(bits >> 8)));
  const uint8x16_t bit = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  return (vb)vandq_u8(vtstq_u8(v, bit), vdupq_n_u8(1));
}
inline vi broadcast128(const void* p) {
  return (vi)vld1q_s32(static_cast<const int32_t*>(p));
}
inline vf add_if(vf acc, vu word, vu bit, vf x) {
  return acc + (vf)(vtstq_u32((uint32x4_t)word, (uint32x4_t)bit) & (vu)x);
}
inline vi round_even(vf v) {
  return (vi)vcvtnq_s32_f32((float32x4_t)v);
}
inline float half_to_float1(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, 2);
  return float(f);
}
inline void half_to_float_w(const uint16_t* src, float* dst) {
  vst1q_f32(dst, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src))));
}
inline void float_to_half_w(const float* src, uint16_t* dst) {
  vst1_u16(dst, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src))));
}

#include "mlx_lowbit/backend/cpu/simd_kernels.h"

} // namespace

const KernelTable* neon_kernels() {
  static const KernelTable table{"neon",         &matmul_nt,     &matmul_nt_int8, &matmul_nn,
                                 &half_to_float, &float_to_half, &quantize_int8};
  return &table;
}

} // namespace mlx_lowbit::cpu
