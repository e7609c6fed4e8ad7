// Copyright © 2026 mlx-lowbit contributors.
//
// GEMM (prefill): out (M, N) = x (M, K) @ w^T by BM x BN tiles. Per
// K-iteration (kGemmBK weights) the threadgroup stages the x tile (in x's
// dtype) and the decoded weight tile (GemmWeight<T>, decoded from packed
// words staged a window of 16 at a time, stage_packed) in threadgroup
// memory, then WM x WN simdgroups multiply-accumulate 8x8 fragments into
// float accumulators. What a threadgroup computes (a whole tile, a K-slice
// of one, or a stream-K range over several) and where its tile is
// (tile_coord's swizzled order) come from work_split.h; partial tiles go to
// an fp32 workspace that fixup.h sums.
#pragma once

#include "metal/utils.h"
#include "mlx_lowbit/work_split.h"

namespace lowbit {

// The decoded weight tile's element type for x of type T. The GEMV keeps
// scales in fp32, so the tile must hold +-scale (and bias +- scale) as the
// GEMV sees them: float16 x keeps half (fp16 scales are exact in it), float32
// x float; bfloat16 x takes float too, since bfloat would cut fp16 scales to
// 8 significant bits, all of a group's weights rounded the same way.
template <typename T>
struct GemmWeight {
  typedef T type;
};
template <>
struct GemmWeight<bfloat> {
  typedef float type;
};

template <typename T, int BM, int BN, int BK, int WM, int WN>
struct GemmTile {
  static_assert(BK == kGemmBK, "K-iterations are kGemmBK weights");
  static_assert(BM % (8 * WM) == 0 && BN % (8 * WN) == 0, "simdgroups own whole 8x8 fragments");
  static constant constexpr const int kThreads = WM * WN * 32;
  static constant constexpr const int TM = BM / (8 * WM); // fragments per simdgroup along M
  static constant constexpr const int TN = BN / (8 * WN);
  typedef typename GemmWeight<T>::type W;
  // Rows padded by 16 bytes against threadgroup memory bank conflicts.
  static constant constexpr const int kLd = BK + 16 / int(sizeof(T));
  static constant constexpr const int kLdW = BK + 16 / int(sizeof(W));
};

// The decoded chunks of a tile row go in with Chunk8 (utils.h): a thread's
// chunk covers 4 (or 8) consecutive banks and the 4 chunks of a row tile it,
// so a simdgroup's 8 rows x 4 chunks take the conflict-free number of
// wavefronts (the scalar stores they replaced took 4 per store).

template <int TM, int TN>
struct Accumulators {
  simdgroup_matrix<float, 8, 8> frag[TM][TN];
};

// x rows [m0, m0 + BM) (zeros past M), columns [k0, k0 + BK), copied 16
// bytes per thread (8 half or bfloat, 4 float): K is a multiple of
// kKMultiple and eval_gpu binds x kBindingAlignment-aligned, so every load is
// whole and aligned; the lanes of a simdgroup read whole 64-byte lines, and
// their stores cover each bank the conflict-free number of times.
template <typename Tile, typename T, int BM, int BK>
LOWBIT_METAL_FUNC void load_x_tile(
    const device T* x, MatmulParams p, int m0, int k0, threadgroup T* xs, uint tid) {
  constexpr int kVec = 16 / int(sizeof(T));
  constexpr int kVecsPerRow = BK / kVec;
  for (int i = int(tid); i < BM * kVecsPerRow; i += Tile::kThreads) {
    int r = i / kVecsPerRow;
    int c = (i % kVecsPerRow) * kVec;
    int m = m0 + r;
    uint4 v = uint4(0u);
    if (m < p.M) {
      v = *(const device uint4*)(x + size_t(m) * size_t(p.w.K) + size_t(k0 + c));
    }
    *(threadgroup uint4*)(xs + r * Tile::kLd + c) = v;
  }
}

// The packed words of the weight tile are staged in threadgroup memory, a
// ring of Decoder::kGemmRing (16 or 32) words per row, filled in 16-word
// windows that sit on 64-byte lines of the buffer (window a of a row is its
// words [16 a - phase, 16 a - phase + 16), phase = the row's first word's
// place in its line), clipped to the words of the group's K range. A window
// is loaded once, by 16 consecutive lanes, for every K-iteration that reads
// it (8 for ternary, 16 for binary, about 16 v / c for a codebook); before,
// each K-iteration's decode read its own 4-8 bytes per row, so a simdgroup
// touched 8 rows' lines for 64 bytes.
//
// Word w of row r sits at slot r * kGemmRing + ((w % kGemmRing) ^
// ring_swizzle(r)). Rows r and r + 1 use different halves of the 32 banks
// (ring 16: by the row stride; ring 32: by bit 4), so a store of two rows'
// windows (ring 16) or one row's two windows (ring 32) by 32 lanes is
// conflict-free; and the rows of one parity among the 8 rows a simdgroup
// decodes XOR by distinct even values, so their reads of one or two
// consecutive words hit distinct banks.
template <int Ring>
LOWBIT_METAL_FUNC int ring_swizzle(int r) {
  return (Ring == 2 * kLineWords ? kLineWords * (r % 2) : 0) + 2 * ((r / 2) % 4);
}

// The last window (index) the ring holds once K-iteration j is staged, for
// a row at `phase`: the one holding j's last word, or, while the segment's
// first windows are still in the ring, the last of them (the start stages
// as many windows as the ring holds, so a short row or K range is loaded in
// one go).
template <typename Decoder>
LOWBIT_METAL_FUNC int staged_top(int j, int wlo, int phase, int c) {
  constexpr int kWindows = Decoder::kGemmRing / kLineWords;
  const int last = Decoder::end_word((j + 1) * kGemmBK, c) - 1;
  return imax((wlo + phase) / kLineWords + kWindows - 1, (last + phase) / kLineWords);
}

// Stages what K-iteration j reads and the ring does not hold yet (after
// K-iteration `prev`, or, when prev < 0, from the segment's first window):
// at most one window after a K-iteration (an iteration's words span at most
// two windows, and the ring holds the two), the ring's worth at the start.
// Words outside the segment's [wlo, whi) are not read.
template <typename Tile, typename Decoder, int BN>
LOWBIT_METAL_FUNC void stage_packed(
    WeightSource src,
    MatmulParams p,
    int n0,
    int prev,
    int j,
    int wlo,
    int whi,
    threadgroup uint32_t* ring,
    uint tid) {
  constexpr int R = Decoder::kGemmRing;
  const int c = p.w.index_bits;
  // R lanes per row: ring 16, two rows per simdgroup access (different bank
  // halves); ring 32, one row's two windows.
  static_assert((BN * R) % Tile::kThreads == 0, "every thread runs every pass");
  for (int i = int(tid); i < BN * R; i += Tile::kThreads) {
    const int r = i / R;
    const int n = n0 + r;
    if (n < p.w.N) {
      const WeightRow row = row_of(src, p.w, n);
      const int phase = row.phase % kLineWords;
      const int top = staged_top<Decoder>(j, wlo, phase, c);
      const int from =
          prev < 0 ? (wlo + phase) / kLineWords : staged_top<Decoder>(prev, wlo, phase, c) + 1;
      const int window = from + (i % R) / kLineWords;
      const int w = window * kLineWords - phase + i % kLineWords;
      if (window <= top && w >= wlo && w < whi) {
        ring[r * R + ((w % R) ^ ring_swizzle<R>(r))] = row.words[w];
      }
    }
    // Lanes skip words outside the range; this keeps a simdgroup's passes
    // apart, one load and one store each, as the GPU runs them (and as the
    // emulator's cost model, which counts accesses between collectives,
    // then sees them).
    simdgroup_barrier(mem_flags::mem_none);
  }
}

// Weight rows [n0, n0 + BN) (zeros past N), columns [k0, k0 + BK), decoded
// kChunk at a time from the staged words; the group's scale (and bias) is
// read once per chunk. whi: the end of the staged range (a codebook index
// reads its following word only below it).
template <typename Tile, typename Decoder, typename T, int BN, int BK>
LOWBIT_METAL_FUNC void decode_w_tile(
    WeightSource src,
    MatmulParams p,
    int n0,
    int k0,
    const threadgroup uint32_t* ring,
    int whi,
    threadgroup T* ws,
    uint tid) {
  // T here is Tile::W.
  constexpr int R = Decoder::kGemmRing;
  constexpr int kChunksPerRow = BK / kChunk;
  for (int i = int(tid); i < BN * kChunksPerRow; i += Tile::kThreads) {
    int r = i / kChunksPerRow;
    int k = k0 + (i % kChunksPerRow) * kChunk;
    int n = n0 + r;
    T v[kChunk];
    if (n < p.w.N) {
      ScaleBias sb = load_scale_bias(src, p.w, n, k / p.w.group_size);
      const StagedRow row = {ring + r * R,   0,           R - 1, ring_swizzle<R>(r), whi,
                             p.w.index_bits, src.codebook};
      Decoder::template values8<T>(row, k, sb, v);
    } else {
      LOWBIT_UNROLL
      for (int jj = 0; jj < kChunk; ++jj) {
        v[jj] = T(0.0f);
      }
    }
    Chunk8<int(sizeof(T))>::store(ws + r * Tile::kLdW + (k - k0), v);
  }
}

// acc += x_tile @ w_tile^T for this simdgroup's TM x TN fragments at
// (sm, sn). Fragments are float, read from the tiles element by element.
template <typename Tile, typename T, int BK>
LOWBIT_METAL_FUNC void multiply_tiles(
    const threadgroup T* xs,
    const threadgroup typename Tile::W* ws,
    int sm,
    int sn,
    short2 fc,
    thread Accumulators<Tile::TM, Tile::TN>& acc) {
  LOWBIT_UNROLL
  for (int kk = 0; kk < BK; kk += 8) {
    simdgroup_matrix<float, 8, 8> a[Tile::TM];
    simdgroup_matrix<float, 8, 8> b[Tile::TN];
    LOWBIT_UNROLL
    for (int i = 0; i < Tile::TM; ++i) {
      const threadgroup T* src = xs + (sm + 8 * i + fc.y) * Tile::kLd + kk + fc.x;
      a[i].thread_elements()[0] = float(src[0]);
      a[i].thread_elements()[1] = float(src[1]);
    }
    LOWBIT_UNROLL
    for (int j = 0; j < Tile::TN; ++j) {
      // b(k, n) = w(n, k): the weight tile read transposed.
      const threadgroup typename Tile::W* src = ws + (sn + 8 * j + fc.x) * Tile::kLdW + kk + fc.y;
      b[j].thread_elements()[0] = float(src[0]);
      b[j].thread_elements()[1] = float(src[Tile::kLdW]);
    }
    LOWBIT_UNROLL
    for (int i = 0; i < Tile::TM; ++i) {
      LOWBIT_UNROLL
      for (int j = 0; j < Tile::TN; ++j) {
        simdgroup_multiply_accumulate(acc.frag[i][j], a[i], b[j], acc.frag[i][j]);
      }
    }
  }
}

// The finished tile into out, rounded once to T, clipped at M and N.
template <typename Tile, typename T>
LOWBIT_METAL_FUNC void store_tile(
    thread Accumulators<Tile::TM, Tile::TN>& acc,
    device T* out,
    MatmulParams p,
    int m0,
    int n0,
    short2 fc) {
  LOWBIT_UNROLL
  for (int i = 0; i < Tile::TM; ++i) {
    int m = m0 + 8 * i + fc.y;
    if (m >= p.M) {
      continue;
    }
    LOWBIT_UNROLL
    for (int j = 0; j < Tile::TN; ++j) {
      int n = n0 + 8 * j + fc.x;
      device T* dst = out + size_t(m) * size_t(p.w.N) + size_t(n);
      LOWBIT_UNROLL
      for (int e = 0; e < 2; ++e) {
        if (n + e < p.w.N) {
          float v = acc.frag[i][j].thread_elements()[e];
          dst[e] = T(v);
        }
      }
    }
  }
}

// A partial tile into its fp32 workspace slot (BM x BN, row-major); one
// writer per slot, summed by the fix-up.
template <typename Tile, int BN>
LOWBIT_METAL_FUNC void store_partial(
    thread Accumulators<Tile::TM, Tile::TN>& acc, device float* slot, int sm, int sn, short2 fc) {
  LOWBIT_UNROLL
  for (int i = 0; i < Tile::TM; ++i) {
    LOWBIT_UNROLL
    for (int j = 0; j < Tile::TN; ++j) {
      int at = (sm + 8 * i + fc.y) * BN + sn + 8 * j + fc.x;
      LOWBIT_UNROLL
      for (int e = 0; e < 2; ++e) {
        slot[at + e] = acc.frag[i][j].thread_elements()[e];
      }
    }
  }
}

} // namespace lowbit

// One kernel per GEMM schedule (the template argument S): data-parallel
// threadgroups own one tile; split-K ones a K-slice of one; stream-K ones
// walk an even share of the stream-K iterations, then (hybrid) whole tiles.
template <lowbit::Schedule S, typename Decoder, typename T, int BM, int BN, int BK, int WM, int WN>
[[kernel, max_total_threads_per_threadgroup(WM* WN * 32)]] void lowbit_gemm(
    const device T* x [[buffer(LOWBIT_BUFFER_X)]],
    const device uint32_t* packed [[buffer(LOWBIT_BUFFER_PACKED)]],
    const device uchar* scales [[buffer(LOWBIT_BUFFER_SCALES)]],
    const device uchar* biases [[buffer(LOWBIT_BUFFER_BIASES)]],
    const device uchar* codebook [[buffer(LOWBIT_BUFFER_CODEBOOK)]],
    device T* out [[buffer(LOWBIT_BUFFER_OUT)]],
    device float* workspace [[buffer(LOWBIT_BUFFER_WORKSPACE)]],
    constant lowbit::MatmulParams& params [[buffer(LOWBIT_BUFFER_PARAMS)]],
    uint3 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using namespace lowbit;
  typedef GemmTile<T, BM, BN, BK, WM, WN> Tile;
  // Declared as uint4 for the 16-byte alignment of the Chunk8 stores (rows
  // are kLd * sizeof(T) = 80 or 144 bytes, multiples of 16).
  threadgroup uint4 xs4[BM * Tile::kLd * int(sizeof(T)) / 16];
  threadgroup uint4 ws4[BN * Tile::kLdW * int(sizeof(typename Tile::W)) / 16];
  threadgroup uint32_t ring[BN * Decoder::kGemmRing];
  threadgroup T* xs = (threadgroup T*)xs4;
  threadgroup typename Tile::W* ws = (threadgroup typename Tile::W*)ws4;

  MatmulParams p = params;
  p.schedule = int(S); // as planned; a constant lets the compiler drop the other schedules
  const WeightSource src = {packed, scales, biases, codebook};
  const int g = int(group.x);
  const int sm = (int(sg) / WN) * Tile::TM * 8;
  const int sn = (int(sg) % WN) * Tile::TN * 8;
  const short2 fc = fragment_coord(lane);
  // Data-parallel and split-K groups have one segment; the count is uniform
  // over the threadgroup, so every thread reaches every barrier.
  const int segments = S == Schedule::StreamK ? segment_count(p, g) : 1;

  for (int j = 0; j < segments; ++j) {
    const Segment seg = segment_of(p, g, j);
    const TileCoord at = tile_coord(p, seg.tile);
    const int m0 = at.m * BM;
    const int n0 = at.n * BN;
    const int c = p.w.index_bits;
    const int wlo = Decoder::first_word(seg.k_begin * BK, c);
    const int whi = Decoder::end_word(seg.k_end * BK, c);
    Accumulators<Tile::TM, Tile::TN> acc;
    LOWBIT_UNROLL
    for (int i = 0; i < Tile::TM; ++i) {
      LOWBIT_UNROLL
      for (int jj = 0; jj < Tile::TN; ++jj) {
        acc.frag[i][jj] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      }
    }
    // The first K-iteration's windows; after that, each K-iteration stages
    // the next one's while the simdgroups multiply (the ring's words are
    // read only before the first barrier of a K-iteration).
    if (seg.k_begin < seg.k_end) {
      stage_packed<Tile, Decoder, BN>(src, p, n0, -1, seg.k_begin, wlo, whi, ring, tid);
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (int it = seg.k_begin; it < seg.k_end; ++it) {
      const int k0 = it * BK;
      load_x_tile<Tile, T, BM, BK>(x, p, m0, k0, xs, tid);
      decode_w_tile<Tile, Decoder, typename Tile::W, BN, BK>(src, p, n0, k0, ring, whi, ws, tid);
      threadgroup_barrier(mem_flags::mem_threadgroup);
      multiply_tiles<Tile, T, BK>(xs, ws, sm, sn, fc, acc);
      if (it + 1 < seg.k_end) {
        stage_packed<Tile, Decoder, BN>(src, p, n0, it, it + 1, wlo, whi, ring, tid);
      }
      threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    if (seg.slot < 0) {
      store_tile<Tile, T>(acc, out, p, m0 + sm, n0 + sn, fc);
    } else {
      device float* slot = workspace + size_t(seg.slot) * size_t(BM * BN);
      store_partial<Tile, BN>(acc, slot, sm, sn, fc);
    }
  }
}
