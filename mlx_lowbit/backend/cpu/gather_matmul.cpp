// Copyright © 2026 mlx-lowbit contributors.
//
// eval_cpu for LowBitGatherMatmul: the output rows are grouped by expert and
// each group is one call of the dense CPU kernels (kernels.h / the SIMD
// table) on that expert's slice of the stacked weight, so a group of many
// rows (prefill) takes the GEMM path and a single row (decode) the GEMV path.
// Rows that already sit back to back in x and out (sorted indices with
// lhs = 0, 1, 2, ...: mlx-lm's sorted SwitchGLU path) are used in place;
// other groups are gathered into scratch and scattered back.

#include <cstring>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/types/half_types.h"
#include "mlx_lowbit/backend/cpu/isa.h"
#include "mlx_lowbit/backend/cpu/kernels.h"
#include "mlx_lowbit/backend/cpu/thread_pool.h"
#include "mlx_lowbit/gather.h"

namespace mlx_lowbit {

namespace {

// The whole of a float array as float32 (the kernels' activation type).
std::vector<float> to_float32(const array& a) {
  std::vector<float> f(a.size());
  if (a.dtype() == mx::float32) {
    std::memcpy(f.data(), a.data<float>(), a.nbytes());
  } else if (a.dtype() == mx::float16) {
    const auto* p = a.data<mx::float16_t>();
    for (size_t i = 0; i < f.size(); ++i) {
      f[i] = static_cast<float>(p[i]);
    }
  } else {
    const auto* p = a.data<mx::bfloat16_t>();
    for (size_t i = 0; i < f.size(); ++i) {
      f[i] = static_cast<float>(p[i]);
    }
  }
  return f;
}

void store(const std::vector<float>& src, array& out) {
  if (out.dtype() == mx::float32) {
    std::memcpy(out.data<float>(), src.data(), out.nbytes());
  } else if (out.dtype() == mx::float16) {
    auto* p = out.data<mx::float16_t>();
    for (size_t i = 0; i < src.size(); ++i) {
      p[i] = static_cast<mx::float16_t>(src[i]);
    }
  } else {
    auto* p = out.data<mx::bfloat16_t>();
    for (size_t i = 0; i < src.size(); ++i) {
      p[i] = static_cast<mx::bfloat16_t>(src[i]);
    }
  }
}

// Expert e's (N, K) weight inside the stacked arrays.
cpu::WeightView expert_view(const cpu::WeightView& all, int e, bool shared_codebook) {
  cpu::WeightView w = all;
  const size_t rows = size_t(e) * all.N;
  const size_t scale_bytes = all.scales_f32 ? 4 : 2;
  w.packed = all.packed + rows * all.words_per_row;
  w.scales = static_cast<const char*>(all.scales) + rows * all.groups() * scale_bytes;
  if (all.biases) {
    w.biases = static_cast<const char*>(all.biases) + rows * all.groups() * scale_bytes;
  }
  if (all.codebook && !shared_codebook) {
    const size_t pattern_bytes = all.spec.vector_size == 8 ? 1 : 2;
    w.codebook = static_cast<const char*>(all.codebook) +
                 size_t(e) * all.spec.codebook_size() * pattern_bytes;
  }
  return w;
}

cpu::PackedWeight packed_weight(const cpu::WeightView& v) {
  return cpu::PackedWeight{int(v.spec.format),
                           v.N,
                           v.K,
                           v.spec.group_size,
                           v.spec.vector_size,
                           v.spec.index_bits,
                           v.words_per_row,
                           v.packed,
                           v.scales,
                           v.biases,
                           v.codebook,
                           v.scales_f32};
}

// out (rows, N or K) = x (rows, K or N) @ w.T or @ w, float32.
void expert_product(
    const cpu::KernelTable* k,
    const cpu::WeightView& w,
    const float* x,
    int rows,
    float* out,
    bool transpose) {
  if (!k) {
    transpose ? cpu::matmul_nt(w, x, rows, out) : cpu::matmul_nn(w, x, rows, out);
    return;
  }
  cpu::MatmulArgs args{};
  args.w = packed_weight(w);
  args.M = rows;
  args.x = x;
  args.out = out;
  args.parallel = &cpu::parallel_for_c;
  if (!(transpose ? k->matmul_nt(args) : k->matmul_nn(args))) {
    throw std::bad_alloc();
  }
}

// The output rows b of each expert, in order: one scan when rhs is sorted,
// else a stable counting sort. Returns (expert, first, last) spans into order.
struct Group {
  uint32_t expert;
  int begin, end;
};

std::vector<Group> group_by_expert(
    const uint32_t* rhs, int B, int E, bool sorted, std::vector<int>& order) {
  std::vector<Group> groups;
  order.resize(B);
  if (sorted) {
    std::iota(order.begin(), order.end(), 0);
    for (int b = 0; b < B;) {
      int end = b + 1;
      while (end < B && rhs[end] == rhs[b]) {
        ++end;
      }
      groups.push_back({rhs[b], b, end});
      b = end;
    }
    return groups;
  }
  std::vector<int> start(E + 1, 0);
  for (int b = 0; b < B; ++b) {
    ++start[rhs[b] + 1];
  }
  for (int e = 0; e < E; ++e) {
    start[e + 1] += start[e];
  }
  std::vector<int> next(start.begin(), start.end() - 1);
  for (int b = 0; b < B; ++b) {
    order[next[rhs[b]]++] = b;
  }
  for (int e = 0; e < E; ++e) {
    if (start[e + 1] > start[e]) {
      groups.push_back({uint32_t(e), start[e], start[e + 1]});
    }
  }
  return groups;
}

void check_indices(const uint32_t* idx, int B, int limit, const char* what) {
  for (int b = 0; b < B; ++b) {
    if (idx[b] >= uint32_t(limit)) {
      throw std::out_of_range(
          std::string("[lowbit_gather_matmul] ") + what + " index " + std::to_string(idx[b]) +
          " is out of range for " + std::to_string(limit) + " entries.");
    }
  }
}

} // namespace

void LowBitGatherMatmul::eval_cpu(const std::vector<array>& inputs, array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) {
    encoder.set_input_array(a);
  }
  encoder.set_output_array(out);
  const cpu::KernelTable* kernels = cpu::kernels_for(cpu::active_isa());
  std::vector<array> weight;
  for (size_t i = 1; i + 2 < inputs.size(); ++i) {
    weight.push_back(array::unsafe_weak_copy(inputs[i]));
  }
  encoder.dispatch([x = array::unsafe_weak_copy(inputs[0]), weight = std::move(weight),
                    lhs = array::unsafe_weak_copy(inputs[inputs.size() - 2]),
                    rhs = array::unsafe_weak_copy(inputs.back()),
                    out = array::unsafe_weak_copy(out), spec = spec_, has_bias = has_bias_,
                    transpose = transpose_, sorted = sorted_indices_, kernels]() mutable {
    if (out.size() == 0) {
      return;
    }
    const int Bx = x.shape(0), M = x.shape(1), in_cols = x.shape(2);
    const int B = out.shape(0), out_cols = out.shape(2);
    const int E = weight[0].shape(0);
    const uint32_t* lhs_p = lhs.data<uint32_t>();
    const uint32_t* rhs_p = rhs.data<uint32_t>();
    check_indices(lhs_p, B, Bx, "lhs_indices");
    check_indices(rhs_p, B, E, "rhs_indices");

    // The stacked arrays viewed as expert 0; expert_view moves the pointers.
    cpu::WeightView all = cpu::make_view(spec, has_bias, weight);
    all.N = weight[0].shape(1);
    all.K = weight[1].shape(2) * spec.group_size;
    all.words_per_row = weight[0].shape(2);
    const bool shared_codebook = spec.format == Format::Codebook && weight.back().ndim() == 1;

    std::vector<float> xf = to_float32(x);
    std::vector<float> of(out.size());
    const size_t x_block = size_t(M) * in_cols, out_block = size_t(M) * out_cols;
    std::vector<int> order;
    std::vector<float> x_scratch, out_scratch;
    for (const Group& g : group_by_expert(rhs_p, B, E, sorted, order)) {
      cpu::WeightView w = expert_view(all, g.expert, shared_codebook);
      const int count = g.end - g.begin;
      const int b0 = order[g.begin];
      // In place when the group's rows are consecutive in out and in x.
      bool in_place = true;
      for (int i = 1; i < count && in_place; ++i) {
        const int b = order[g.begin + i];
        in_place = b == b0 + i && lhs_p[b] == lhs_p[b0] + uint32_t(i);
      }
      if (in_place) {
        expert_product(
            kernels, w, xf.data() + lhs_p[b0] * x_block, count * M, of.data() + b0 * out_block,
            transpose);
        continue;
      }
      x_scratch.resize(count * x_block);
      out_scratch.resize(count * out_block);
      for (int i = 0; i < count; ++i) {
        const float* src = xf.data() + lhs_p[order[g.begin + i]] * x_block;
        std::copy(src, src + x_block, x_scratch.data() + i * x_block);
      }
      expert_product(kernels, w, x_scratch.data(), count * M, out_scratch.data(), transpose);
      for (int i = 0; i < count; ++i) {
        const float* src = out_scratch.data() + i * out_block;
        std::copy(src, src + out_block, of.data() + order[g.begin + i] * out_block);
      }
    }
    store(of, out);
  });
}

} // namespace mlx_lowbit
