// Copyright © 2026 mlx-lowbit contributors.
//
// eval_cpu for LowBitQuantize: the reference quantizers (mlx_lowbit/quantize.cpp)
// inside the CPU stream's dispatch.

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

void LowBitQuantize::eval_cpu(const std::vector<array>& inputs, std::vector<array>& outputs) {
  auto& encoder = mx::cpu::get_command_encoder(stream());
  encoder.set_input_array(inputs[0]);
  std::vector<array> outs;
  for (auto& o : outputs) {
    o.set_data(mx::allocator::malloc(o.nbytes()));
    encoder.set_output_array(o);
    outs.push_back(array::unsafe_weak_copy(o));
  }
  encoder.dispatch([w = array::unsafe_weak_copy(inputs[0]),
                    outs = std::move(outs),
                    options = options_]() mutable {
    quantize_into(w.data<float>(), w.shape(0), w.shape(1), options, outs);
  });
}

} // namespace mlx_lowbit
