// Copyright © 2026 mlx-lowbit contributors.
//
// The interface between the CPU backend and its SIMD kernel files. Those files
// are compiled with ISA flags (-mavx512f, ...), so this header holds plain
// data and function pointers only: any inline function or template it pulled
// in (the STL, mlx headers) would be emitted in each ISA's object file and
// the linker could keep an AVX-512 copy for every caller, which then crashes
// on an older CPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mlx_lowbit::cpu {

// One quantized weight, as laid out in formats/*.h. Aggregates without
// default member initializers: no constructor gets emitted in an ISA file.
struct PackedWeight {
  int format; // lowbit::Format
  int N, K, group_size;
  int vector_size, index_bits; // codebook only
  int words_per_row;
  const uint32_t* packed;
  const void* scales;   // (N, K / group_size), float16 or float32
  const void* biases;   // binary only, may be null
  const void* codebook; // codebook only: uint8 (v = 8) / uint16 (v = 16)
  bool scales_f32;
};

// Runs body(ctx, begin, end) on disjoint chunks of [0, n) over the worker
// threads and returns when all are done.
using ParallelFor = void (*)(int n, void (*body)(void* ctx, int begin, int end), void* ctx);

struct MatmulArgs {
  PackedWeight w;
  int M; // rows of x (all batch dimensions flattened)
  // Float activations, row-major: (M, K) for x @ W.T, (M, N) for x @ W.
  const float* x;
  // activation_bits = 8: (M, K) int8 rows and their scales (see
  // activation_quant.h); the product is xscale[m] * (q[m] @ W.T).
  const int8_t* xq;
  const float* xscale;
  float* out; // (M, N) or (M, K), row-major
  ParallelFor parallel;
};

// activation_bits = 8 quantizes a row (activation_quant.h) only when its
// max|x| is finite and at least this: then 127 / max|x| and the scale
// max|x| / 127 are both normal floats. Other rows (NaN, Inf, zero, tiny)
// are computed with float activations. absmax_bits is max|x| as its bits.
constexpr float kInt8MinAbsmax = 0x1p-118f;
constexpr uint32_t kInt8MinAbsmaxBits = (127u - 118u) << 23;
// static: internal linkage, so no copy is shared between the ISA files.
static constexpr bool absmax_quantizable(uint32_t absmax_bits) {
  return absmax_bits >= kInt8MinAbsmaxBits && absmax_bits < 0x7F800000u;
}

// Activation/output dtypes the kernels convert (MLX's bit layouts).
enum class Half16 { Float16, BFloat16 };

struct KernelTable {
  const char* name;
  // Each returns false if it could not allocate its scratch memory.
  bool (*matmul_nt)(const MatmulArgs&);      // out = x @ W.T, float x
  bool (*matmul_nt_int8)(const MatmulArgs&); // out = xscale * (xq @ W.T)
  bool (*matmul_nn)(const MatmulArgs&);      // out = x @ W, float x
  void (*half_to_float)(const uint16_t* src, Half16 type, float* dst, size_t n);
  void (*float_to_half)(const float* src, Half16 type, uint16_t* dst, size_t n);
  // activation_quant.h's quantize_row_int8, bit for bit: q (K) and the
  // returned scale (0 for a row to compute with float activations).
  float (*quantize_int8)(const float* x, int K, int8_t* q);
};

// The int8 GEMV by table lookup for ternary and binary weights
// (kernels_avx512_lut.cpp): a copy of the weight repacked once into one byte
// per 4 ternary weights (their base-3 index) or per 8 binary weights (their
// sign bits), 64 rows per block, with its scales (and biases) as float32.
// Used where group_size is at most kLutMaxGroup (a group's 16-bit sums cannot
// overflow) and a multiple of 4 (ternary) or 8 (binary).
constexpr int kLutMaxGroup = 256;
static constexpr int lut_row_blocks(int N) {
  return (N + 63) / 64;
}
static constexpr int lut_weights_per_byte(int format) {
  return format == 1 ? 8 : 4; // lowbit::Format::Binary : Ternary
}
// Bytes of the repacked indices, and the float count of its scales (and of
// its biases, for a binary weight that has them).
static constexpr size_t lut_index_bytes(int N, int K, int format) {
  return size_t(lut_row_blocks(N)) * 64 * size_t(K / lut_weights_per_byte(format));
}
static constexpr size_t lut_scale_count(int N, int K, int group_size) {
  return size_t(lut_row_blocks(N)) * 64 * size_t(K / group_size);
}

struct LutWeight {
  int format, N, K, group_size;
  const uint8_t* idx;  // lut_index_bytes(N, K, format)
  const float* scales; // lut_scale_count(N, K, group_size)
  const float* biases; // the same, or null
};

// The float-x GEMV by table lookup (the same file): a copy of a ternary or
// binary weight repacked once into 4-bit indices, each of 2 ternary weights
// (c_0 + 3 c_1 of their codes) or of 4 binary ones (their sign bits as
// stored), 8 to a 32-bit word, 16 rows per 64-byte vector (a row per lane),
// [group][16-row block][word][lane]; scales (and binary biases) as float32,
// [group][block][lane].
static constexpr int lut_nibble_blocks(int N) {
  return (N + 15) / 16;
}
static constexpr int lut_nibble_weights(int format) {
  return format == 1 ? 4 : 2; // lowbit::Format::Binary : Ternary
}
static constexpr size_t lut_nibble_words(int N, int K, int format) {
  return size_t(lut_nibble_blocks(N)) * 16 * size_t(K / (8 * lut_nibble_weights(format)));
}
static constexpr size_t lut_nibble_scale_count(int N, int K, int group_size) {
  return size_t(lut_nibble_blocks(N)) * 16 * size_t(K / group_size);
}

struct LutNibbleWeight {
  int format, N, K, group_size;
  const uint32_t* idx; // lut_nibble_words(N, K, format)
  const float* scales; // lut_nibble_scale_count(N, K, group_size)
  const float* biases; // the same, or null
};

struct LutKernels {
  // Fills idx, scales and biases (sized as above; biases null or for a
  // binary weight) from a ternary or binary weight.
  void (*repack)(const PackedWeight& w, uint8_t* idx, float* scales, float* biases);
  // out (N) = xscale * (xq @ W.T) for one int8 row; false if out of memory.
  bool (*gemv)(
      const LutWeight& w, const int8_t* xq, float xscale, float* out, ParallelFor parallel);
  // The nibble copy of a ternary or binary weight (lut_nibble_* sizes;
  // biases null or for a binary weight that has them).
  void (*repack_nibbles)(const PackedWeight& w, uint32_t* idx, float* scales, float* biases);
  // out (M, N) = x @ W.T for M float rows (M, K), fp32 sums; false if out
  // of memory. Tables take M * K * 32 (ternary) or 16 (binary) bytes.
  bool (*gemv_nibbles)(
      const LutNibbleWeight& w, const float* x, int M, float* out, ParallelFor parallel);
};

// The table of each SIMD file, or null where that file was not compiled for
// this architecture.
const KernelTable* avx2_kernels();
const KernelTable* avx512_kernels();
const KernelTable* neon_kernels();
// Null where not compiled; call only where isa.cpp's lut_kernels() returns it.
const LutKernels* avx512_lut_kernels();

} // namespace mlx_lowbit::cpu
