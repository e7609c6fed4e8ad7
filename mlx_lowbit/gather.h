// Copyright © 2026 mlx-lowbit contributors.
//
// The gather-matmul over stacked expert weights (mixture-of-experts layers):
// the low-bit analogue of mx.gather_qmm.
#pragma once

#include <optional>
#include <string>
#include <tuple>

#include "mlx/ops.h"
#include "mlx/primitives.h"
#include "mlx_lowbit/format_spec.h"

namespace mlx_lowbit {

using mx::array;

// out[b] = x[lhs[b]] @ dequantize(w[rhs[b]]).T (transpose), or
// x[lhs[b]] @ dequantize(w[rhs[b]]).
// Inputs: x (Bx, M, K or N), packed (E, N, words), scales (E, N, groups),
// [biases (E, N, groups)], [codebook (E, 2^c) or (2^c,) shared], lhs (B,),
// rhs (B,) uint32. Output (B, M, N or K). Accumulates in fp32.
class LowBitGatherMatmul : public mx::UnaryPrimitive {
 public:
  LowBitGatherMatmul(
      mx::Stream stream, FormatSpec spec, bool has_bias, bool transpose, bool sorted_indices)
      : mx::UnaryPrimitive(stream),
        spec_(spec),
        has_bias_(has_bias),
        transpose_(transpose),
        sorted_indices_(sorted_indices) {}

  void eval_cpu(const std::vector<array>& inputs, array& out) override;
  void eval_gpu(const std::vector<array>& inputs, array& out) override;

  DEFINE_GRADS()
  DEFINE_NAME(LowBitGatherMatmul)
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<array>& inputs) override;
  auto state() const {
    return std::make_tuple(spec_, has_bias_, transpose_, sorted_indices_);
  }

 private:
  FormatSpec spec_;
  bool has_bias_;
  bool transpose_;
  // rhs is non-decreasing: the CPU groups rows by expert in one scan instead
  // of a counting sort. The result does not depend on it.
  bool sorted_indices_;
};

// x of shape (..., M, K) (transpose) or (..., M, N); the weight stacks E
// experts. lhs_indices index x's flattened batch dimensions (default: all of
// them, in order), rhs_indices the experts (default: all); the two broadcast
// to the output's batch shape S, and the output is S + (M, N or K) in x's
// dtype. sorted_indices promises rhs_indices (flattened) is non-decreasing.
mx::array lowbit_gather_matmul(
    const mx::array& x,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::optional<mx::array>& lhs_indices,
    const std::optional<mx::array>& rhs_indices,
    const std::string& format,
    int group_size,
    int vector_size = 0,
    int index_bits = 0,
    bool transpose = true,
    bool sorted_indices = false,
    mx::StreamOrDevice s = {});

// The same product from the dequantize kernel and MLX's gather_mm, on any
// stream: what lowbit_gather_matmul builds for transpose=False on a GPU
// stream (exposed so that the CPU tests check that route too).
mx::array lowbit_gather_matmul_dequantized(
    const mx::array& x,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::optional<mx::array>& lhs_indices,
    const std::optional<mx::array>& rhs_indices,
    const std::string& format,
    int group_size,
    int vector_size = 0,
    int index_bits = 0,
    bool transpose = true,
    bool sorted_indices = false,
    mx::StreamOrDevice s = {});

} // namespace mlx_lowbit
