// Copyright © 2026 mlx-lowbit contributors.
//
// The arithmetic that maps a GEMM threadgroup to its share of the work
// (data-parallel, split-K, stream-K) and a fix-up threadgroup to the partials
// it sums: the planner sizes grids and workspace with it, the kernels run it,
// so both read one copy. Valid C++ and MSL (kernel_params.h rules).
#pragma once

#include "mlx_lowbit/kernel_params.h"

namespace lowbit {

LOWBIT_FUNC int tiles_of(MatmulParams p) {
  return p.tiles_m * p.tiles_n;
}

// Where tile t is: row m (of BM rows of out) and column n (of BN). The tile
// order (threadgroup order, for data-parallel and split-K groups; the order
// stream-K groups walk) is swizzled: panels of 2^swizzle_log tile rows, one
// after another, each walked down its rows first, then across. Threadgroups
// that run at the same time then cover a block of tiles about as tall as a
// panel, so they share both x tiles (one per tile row) and weight tiles (one
// per tile column) in the cache, instead of one weight tile and as many x
// tiles as groups (one tall panel) or the reverse (panels of one row). Only
// positions change: the slot arithmetic below works on tile indices.
struct TileCoord {
  int m;
  int n;
};
LOWBIT_FUNC TileCoord tile_coord(MatmulParams p, int t) {
  const int height = 1 << p.swizzle_log;
  const int panel_tiles = height * p.tiles_n;
  const int panel = t / panel_tiles;
  const int u = t - panel * panel_tiles;
  // The last panel may be shorter.
  const int rows = imin(height, p.tiles_m - panel * height);
  TileCoord c;
  c.m = panel * height + u % rows;
  c.n = u / rows;
  return c;
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
// partial tiles: everything between them is whole). Split-K: group g
// writes slot g.
LOWBIT_FUNC int sk_slot(MatmulParams p, int g, int t) {
  bool first_tile_of_g = sk_begin(p, g) / p.iters_per_tile == t;
  return 2 * g + (first_tile_of_g ? 0 : 1);
}
LOWBIT_FUNC int workspace_slots(MatmulParams p) {
  if (p.schedule == int(Schedule::SplitK)) {
    return tiles_of(p) * p.split_k;
  }
  if (p.schedule == int(Schedule::StreamK) && p.sk_tiles > 0) {
    return 2 * p.sk_groups;
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
  return last - first + 1;
}
LOWBIT_FUNC int contributor_slot(MatmulParams p, int t, int j) {
  if (p.schedule == int(Schedule::SplitK)) {
    return t * p.split_k + j;
  }
  int g = sk_first_group(p, t) + j;
  return sk_slot(p, g, t);
}

} // namespace lowbit
