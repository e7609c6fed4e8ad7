// Copyright © 2026 mlx-lowbit contributors.
//
// The SIMD kernels, written once with GCC/Clang vector extensions and
// compiled once per ISA: kernels_avx512.cpp, kernels_avx2.cpp and
// kernels_neon.cpp each define the hooks of simd/hooks.h inside an anonymous
// namespace and then include this file, which pulls in the pieces of simd/
// in order. Everything here has internal linkage (see kernel_abi.h for why).
//
// Identity used by every kernel: with c the stored code of a weight (ternary
// c in {0, 1, 2}, t = c - 1; binary / codebook sign bit c in {0, 1},
// s = 2c - 1), the sum over one group g of a row is
//   sum_k w_k x_k = mult * scale_g * sum_k c_k x_k + (bias_g - scale_g) * sum_k x_k
// (mult = 1 ternary, 2 binary / codebook; bias 0 unless binary has biases).
// So the inner loops only add x where a code bit is set (a masked add, or an
// integer dot product with the codes), the scale is applied once per group
// and per lane, and sum_k x_k per group is computed once per row of x.

// The including file has already included, at global scope, <cstdint>,
// <cstdlib>, <cstring>, <type_traits>, kernel_abi.h and formats.h.
#pragma once

// Lets the pieces check that they are included from here only.
#define LOWBIT_SIMD_KERNELS_PIECE 1
#include "mlx_lowbit/backend/cpu/simd/hooks.h"     // contract, helpers
#include "mlx_lowbit/backend/cpu/simd/decode.h"    // packed rows to codes
#include "mlx_lowbit/backend/cpu/simd/gemv.h"      // small M, float x
#include "mlx_lowbit/backend/cpu/simd/gemv_int8.h" // small M, int8 x
#include "mlx_lowbit/backend/cpu/simd/gemm.h"      // larger M
#include "mlx_lowbit/backend/cpu/simd/entry.h"     // the KernelTable functions
#undef LOWBIT_SIMD_KERNELS_PIECE
