// Copyright © 2026 mlx-lowbit contributors.
//
// Graph-level behaviour of the primitives (shapes, equivalence, transforms).
// eval_cpu lives in backend/cpu/, eval_gpu in backend/metal/.

#include "mlx_lowbit/primitives.h"

#include <stdexcept>

#include "mlx_lowbit/ops.h"

namespace mlx_lowbit {

namespace {

std::vector<array> weight_of(const std::vector<array>& inputs) {
  return {inputs.begin() + 1, inputs.end()};
}

} // namespace

bool LowBitMatmul::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const LowBitMatmul&>(other);
  return state() == o.state();
}

std::vector<mx::Shape> LowBitMatmul::output_shapes(const std::vector<array>& inputs) {
  auto shape = inputs[0].shape();
  shape.back() = transpose_ ? inputs[1].shape(0) : inputs[2].shape(1) * spec_.group_size;
  return {shape};
}

std::vector<array> LowBitMatmul::vjp(
    const std::vector<array>& primals,
    const std::vector<array>& cotangents,
    const std::vector<int>& argnums,
    const std::vector<array>&) {
  std::vector<array> vjps;
  for (int arg : argnums) {
    if (arg != 0) {
      throw std::invalid_argument(
          "[LowBitMatmul::vjp] No gradient with respect to the quantized weight; "
          "only x is differentiable (freeze the low-bit layer, e.g. for LoRA).");
    }
    if (activation_bits_ != 0) {
      throw std::invalid_argument(
          "[LowBitMatmul::vjp] Rounding x to int8 has no useful gradient; "
          "differentiate with activation_bits=0.");
    }
    // d(x @ W.T)/dx = g @ W and d(x @ W)/dx = g @ W.T: the same op, flipped.
    vjps.push_back(lowbit_matmul(
        cotangents[0], weight_of(primals), spec_, !transpose_, ScheduleRequest{}, 0, stream()));
  }
  return vjps;
}

std::vector<array> LowBitMatmul::jvp(
    const std::vector<array>& primals,
    const std::vector<array>& tangents,
    const std::vector<int>& argnums) {
  if (argnums.size() != 1 || argnums[0] != 0) {
    throw std::invalid_argument(
        "[LowBitMatmul::jvp] Only x is differentiable, not the quantized weight.");
  }
  if (activation_bits_ != 0) {
    throw std::invalid_argument(
        "[LowBitMatmul::jvp] Rounding x to int8 has no useful derivative; "
        "differentiate with activation_bits=0.");
  }
  return {
      lowbit_matmul(tangents[0], weight_of(primals), spec_, transpose_, schedule_, 0, stream())};
}

std::pair<std::vector<array>, std::vector<int>> LowBitMatmul::vmap(
    const std::vector<array>& inputs, const std::vector<int>& axes) {
  for (size_t i = 1; i < axes.size(); ++i) {
    if (axes[i] >= 0) {
      throw std::invalid_argument(
          "[LowBitMatmul::vmap] Cannot vmap over the quantized weight, only over x.");
    }
  }
  // Any leading axis of x is a batch axis of the product, so the mapped axis
  // moves to the front.
  array x = axes[0] > 0 ? mx::moveaxis(inputs[0], axes[0], 0, stream()) : inputs[0];
  return {
      {lowbit_matmul(
          x, weight_of(inputs), spec_, transpose_, schedule_, activation_bits_, stream())},
      {axes[0] >= 0 ? 0 : -1}};
}

bool LowBitDequantize::is_equivalent(const mx::Primitive& other) const {
  auto& o = static_cast<const LowBitDequantize&>(other);
  return state() == o.state();
}

std::vector<mx::Shape> LowBitDequantize::output_shapes(const std::vector<array>& inputs) {
  return {{inputs[0].shape(0), inputs[1].shape(1) * spec_.group_size}};
}

bool LowBitQuantize::is_equivalent(const mx::Primitive& other) const {
  return options_ == static_cast<const LowBitQuantize&>(other).options_;
}

} // namespace mlx_lowbit
