// Copyright © 2026 mlx-lowbit contributors.
//
// The GPU dispatch of the expert gather-matmul (metal/gather.h): one launch,
// planned in pure C++ so that eval_gpu encodes it and the Linux tests run the
// same launch through the Metal emulator (mlx_lowbit.testing).
#pragma once

#include <array>
#include <string>

#include "mlx/dtype.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/gather_params.h"

namespace mlx_lowbit {

// out (B * M, N) = the gather of B batch entries of M rows each.
struct GatherProblem {
  FormatSpec spec;
  bool has_bias = false;
  bool scales_f32 = false;
  bool shared_codebook = false; // one codebook for every expert
  mx::Dtype dtype = mx::float16;
  int B = 0, M = 0, N = 0, K = 0;
  int experts = 0;
  int x_batches = 0;
  bool sorted = false; // rhs non-decreasing: runs of rows share an expert
};

struct GatherLaunch {
  std::string kernel; // lowbit_gather_<format>_<dtype>_mr<MR> or lowbit_gather_gemm_<...>
  std::array<int, 3> grid;
  std::array<int, 3> threadgroup;
  lowbit::GatherParams params;
};

// The grouped GEMM when runs of rows sharing an expert average at least
// kGatherGemmMinRowsPerExpert; else the GEMV-like kernel, with batch rows
// (MR = kGatherBatchRows) when rows of a threadgroup are likely to share an
// expert (sorted indices, or M > 1 rows per entry), else one row.
GatherLaunch plan_gather(const GatherProblem& problem);

} // namespace mlx_lowbit
