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

// GEMV: simdgroups per threadgroup and output rows per simdgroup.
LOWBIT_CONST int kGemvSimdgroups = 2;
LOWBIT_CONST int kGemvRowsPerSimdgroup = 4;
LOWBIT_CONST int kGemvRowsPerThreadgroup = kGemvSimdgroups * kGemvRowsPerSimdgroup;
// Rows of x per GEMV threadgroup: 1 (decode) or kGemvBatchRows (each decoded
// weight then serves that many rows of x).
LOWBIT_CONST int kGemvBatchRows = 8;
// Threads of the fix-up, fill and dequantize kernels (1-D threadgroups).
LOWBIT_CONST int kFixupThreads = 256;
LOWBIT_CONST int kFillThreads = 256;
LOWBIT_CONST int kDequantizeThreads = 256;
// Weights one dequantize thread writes (one decoder chunk).
LOWBIT_CONST int kChunk = 8;

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
  // K-iterations of kGemmBK. Tile t covers rows (t % tiles_m) * BM and
  // columns (t / tiles_m) * BN: consecutive threadgroups share a weight tile.
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
};

// The fill kernel: count floats set to zero.
struct FillParams {
  int count;
};

LOWBIT_FUNC int imin(int a, int b) {
  return a < b ? a : b;
}
LOWBIT_FUNC int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

} // namespace lowbit
