// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/gather_plan.h"

#include "mlx_lowbit/kernel_names.h"

namespace mlx_lowbit {

GatherLaunch plan_gather(const GatherProblem& q) {
  using namespace lowbit;
  const int rows = q.B * q.M;
  const int mr = (q.sorted || q.M > 1) && rows > 1 ? kGatherBatchRows : 1;
  GatherLaunch l;
  l.kernel = "lowbit_gather_" + kernel_format_token(q.spec) + "_" + kernel_dtype_token(q.dtype) +
             "_mr" + std::to_string(mr);
  l.grid = {ceil_div(q.N, kGatherRowsPerThreadgroup), ceil_div(rows, mr), 1};
  l.threadgroup = {kGatherSimdgroups * 32, 1, 1};
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
