// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/gather_plan.h"

#include <algorithm>

#include "mlx_lowbit/kernel_names.h"

namespace mlx_lowbit {

GatherLaunch plan_gather(const GatherProblem& q) {
  using namespace lowbit;
  const int rows = q.B * q.M;
  const std::string tokens = kernel_format_token(q.spec) + "_" + kernel_dtype_token(q.dtype);
  // Rows per run of one expert, on average: sorted indices give each expert
  // used (at most min(E, B)) one run; otherwise a batch entry's M rows.
  const int run = q.sorted ? rows / std::max(1, std::min(q.experts, q.B)) : q.M;
  GatherLaunch l;
  if (run >= kGatherGemmMinRowsPerExpert) {
    l.kernel = "lowbit_gather_gemm_" + tokens;
    l.grid = {ceil_div(q.N, kGatherTileN), ceil_div(rows, kGatherTileM), 1};
    l.threadgroup = {kGatherGemmThreads, 1, 1};
  } else {
    const int mr = (q.sorted || q.M > 1) && rows > 1 ? kGatherBatchRows : 1;
    l.kernel = "lowbit_gather_" + tokens + "_mr" + std::to_string(mr);
    l.grid = {ceil_div(q.N, kGatherRowsPerThreadgroup), ceil_div(rows, mr), 1};
    l.threadgroup = {kGatherSimdgroups * 32, 1, 1};
  }
  l.params = GatherParams{};
  l.params.w.N = q.N;
  l.params.w.K = q.K;
  l.params.w.group_size = q.spec.group_size;
  l.params.w.words_per_row = q.spec.packed_words_per_row(q.K);
  l.params.w.index_bits = q.spec.index_bits;
  l.params.w.has_bias = q.has_bias;
  l.params.w.scales_f32 = q.scales_f32;
  l.params.M = q.M;
  l.params.rows = rows;
  l.params.experts = q.experts;
  l.params.x_batches = q.x_batches;
  const bool codebook = q.spec.format == Format::Codebook;
  l.params.codebook_stride = codebook && !q.shared_codebook
                                 ? q.spec.codebook_size() * (q.spec.vector_size == 8 ? 1 : 2)
                                 : 0;
  return l;
}

} // namespace mlx_lowbit
