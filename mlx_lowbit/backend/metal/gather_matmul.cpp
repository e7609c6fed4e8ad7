// Copyright © 2026 mlx-lowbit contributors.
//
// eval_gpu for LowBitGatherMatmul. There are no Metal gather kernels yet:
// on a GPU stream lowbit_gather_matmul builds the product from the
// dequantize kernel and MLX's gather_mm instead (gather.cpp), so this
// primitive only ever runs on the CPU.

#include <stdexcept>

#include "mlx_lowbit/gather.h"

namespace mlx_lowbit {

void LowBitGatherMatmul::eval_gpu(const std::vector<array>&, array&) {
  throw std::logic_error(
      "[LowBitGatherMatmul::eval_gpu] A GPU stream builds the gather from other ops "
      "(lowbit_gather_matmul); this primitive runs on the CPU only.");
}

} // namespace mlx_lowbit
