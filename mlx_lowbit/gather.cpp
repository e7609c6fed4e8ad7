// Copyright © 2026 mlx-lowbit contributors.
//
// lowbit_gather_matmul (validate, then build) and the graph-level behaviour
// of LowBitGatherMatmul. eval_cpu is in backend/cpu/gather_matmul.cpp,
// eval_gpu (metal/gather.h's kernel) in backend/metal/gather_matmul.cpp.

#include "mlx_lowbit/gather.h"

#include <memory>

#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

namespace {

constexpr std::string_view kTag = "lowbit_gather_matmul";

bool is_float(mx::Dtype t) {
  return t == mx::float16 || t == mx::bfloat16 || t == mx::float32;
}

// The stacked weight's arrays: 3-D with one leading expert axis (the codebook
// may also be shared by all experts); each expert is checked as a 2-D weight.
// Returns (E, N, K).
std::tuple<int, int, int> validate_experts(
    const FormatSpec& spec,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook) {
  if (packed.ndim() != 3 || scales.ndim() != 3) {
    throw_invalid(
        kTag, "packed and scales must be 3-D (experts, N, ...), got packed ", shape_str(packed),
        " and scales ", shape_str(scales), ".");
  }
  int E = packed.shape(0);
  if (E < 1 || scales.shape(0) != E) {
    throw_invalid(
        kTag, "packed ", shape_str(packed), " and scales ", shape_str(scales),
        " must hold the same number (>= 1) of experts.");
  }
  if (biases && (biases->ndim() != 3 || biases->shape(0) != E)) {
    throw_invalid(
        kTag, "biases must be 3-D with ", E, " experts like scales, got ", shape_str(*biases), ".");
  }
  std::optional<mx::array> codebook0;
  if (codebook) {
    if (codebook->ndim() == 2 && codebook->shape(0) != E) {
      throw_invalid(
          kTag, "A per-expert codebook must have shape (", E, ", 2^index_bits), got ",
          shape_str(*codebook), ".");
    }
    if (codebook->ndim() != 1 && codebook->ndim() != 2) {
      throw_invalid(
          kTag, "The codebook must be (2^index_bits,) (shared) or (experts, 2^index_bits), got ",
          shape_str(*codebook), ".");
    }
    codebook0 = codebook->ndim() == 2 ? mx::take(*codebook, 0, 0) : *codebook;
  }
  // Expert 0's arrays carry every per-expert shape; take() is lazy, only
  // the shapes are read here.
  auto first = [](const mx::array& a) { return mx::take(a, 0, 0); };
  std::optional<mx::array> biases0;
  if (biases) {
    biases0 = first(*biases);
  }
  int K = validate_weight(spec, first(packed), first(scales), biases0, codebook0, kTag);
  return {E, packed.shape(1), K};
}

// Integer indices as a uint32 array (MLX's gather ops take any integer type).
mx::array as_indices(const mx::array& a, const char* name, mx::StreamOrDevice s) {
  if (!mx::issubdtype(a.dtype(), mx::integer)) {
    throw_invalid(kTag, name, " must be an integer array, got ", a.dtype(), ".");
  }
  return mx::astype(a, mx::uint32, s);
}

std::vector<array> weight_inputs(const std::vector<array>& inputs) {
  return {inputs.begin() + 1, inputs.end() - 2};
}

// The primitive on prepared inputs: x (Bx, M, in) and lhs, rhs (B,) uint32.
mx::array gather_primitive(
    const mx::array& x,
    const std::vector<mx::array>& weight,
    const mx::array& lhs,
    const mx::array& rhs,
    const FormatSpec& spec,
    bool has_bias,
    bool transpose,
    bool sorted,
    mx::Stream stream) {
  int out_cols = transpose ? weight[0].shape(1) : weight[1].shape(2) * spec.group_size;
  std::vector<mx::array> inputs = {mx::contiguous(x, false, stream)};
  for (auto& w : weight) {
    inputs.push_back(mx::contiguous(w, false, stream));
  }
  inputs.push_back(mx::contiguous(lhs, false, stream));
  inputs.push_back(mx::contiguous(rhs, false, stream));
  return mx::array(
      {int(lhs.size()), x.shape(1), out_cols}, x.dtype(),
      std::make_shared<LowBitGatherMatmul>(stream, spec, has_bias, transpose, sorted),
      std::move(inputs));
}

// The (rows, K) dequantized weight of 2-D packed arrays (LowBitDequantize).
mx::array dequantize_rows(
    std::vector<mx::array> w,
    const FormatSpec& spec,
    bool has_bias,
    mx::Dtype dtype,
    mx::Stream stream) {
  int rows = w[0].shape(0), K = w[1].shape(1) * spec.group_size;
  for (auto& a : w) {
    a = mx::contiguous(a, false, stream);
  }
  return mx::array(
      {rows, K}, dtype, std::make_shared<LowBitDequantize>(stream, spec, has_bias), std::move(w));
}

// The same product from the dequantize kernel and MLX's gather_mm: the GPU
// route of transpose=False. Only the experts in use are dequantized when
// there are fewer rows than experts (decode), else all of them; a
// per-expert codebook dequantizes expert by expert.
mx::array gather_by_dequantize(
    const mx::array& x,
    const std::vector<mx::array>& weight,
    const mx::array& lhs,
    const mx::array& rhs,
    const FormatSpec& spec,
    bool has_bias,
    bool transpose,
    bool sorted,
    mx::Stream stream) {
  int E = weight[0].shape(0), N = weight[0].shape(1), K = weight[1].shape(2) * spec.group_size;
  int B = lhs.size();
  bool per_expert_codebook = spec.format == Format::Codebook && weight.back().ndim() == 2;
  mx::array experts = rhs;
  mx::array w(0.0f);
  if (per_expert_codebook) {
    std::vector<mx::array> each;
    for (int e = 0; e < E; ++e) {
      std::vector<mx::array> we;
      for (auto& a : weight) {
        we.push_back(mx::take(a, e, 0, stream));
      }
      each.push_back(dequantize_rows(we, spec, has_bias, x.dtype(), stream));
    }
    w = mx::stack(each, 0, stream);
  } else {
    bool take_used = B < E;
    std::vector<mx::array> flat;
    for (size_t i = 0; i < weight.size(); ++i) {
      const mx::array& a = weight[i];
      if (a.ndim() == 1) { // the shared codebook
        flat.push_back(a);
        continue;
      }
      auto used = take_used ? mx::take(a, rhs, 0, stream) : a;
      flat.push_back(mx::reshape(used, {-1, a.shape(2)}, stream));
    }
    w = mx::reshape(dequantize_rows(flat, spec, has_bias, x.dtype(), stream), {-1, N, K}, stream);
    if (take_used) {
      experts = mx::arange(B, mx::uint32, stream);
      sorted = true;
    }
  }
  if (transpose) {
    w = mx::swapaxes(w, -1, -2, stream);
  }
  if (stream.device == mx::Device::gpu || x.dtype() == mx::float32) {
    return mx::gather_mm(x, w, lhs, experts, sorted, stream);
  }
  // MLX's CPU gather_mm is float32 only (this route runs on the CPU in tests).
  auto f32 = [&](const mx::array& a) { return mx::astype(a, mx::float32, stream); };
  return mx::astype(mx::gather_mm(f32(x), f32(w), lhs, experts, sorted, stream), x.dtype(), stream);
}

// The product on prepared inputs, by the route the stream's device has.
mx::array gather_product(
    const mx::array& x,
    const std::vector<mx::array>& weight,
    const mx::array& lhs,
    const mx::array& rhs,
    const FormatSpec& spec,
    bool has_bias,
    bool transpose,
    bool sorted,
    mx::Stream stream,
    bool by_dequantize = false) {
  // The Metal kernel does x @ W.T; x @ W (the gradient's product) is rare
  // enough on a GPU to come from the dequantized experts, as lowbit_matmul's.
  if (by_dequantize || (stream.device == mx::Device::gpu && !transpose)) {
    return gather_by_dequantize(x, weight, lhs, rhs, spec, has_bias, transpose, sorted, stream);
  }
  return gather_primitive(x, weight, lhs, rhs, spec, has_bias, transpose, sorted, stream);
}

} // namespace

static mx::array gather_matmul_op(
    bool by_dequantize,
    const mx::array& x,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::optional<mx::array>& lhs_indices,
    const std::optional<mx::array>& rhs_indices,
    const std::string& format,
    int group_size,
    int vector_size /* = 0 */,
    int index_bits /* = 0 */,
    bool transpose /* = true */,
    bool sorted_indices,
    mx::StreamOrDevice s) {
  // 1. validate
  FormatSpec spec = make_format_spec(format, group_size, vector_size, index_bits, kTag);
  auto [E, N, K] = validate_experts(spec, packed, scales, biases, codebook);
  if (!is_float(x.dtype())) {
    throw_invalid(kTag, "x must be float16, bfloat16 or float32, got ", x.dtype(), ".");
  }
  if (x.ndim() < 2) {
    throw_invalid(
        kTag, "x must have shape (..., M, ", transpose ? "K" : "N", "), got ", shape_str(x), ".");
  }
  int in_dim = transpose ? K : N;
  if (x.shape(-1) != in_dim) {
    throw_invalid(
        kTag, "The last dimension of x with shape ", shape_str(x), " must be ",
        transpose ? "K" : "N", "=", in_dim, " of the ", format_name(spec.format), " experts (E=", E,
        ", N=", N, ", K=", K, ", group_size=", spec.group_size, ").");
  }
  // 2. defaults: every batch entry of x, every expert, in order.
  mx::Shape x_batch(x.shape().begin(), x.shape().end() - 2);
  int Bx = 1;
  for (int d : x_batch) {
    Bx *= d;
  }
  auto lhs = lhs_indices ? as_indices(*lhs_indices, "lhs_indices", s)
                         : mx::reshape(mx::arange(Bx, mx::uint32, s), x_batch, s);
  auto rhs =
      rhs_indices ? as_indices(*rhs_indices, "rhs_indices", s) : mx::arange(E, mx::uint32, s);
  // 3-4. the batch shape S; x as (Bx, M, in)
  auto indices = mx::broadcast_arrays({lhs, rhs}, s);
  mx::Shape batch = indices[0].shape();
  int M = x.shape(-2);
  auto x3 = mx::reshape(x, {Bx, M, in_dim}, s);
  std::vector<mx::array> weight = {packed, scales};
  if (biases) {
    weight.push_back(*biases);
  }
  if (codebook) {
    weight.push_back(*codebook);
  }
  // 5-6. the array, with S restored
  auto out = gather_product(
      x3, weight, mx::flatten(indices[0], s), mx::flatten(indices[1], s), spec, biases.has_value(),
      transpose, sorted_indices, mx::to_stream(s), by_dequantize);
  batch.push_back(M);
  batch.push_back(transpose ? N : K);
  return mx::reshape(out, std::move(batch), s);
}

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
    int vector_size /* = 0 */,
    int index_bits /* = 0 */,
    bool transpose /* = true */,
    bool sorted_indices /* = false */,
    mx::StreamOrDevice s /* = {} */) {
  return gather_matmul_op(
      false, x, packed, scales, biases, codebook, lhs_indices, rhs_indices, format, group_size,
      vector_size, index_bits, transpose, sorted_indices, s);
}

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
    int vector_size /* = 0 */,
    int index_bits /* = 0 */,
    bool transpose /* = true */,
    bool sorted_indices /* = false */,
    mx::StreamOrDevice s /* = {} */) {
  return gather_matmul_op(
      true, x, packed, scales, biases, codebook, lhs_indices, rhs_indices, format, group_size,
      vector_size, index_bits, transpose, sorted_indices, s);
}

bool LowBitGatherMatmul::is_equivalent(const mx::Primitive& other) const {
  return state() == static_cast<const LowBitGatherMatmul&>(other).state();
}

std::vector<mx::Shape> LowBitGatherMatmul::output_shapes(const std::vector<array>& inputs) {
  int out_cols = transpose_ ? inputs[1].shape(1) : inputs[2].shape(2) * spec_.group_size;
  return {{int(inputs.back().size()), inputs[0].shape(1), out_cols}};
}

std::vector<array> LowBitGatherMatmul::vjp(
    const std::vector<array>& primals,
    const std::vector<array>& cotangents,
    const std::vector<int>& argnums,
    const std::vector<array>&) {
  std::vector<array> vjps;
  const array& x = primals[0];
  const array& lhs = primals[primals.size() - 2];
  const array& rhs = primals.back();
  for (int arg : argnums) {
    if (arg != 0) {
      throw std::invalid_argument(
          "[LowBitGatherMatmul::vjp] Only x is differentiable, not the quantized experts "
          "or the indices.");
    }
    // Each output row b came from x[lhs[b]] through expert rhs[b]: the flipped
    // product with that expert, summed back into the rows it read.
    int B = lhs.size();
    auto rows = mx::arange(B, mx::uint32, stream());
    auto g = gather_product(
        cotangents[0], weight_inputs(primals), rows, rhs, spec_, has_bias_, !transpose_,
        sorted_indices_, stream());
    auto updates = mx::reshape(g, {B, 1, x.shape(1), x.shape(2)}, stream());
    vjps.push_back(
        mx::scatter_add(mx::zeros(x.shape(), x.dtype(), stream()), {lhs}, updates, {0}, stream()));
  }
  return vjps;
}

std::vector<array> LowBitGatherMatmul::jvp(
    const std::vector<array>& primals,
    const std::vector<array>& tangents,
    const std::vector<int>& argnums) {
  if (argnums.size() != 1 || argnums[0] != 0) {
    throw std::invalid_argument(
        "[LowBitGatherMatmul::jvp] Only x is differentiable, not the quantized experts or the "
        "indices.");
  }
  return {gather_product(
      tangents[0], weight_inputs(primals), primals[primals.size() - 2], primals.back(), spec_,
      has_bias_, transpose_, sorted_indices_, stream())};
}

} // namespace mlx_lowbit
