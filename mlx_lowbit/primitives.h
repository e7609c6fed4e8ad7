// Copyright © 2026 mlx-lowbit contributors.
#pragma once

#include <tuple>

#include "mlx/primitives.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/quantize.h"
#include "mlx_lowbit/planner.h"

namespace mlx_lowbit {

using mx::array; // the DEFINE_* macros name it unqualified

// out = x @ w.T (transpose) or x @ w, w the dequantized (N, K) weight.
// Inputs: x, packed, scales, [biases], [codebook]. Accumulates in fp32.
class LowBitMatmul : public mx::UnaryPrimitive {
 public:
  LowBitMatmul(
      mx::Stream stream,
      FormatSpec spec,
      bool has_bias,
      bool transpose,
      ScheduleRequest schedule,
      int activation_bits)
      : mx::UnaryPrimitive(stream),
        spec_(spec),
        has_bias_(has_bias),
        transpose_(transpose),
        schedule_(schedule),
        activation_bits_(activation_bits) {}

  void eval_cpu(const std::vector<array>& inputs, array& out) override;
  void eval_gpu(const std::vector<array>& inputs, array& out) override;

  DEFINE_VMAP()
  DEFINE_GRADS()
  DEFINE_NAME(LowBitMatmul)
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<array>& inputs) override;
  auto state() const {
    return std::make_tuple(spec_, has_bias_, transpose_, schedule_, activation_bits_);
  }

 private:
  FormatSpec spec_;
  bool has_bias_;
  bool transpose_;
  ScheduleRequest schedule_;
  // 0: float activations; 8: each row of x quantized to int8 by its absmax
  // (BitNet b1.58's activation quantization) before the product.
  int activation_bits_;
};

// The (N, K) weight in a float dtype: the values the kernels multiply with.
// Inputs: packed, scales, [biases], [codebook].
class LowBitDequantize : public mx::UnaryPrimitive {
 public:
  LowBitDequantize(mx::Stream stream, FormatSpec spec, bool has_bias)
      : mx::UnaryPrimitive(stream), spec_(spec), has_bias_(has_bias) {}

  void eval_cpu(const std::vector<array>& inputs, array& out) override;
  void eval_gpu(const std::vector<array>& inputs, array& out) override;

  DEFINE_NAME(LowBitDequantize)
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<array>& inputs) override;
  auto state() const {
    return std::make_tuple(spec_, has_bias_);
  }

 private:
  FormatSpec spec_;
  bool has_bias_;
};

// The reference quantizer of a float32 (N, K) weight: packed, scales, then
// biases or the codebook (see lowbit_quantize). CPU only.
//
// A NaN or Inf in the weight is an error found only while quantizing. MLX
// 0.32 records an exception thrown from a CPU task on the stream and throws
// it from the next enqueue on the main thread; inside a command encoder's
// dispatch that leaks its active-task count (mx.eval then deadlocks after
// some rounds), and the outputs stay marked evaluated with unwritten data.
// So when `synchronous`, eval_cpu waits for the stream and quantizes on the
// calling thread, throwing from eval_cpu itself, which MLX unwinds cleanly
// and after which the outputs stay unevaluated (every later eval throws
// again). It is false only when the weight still depends on unscheduled GPU
// work, which eval may not commit before eval_cpu returns; then the task
// runs on the stream as before.
class LowBitQuantize : public mx::Primitive {
 public:
  LowBitQuantize(mx::Stream stream, QuantizeOptions options, bool synchronous)
      : mx::Primitive(stream), options_(options), synchronous_(synchronous) {}

  void eval_cpu(const std::vector<array>& inputs, std::vector<array>& outputs) override;
  void eval_gpu(const std::vector<array>& inputs, std::vector<array>& outputs) override;

  DEFINE_NAME(LowBitQuantize)
  bool is_equivalent(const mx::Primitive& other) const override;
  auto state() const {
    return options_;
  }

 private:
  QuantizeOptions options_;
  bool synchronous_;
};

} // namespace mlx_lowbit
