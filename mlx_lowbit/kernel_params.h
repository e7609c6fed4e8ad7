// Copyright © 2026 mlx-lowbit contributors.
//
// What the host (planner, eval_gpu, the emulator tests) and the Metal kernels
// must agree on: buffer slots, the constant argument structs, fixed thread
// counts, and the arithmetic that maps a threadgroup to its share of a GEMM
// (data-parallel, split-K, stream-K). Valid C++ and MSL (formats/common.h
// rules: no std::, no exceptions, functions take values, not references, so
// a `constant` struct can be passed in MSL).
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
#define LOWBIT_GEMM_TILES(X, ...) \
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
  int index_bits; // codebook only
  int has_bias; // binary only
  int scales_f32; // scales (and biases) are float32, else float16
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
  int fixup; // FixUp
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
LOWBIT_FUNC int tiles_of(MatmulParams p) {
  return p.tiles_m * p.tiles_n;
}

// Stream-K. The sk_tiles * iters K-iterations (tile-major) are split so that
// group g runs [sk_begin(g), sk_begin(g + 1)): sizes differ by at most one.
LOWBIT_FUNC int sk_total(MatmulParams p) {
  return p.sk_tiles * p.iters_per_tile;
}
LOWBIT_FUNC int sk_begin(MatmulParams p, int g) {
  return int((uint64_t(sk_total(p)) * uint64_t(g)) / uint64_t(p.sk_groups));
}
// The group that runs iteration i: the largest g with sk_begin(g) <= i.
LOWBIT_FUNC int sk_group_of(MatmulParams p, int i) {
  return int(((uint64_t(i) + 1u) * uint64_t(p.sk_groups) - 1u) / uint64_t(sk_total(p)));
}
// First and last group that work on stream-K tile t; t is split (and needs
// the fix-up) when they differ.
LOWBIT_FUNC int sk_first_group(MatmulParams p, int t) {
  return sk_group_of(p, t * p.iters_per_tile);
}
LOWBIT_FUNC int sk_last_group(MatmulParams p, int t) {
  return sk_group_of(p, t * p.iters_per_tile + p.iters_per_tile - 1);
}

// Workspace slots (BM x BN floats each) for partial tiles.
// Deterministic stream-K: group g writes the partial of its first tile to
// slot 2g and that of its last tile to slot 2g + 1 (a group has at most two
// partial tiles: everything between them is whole). Atomic stream-K: all
// groups add into the slot of the tile's first group (distinct for distinct
// split tiles, since a group that does not finish a tile cannot reach the
// next). Split-K: group g writes slot g.
LOWBIT_FUNC int sk_slot(MatmulParams p, int g, int t) {
  if (p.fixup == int(FixUp::Atomic)) {
    return sk_first_group(p, t);
  }
  bool first_tile_of_g = sk_begin(p, g) / p.iters_per_tile == t;
  return 2 * g + (first_tile_of_g ? 0 : 1);
}
LOWBIT_FUNC int workspace_slots(MatmulParams p) {
  if (p.schedule == int(Schedule::SplitK)) {
    return tiles_of(p) * p.split_k;
  }
  if (p.schedule == int(Schedule::StreamK) && p.sk_tiles > 0) {
    return p.fixup == int(FixUp::Atomic) ? p.sk_groups : 2 * p.sk_groups;
  }
  return 0;
}

// Split-K: group g runs K-iterations [splitk_begin(s), splitk_begin(s + 1))
// of tile g / split_k, s = g % split_k.
LOWBIT_FUNC int splitk_begin(MatmulParams p, int s) {
  return (s * p.iters_per_tile) / p.split_k;
}

// Threadgroups of the GEMM launch.
LOWBIT_FUNC int gemm_groups(MatmulParams p) {
  if (p.schedule == int(Schedule::SplitK)) {
    return tiles_of(p) * p.split_k;
  }
  if (p.schedule == int(Schedule::StreamK)) {
    return p.sk_groups + (tiles_of(p) - p.sk_tiles);
  }
  return tiles_of(p);
}

// Threadgroups of the fix-up launch (one per tile that may be split).
LOWBIT_FUNC int fixup_groups(MatmulParams p) {
  if (p.schedule == int(Schedule::SplitK)) {
    return p.split_k > 1 ? tiles_of(p) : 0;
  }
  if (p.schedule == int(Schedule::StreamK)) {
    return p.sk_tiles;
  }
  return 0;
}

// One stretch of work of a GEMM threadgroup: K-iterations [k_begin, k_end)
// of `tile`, then either stored into `out` (slot < 0: the whole K range) or
// kept as an fp32 partial in workspace slot `slot`.
struct Segment {
  int tile;
  int k_begin;
  int k_end;
  int slot;
};

// The segments of GEMM threadgroup g, in order: segment(p, g, 0), ... while
// has_segment(p, g, j). Stream-K groups walk their iteration range; all
// other groups have exactly one segment.
LOWBIT_FUNC int segment_count(MatmulParams p, int g) {
  if (p.schedule != int(Schedule::StreamK) || g >= p.sk_groups) {
    return 1;
  }
  int first = sk_begin(p, g);
  int last = sk_begin(p, g + 1) - 1;
  if (last < first) {
    return 0;
  }
  return last / p.iters_per_tile - first / p.iters_per_tile + 1;
}

LOWBIT_FUNC Segment segment_of(MatmulParams p, int g, int j) {
  Segment s;
  int iters = p.iters_per_tile;
  if (p.schedule == int(Schedule::SplitK)) {
    int split = g % p.split_k;
    s.tile = g / p.split_k;
    s.k_begin = splitk_begin(p, split);
    s.k_end = splitk_begin(p, split + 1);
    s.slot = p.split_k > 1 ? g : -1;
    return s;
  }
  if (p.schedule == int(Schedule::StreamK) && g < p.sk_groups) {
    int begin = sk_begin(p, g);
    int end = sk_begin(p, g + 1);
    s.tile = begin / iters + j;
    int tile_begin = s.tile * iters;
    s.k_begin = (j == 0 ? begin : tile_begin) - tile_begin;
    s.k_end = imin(end - tile_begin, iters);
    bool split = sk_first_group(p, s.tile) != sk_last_group(p, s.tile);
    s.slot = split ? sk_slot(p, g, s.tile) : -1;
    return s;
  }
  // Data-parallel: one whole tile (after the stream-K tiles, if any).
  s.tile = p.schedule == int(Schedule::StreamK) ? p.sk_tiles + (g - p.sk_groups) : g;
  s.k_begin = 0;
  s.k_end = iters;
  s.slot = -1;
  return s;
}

// The fix-up of tile t sums `contributor_count` partials in order (K order,
// so the result does not depend on which threadgroup ran first); zero means
// the tile was not split and is already in `out`.
LOWBIT_FUNC int contributor_count(MatmulParams p, int t) {
  if (p.schedule == int(Schedule::SplitK)) {
    return p.split_k > 1 ? p.split_k : 0;
  }
  int first = sk_first_group(p, t);
  int last = sk_last_group(p, t);
  if (first == last) {
    return 0;
  }
  return p.fixup == int(FixUp::Atomic) ? 1 : last - first + 1;
}
LOWBIT_FUNC int contributor_slot(MatmulParams p, int t, int j) {
  if (p.schedule == int(Schedule::SplitK)) {
    return t * p.split_k + j;
  }
  int g = sk_first_group(p, t) + j;
  return sk_slot(p, g, t);
}

} // namespace lowbit
