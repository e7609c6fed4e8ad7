// Copyright © 2026 mlx-lowbit contributors.

#include <stdexcept>

#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

// lowbit_quantize always places the op on the CPU stream (the clustering is
// sequential work); reaching this is a bug.
void LowBitQuantize::eval_gpu(const std::vector<array>&, std::vector<array>&) {
  throw std::logic_error("[LowBitQuantize::eval_gpu] The quantizers run on the CPU stream only.");
}

} // namespace mlx_lowbit
