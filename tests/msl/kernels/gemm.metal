// Reference tiled GEMM, C = A @ B (row-major, M x K times K x N), with simdgroup_matrix in the
// MLX style: WM x WN simdgroups per threadgroup, each owning TM x TN 8x8 fp32 accumulators.
// Tiles are staged in threadgroup memory, loaded into fragments with simdgroup_load (origin
// selects the fragment) and stored from thread_elements() in Apple's lane layout. Tests mutate
// this file; keep the mutated lines unique.
#include <metal_stdlib>
#include <metal_simdgroup_matrix>
using namespace metal;

#define METAL_FUNC inline __attribute__((always_inline))
#define instantiate_kernel(name, func, ...) \
  template [[host_name(name)]] [[kernel]] decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;

struct GemmParams {
  int M;
  int N;
  int K;
};

// All threads of the threadgroup copy a ROWS x COLS tile (source row stride ld) into dst.
template <typename T, int ROWS, int COLS, int THREADS>
METAL_FUNC void load_tile(const device T* src, int ld, threadgroup T* dst, uint tid) {
  for (uint i = tid; i < ROWS * COLS; i += THREADS) {
    dst[i] = src[(i / COLS) * ld + i % COLS];
  }
}

// (column, row) of the first of the two elements lane `lane` holds in an 8x8 fragment.
METAL_FUNC short2 fragment_coord(ushort lane) {
  const short quad = lane / 4;
  return short2((quad & 2) * 2 + (lane % 2) * 2, (quad & 4) + (lane / 2) % 4);
}

template <typename T, int BM, int BN, int BK, int WM, int WN>
[[kernel]] void gemm(
    const device T* A [[buffer(0)]],
    const device T* B [[buffer(1)]],
    device T* C [[buffer(2)]],
    constant GemmParams& p [[buffer(3)]],
    uint2 group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort lane [[thread_index_in_simdgroup]]) {
  constexpr int TM = BM / (8 * WM);
  constexpr int TN = BN / (8 * WN);
  threadgroup T As[BM * BK];
  threadgroup T Bs[BK * BN];
  const int row0 = group.y * BM;
  const int col0 = group.x * BN;
  const int sm = (sg / WN) * TM * 8;
  const int sn = (sg % WN) * TN * 8;

  simdgroup_matrix<float, 8, 8> acc[TM][TN];
  for (int i = 0; i < TM; i++) {
    for (int j = 0; j < TN; j++) {
      acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    }
  }
  for (int k0 = 0; k0 < p.K; k0 += BK) {
    load_tile<T, BM, BK, WM * WN * 32>(A + row0 * p.K + k0, p.K, As, tid);
    load_tile<T, BK, BN, WM * WN * 32>(B + k0 * p.N + col0, p.N, Bs, tid);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int kk = 0; kk < BK; kk += 8) {
      simdgroup_matrix<T, 8, 8> a[TM];
      simdgroup_matrix<T, 8, 8> b[TN];
      for (int i = 0; i < TM; i++) {
        simdgroup_load(a[i], As, BK, ulong2(kk, sm + 8 * i));
      }
      for (int j = 0; j < TN; j++) {
        simdgroup_load(b[j], Bs, BN, ulong2(sn + 8 * j, kk));
      }
      for (int i = 0; i < TM; i++) {
        for (int j = 0; j < TN; j++) {
          simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
        }
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  const short2 fc = fragment_coord(lane);
  for (int i = 0; i < TM; i++) {
    for (int j = 0; j < TN; j++) {
      const int r = row0 + sm + 8 * i + fc.y;
      const int c = col0 + sn + 8 * j + fc.x;
      thread const auto& e = acc[i][j].thread_elements();
      *(device vec<T, 2>*)(C + r * p.N + c) = vec<T, 2>(e);
    }
  }
}

instantiate_kernel("gemm_float32", gemm, float, 32, 32, 16, 2, 2)
instantiate_kernel("gemm_float16", gemm, half, 32, 32, 16, 2, 2)
instantiate_kernel("gemm_bfloat16", gemm, bfloat, 32, 32, 16, 2, 2)
