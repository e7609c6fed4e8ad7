// Copyright © 2026 mlx-lowbit contributors.
//
// Vector types of one SIMD kernel file (see simd_kernels.h): include inside
// that file's anonymous namespace after defining LOWBIT_SIMD_BYTES.
#pragma once

constexpr int W = LOWBIT_SIMD_BYTES / 4; // 32-bit lanes per vector
typedef float vf __attribute__((vector_size(LOWBIT_SIMD_BYTES)));
typedef int32_t vi __attribute__((vector_size(LOWBIT_SIMD_BYTES)));
typedef uint32_t vu __attribute__((vector_size(LOWBIT_SIMD_BYTES)));
typedef uint64_t vq __attribute__((vector_size(LOWBIT_SIMD_BYTES)));
typedef uint8_t vb __attribute__((vector_size(LOWBIT_SIMD_BYTES)));
