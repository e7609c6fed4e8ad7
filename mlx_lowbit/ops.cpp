// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/ops.h"

#include <limits>
#include <memory>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/planner.h"
#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

namespace {

bool is_supported_float(mx::Dtype t) {
  return t == mx::float16 || t == mx::bfloat16 || t == mx::float32;
}

std::vector<mx::array> collect(
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook) {
  std::vector<mx::array> w = {packed, scales};
  if (biases) {
    w.push_back(*biases);
  }
  if (codebook) {
    w.push_back(*codebook);
  }
  return w;
}

// Row-contiguous copies (no-ops when already so), so every backend can index
// the arrays directly.
std::vector<mx::array> contiguous_all(std::vector<mx::array> arrays, mx::StreamOrDevice s) {
  for (auto& a : arrays) {
    a = mx::contiguous(a, false, s);
  }
  return arrays;
}

std::optional<mx::array> bias_of(const FormatSpec& spec, const std::vector<mx::array>& w) {
  // biases, when present, sit right after scales; a codebook never has them.
  if (spec.format == Format::Binary && w.size() == 3) {
    return w[2];
  }
  return std::nullopt;
}

std::optional<mx::array> codebook_of(const FormatSpec& spec, const std::vector<mx::array>& w) {
  if (spec.format == Format::Codebook && w.size() == 3) {
    return w[2];
  }
  return std::nullopt;
}

} // namespace

mx::array lowbit_matmul(
    const mx::array& x,
    const std::vector<mx::array>& weight,
    const FormatSpec& spec,
    bool transpose,
    const ScheduleRequest& schedule,
    int activation_bits,
    mx::StreamOrDevice s) {
  constexpr std::string_view tag = "lowbit_matmul";
  // 1. validate
  if (weight.size() < 2 || weight.size() > 3) {
    throw_invalid(tag, "Expected packed, scales and optionally biases or codebook.");
  }
  auto biases = bias_of(spec, weight);
  auto codebook = codebook_of(spec, weight);
  int K = validate_weight(spec, weight[0], weight[1], biases, codebook, tag);
  int N = weight[0].shape(0);
  if (!is_supported_float(x.dtype())) {
    throw_invalid(tag, "x must be float16, bfloat16 or float32, got ", x.dtype(), ".");
  }
  if (x.ndim() < 1) {
    throw_invalid(tag, "x must have at least one dimension, got a scalar.");
  }
  int in_dim = transpose ? K : N;
  if (x.shape(-1) != in_dim) {
    throw_invalid(
        tag, "The last dimension of x with shape ", shape_str(x), " must be ",
        transpose ? "K" : "N", "=", in_dim, " of the ", format_name(spec.format), " weight (N=", N,
        ", K=", K, ", group_size=", spec.group_size, ").");
  }
  validate_schedule_request(schedule, tag);
  if (activation_bits != 0 && activation_bits != 8) {
    throw_invalid(
        tag, "activation_bits must be 0 (float activations) or 8 (per-token int8), got ",
        activation_bits, ".");
  }
  mx::Stream stream = mx::to_stream(s);
  std::vector<mx::array> inputs = {x};
  if (stream.device == mx::Device::gpu) {
    validate_gpu_request(K, schedule, tag);
    if (activation_bits == 8) {
      if (!transpose) {
        throw_invalid(
            tag, "activation_bits=8 with transpose=False runs on the CPU only (stream=mx.cpu).");
      }
      // The Metal kernels multiply float activations: the rows are rounded to
      // their int8 grid first, kept in float32 so that the grid stays exact
      // (the product is cast back to x's dtype). The primitive keeps
      // activation_bits=8, so its vjp still refuses.
      inputs = {round_to_int8_grid(x, stream)};
    }
    if (!transpose) {
      // x @ W (the gradient of x @ W.T) on the GPU: the dequantized weight
      // and MLX's matmul (docs/KERNELS.md), rather than kernels of its own.
      auto w = mx::array(
          {N, K}, x.dtype(), std::make_shared<LowBitDequantize>(stream, spec, biases.has_value()),
          contiguous_all(weight, s));
      return mx::matmul(x, w, s);
    }
  }
  // 2-4. x keeps its dtype (the output's); all inputs row-contiguous.
  inputs.insert(inputs.end(), weight.begin(), weight.end());
  inputs = contiguous_all(std::move(inputs), s);
  // 5. shape
  auto shape = x.shape();
  shape.back() = transpose ? N : K;
  // 6. the array
  mx::Dtype dtype = inputs[0].dtype();
  auto out = mx::array(
      std::move(shape), dtype,
      std::make_shared<LowBitMatmul>(
          stream, spec, biases.has_value(), transpose, schedule, activation_bits),
      std::move(inputs));
  return dtype == x.dtype() ? out : mx::astype(out, x.dtype(), stream);
}

mx::array lowbit_matmul(
    const mx::array& x,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::string& format,
    int group_size,
    int vector_size /* = 0 */,
    int index_bits /* = 0 */,
    bool transpose /* = true */,
    const std::string& schedule /* = "auto" */,
    const std::string& streamk_fixup /* = "deterministic" */,
    int split_k /* = 0 */,
    int bm /* = 0 */,
    int bn /* = 0 */,
    int bk /* = 0 */,
    int activation_bits /* = 0 */,
    mx::StreamOrDevice s /* = {} */) {
  constexpr std::string_view tag = "lowbit_matmul";
  FormatSpec spec = make_format_spec(format, group_size, vector_size, index_bits, tag);
  ScheduleRequest request =
      make_schedule_request(schedule, streamk_fixup, split_k, bm, bn, bk, tag);
  return lowbit_matmul(
      x, collect(packed, scales, biases, codebook), spec, transpose, request, activation_bits, s);
}

mx::array round_to_int8_grid(const mx::array& x, mx::StreamOrDevice s) {
  if (!is_supported_float(x.dtype()) || x.ndim() < 1) {
    throw_invalid(
        "round_to_int8_grid",
        "x must be a float16, bfloat16 or float32 array with at least one "
        "dimension, got ",
        x.dtype(), " of shape ", shape_str(x), ".");
  }
  // The CPU kernels' rule (activation_quant.h): a row with NaN or Inf, or
  // whose max|x| is below kInt8MinAbsmax, keeps its float values.
  auto xf = mx::astype(x, mx::float32, s);
  auto amax = mx::max(mx::abs(xf, s), -1, true, s);
  auto quantized = mx::logical_and(
      mx::logical_and(
          mx::greater_equal(amax, mx::array(cpu::kInt8MinAbsmax), s),
          mx::less_equal(amax, mx::array(std::numeric_limits<float>::max()), s), s),
      mx::logical_not(mx::any(mx::isnan(xf, s), -1, true, s), s), s);
  auto inv = mx::where(quantized, mx::divide(mx::array(127.0f), amax, s), mx::array(0.0f), s);
  auto q =
      mx::clip(mx::round(mx::multiply(xf, inv, s), 0, s), mx::array(-127.0f), mx::array(127.0f), s);
  return mx::where(quantized, mx::multiply(q, mx::divide(amax, mx::array(127.0f), s), s), xf, s);
}

mx::array lowbit_dequantize(
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    const std::string& format,
    int group_size,
    int vector_size /* = 0 */,
    int index_bits /* = 0 */,
    mx::Dtype dtype /* = mx::float32 */,
    mx::StreamOrDevice s /* = {} */) {
  constexpr std::string_view tag = "dequantize";
  FormatSpec spec = make_format_spec(format, group_size, vector_size, index_bits, tag);
  int K = validate_weight(spec, packed, scales, biases, codebook, tag);
  if (!is_supported_float(dtype)) {
    throw_invalid(tag, "dtype must be float16, bfloat16 or float32, got ", dtype, ".");
  }
  return mx::array(
      {packed.shape(0), K}, dtype,
      std::make_shared<LowBitDequantize>(mx::to_stream(s), spec, biases.has_value()),
      contiguous_all(collect(packed, scales, biases, codebook), s));
}

} // namespace mlx_lowbit
