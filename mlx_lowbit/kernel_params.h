// Copyright © 2026 mlx-lowbit contributors.
//
// What the host (planner, eval_gpu, the emulator tests) and the Metal kernels
// must agree on: buffer slots, the constant argument structs, fixed thread
// counts and tile shapes. work_split.h maps a threadgroup to its share of a
// GEMM. Valid C++ and MSL (formats/common.h rules: no std::, no exceptions,
// functions take values, not references, so a `constant` struct can be
// passed in MSL).
#pragma once

#include "mlx_lowbit/dispatch_enums.h"
#include "mlx_lowbit/formats/common.h"

// [[buffer(i)]] slots. Macros rather than constants because the Linux
// harness reads binding indices as literals after preprocessing.
#define LOWBIT_BUFFER_X 0
#define LOWBIT_BUFFER_PACKED 1
#define LOWBIT_BUFFER_SCALES 2
#define LOWBIT_BUFFER_BIASES 3
#define LOWBIT_BUFFER_CODEBOOK 4
#define LOWBIT_BUFFER_OUT 5
#define LOWBIT_BUFFER_WORKSPACE 6
#define LOWBIT_BUFFER_PARAMS 7

// The GEMM tile shapes (BM, BN, BK, WM, WN), the first the default: the one
// list both metal/lowbit.metal (instantiations) and the planner read.
#define LOWBIT_GEMM_TILES(X, ...)  \
  X(__VA_ARGS__, 32, 32, 32, 2, 2) \
  X(__VA_ARGS__, 64, 64, 32, 2, 2)

namespace lowbit {

// Every K-iteration of a GEMM tile covers this many weights along K; K and
// every group size are multiples of it (kKMultiple), so a K-iteration never
// straddles a group and needs no tail.
LOWBIT_CONST int kGemmBK = 32;

// GEMV: simdgroups per threadgroup. A threadgroup stages x once per step of
// kGemvStepK weights (one kKMultiple block per lane) in threadgroup memory,
// for all its simdgroups, so x costs (x bytes) / (rows per threadgroup x
// weight bytes per row) of the weight traffic: rows per simdgroup are set per
// format (gemv_rows_per_simdgroup) to keep that near or below 1/4.
LOWBIT_CONST int kGemvSimdgroups = 8;
LOWBIT_CONST int kGemvThreads = kGemvSimdgroups * 32;
LOWBIT_CONST int kGemvStepK = 32 * kKMultiple;
// Ternary (2.125 bits/weight): 4 rows per simdgroup, 32 per threadgroup;
// binary and codebook (0.75-1.25 bits): 8, 64 per threadgroup.
LOWBIT_FUNC int gemv_rows_per_simdgroup(Format format) {
  return format == Format::Ternary ? 4 : 8;
}
// The GEMV's MR variants (rows of x per threadgroup, each decoded weight
// serving all of them): the list metal/lowbit.metal instantiates.
#define LOWBIT_GEMV_MRS(X, ...) X(__VA_ARGS__, 1) X(__VA_ARGS__, 2) X(__VA_ARGS__, 4)
// The smallest variant that holds M rows, else the largest (more
// threadgroups along y).
LOWBIT_FUNC int gemv_mr(int M) {
  return M <= 1 ? 1 : (M <= 2 ? 2 : 4);
}
// Threads of the fix-up and dequantize kernels (1-D threadgroups).
LOWBIT_CONST int kFixupThreads = 256;
LOWBIT_CONST int kDequantizeThreads = 256;
// Byte alignment the x and packed bindings must have: the kernels read them
// with vector loads of up to this size (uint2 words, 4-wide x), which Metal
// requires to be aligned to their size. MLX binds an array at its offset, so
// a view can start anywhere; eval_gpu copies one that is not aligned.
LOWBIT_CONST int kBindingAlignment = 16;
// Weights one dequantize thread writes (one decoder chunk).
LOWBIT_CONST int kChunk = 8;
// Dequantize: a threadgroup writes weights [x * kDequantizeK, ...) of row y,
// so the grid is ceil(K / kDequantizeK) x N.
LOWBIT_CONST int kDequantizeK = kDequantizeThreads * kChunk;

// The weight's arrays as the kernels index them (docs/FORMATS.md).
struct WeightParams {
  int N; // rows (output features)
  int K; // reduction length
  int group_size;
  int words_per_row; // uint32 words per row of `packed`
  int index_bits;    // codebook only
  int has_bias;      // binary only
  int scales_f32;    // scales (and biases) are float32, else float16
};

// out (M, N) = x (M, K) @ w (N, K)^T; one struct for GEMV, GEMM and fix-up.
struct MatmulParams {
  WeightParams w;
  int M;
  // GEMM: tiles_m x tiles_n output tiles of BM x BN, each iters_per_tile
  // K-iterations of kGemmBK. Tile t sits where tile_coord (work_split.h)
  // puts it, in panels of 2^swizzle_log tile rows.
  int tiles_m;
  int tiles_n;
  int iters_per_tile;
  int schedule; // Schedule: DataParallel, SplitK or StreamK
  int fixup;    // FixUp
  // SplitK: threadgroups per tile.
  int split_k;
  // StreamK: tiles [0, sk_tiles) share sk_groups threadgroups, which split
  // their sk_tiles * iters_per_tile K-iterations evenly; tiles
  // [sk_tiles, tiles) get one threadgroup each (hybrid), after them.
  int sk_tiles;
  int sk_groups;
  // Tile rows per panel of the tile order, log2 (the planner's choice).
  int swizzle_log;
};

LOWBIT_FUNC int imin(int a, int b) {
  return a < b ? a : b;
}
LOWBIT_FUNC int imax(int a, int b) {
  return a > b ? a : b;
}
LOWBIT_FUNC int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

} // namespace lowbit
