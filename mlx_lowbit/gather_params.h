// Copyright © 2026 mlx-lowbit contributors.
//
// What the host (gather_plan.cpp, eval_gpu, the emulator tests) and the
// Metal gather kernels (metal/gather.h) agree on. Valid C++ and MSL, as
// kernel_params.h, whose weight struct and buffer slots it extends.
#pragma once

#include "mlx_lowbit/kernel_params.h"

// The gather's index buffers, after kernel_params.h's slots.
#define LOWBIT_BUFFER_LHS 8
#define LOWBIT_BUFFER_RHS 9

namespace lowbit {

// Simdgroups per threadgroup and output features per simdgroup.
LOWBIT_CONST int kGatherSimdgroups = 2;
LOWBIT_CONST int kGatherRowsPerSimdgroup = 4;
LOWBIT_CONST int kGatherRowsPerThreadgroup = kGatherSimdgroups * kGatherRowsPerSimdgroup;
// Output rows per threadgroup: 1 (decode: each row its own expert) or
// kGatherBatchRows (rows that share an expert decode its weights once).
LOWBIT_CONST int kGatherBatchRows = 8;

// Grouped GEMM (prefill with sorted indices): output tiles of kGatherTileM
// rows x kGatherTileN features, kGemmBK weights per K-iteration, 2 x 2
// simdgroups of 16 x 16; each run of a tile's rows that shares an expert is
// one pass over K.
LOWBIT_CONST int kGatherTileM = 32;
LOWBIT_CONST int kGatherTileN = 32;
LOWBIT_CONST int kGatherGemmThreads = 128;
// The GEMM from this many routed rows per expert on average (shorter runs
// leave most of a tile's rows zero): the planner's rule.
LOWBIT_CONST int kGatherGemmMinRowsPerExpert = 16;

// out (B * M, N): output row i = b * M + m is x[lhs[b]][m] @ W[rhs[b]]^T.
struct GatherParams {
  WeightParams w; // one expert's (N, K) weight
  int M;          // rows of x per batch entry
  int rows;       // B * M
  int experts;    // E (indices are clamped below it, and lhs below x_batches)
  int x_batches;  // Bx: batch entries of x
  // Bytes from one expert's codebook to the next: 0 when all share one.
  int codebook_stride;
};

} // namespace lowbit
