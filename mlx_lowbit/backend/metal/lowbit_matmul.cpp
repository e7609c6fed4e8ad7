// Copyright © 2026 mlx-lowbit contributors.
//
// eval_gpu for the primitives. The Metal kernels and their host-side router
// arrive with the Metal kernels issue; until then a GPU stream is refused
// with a clear message rather than a crash.

#include <stdexcept>

#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

void LowBitMatmul::eval_gpu(const std::vector<array>&, array&) {
  throw std::runtime_error(
      "[LowBitMatmul::eval_gpu] The Metal kernels are not built yet; "
      "use stream=mx.cpu.");
}

void LowBitDequantize::eval_gpu(const std::vector<array>&, array&) {
  throw std::runtime_error(
      "[LowBitDequantize::eval_gpu] The Metal kernels are not built yet; "
      "use stream=mx.cpu.");
}

} // namespace mlx_lowbit
