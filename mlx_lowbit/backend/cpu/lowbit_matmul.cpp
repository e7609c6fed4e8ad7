// Copyright © 2026 mlx-lowbit contributors.
//
// eval_cpu for LowBitMatmul and LowBitDequantize: convert activations to
// float32, run the kernel inside the CPU stream's dispatch, convert back.

#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/types/half_types.h"
#include "mlx_lowbit/backend/cpu/activation_quant.h"
#include "mlx_lowbit/backend/cpu/kernels.h"
#include "mlx_lowbit/backend/cpu/thread_pool.h"
#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

namespace {

template <typename T>
void to_float(const T* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    dst[i] = static_cast<float>(src[i]);
  }
}

template <typename T>
void from_float(const float* src, T* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    dst[i] = static_cast<T>(src[i]);
  }
}

// Float32 view of a, converting into `storage` unless it is float32 already.
const float* as_float(const array& a, std::vector<float>& storage) {
  if (a.dtype() == mx::float32) {
    return a.data<float>();
  }
  storage.resize(a.size());
  if (a.dtype() == mx::float16) {
    to_float(a.data<mx::float16_t>(), storage.data(), a.size());
  } else {
    to_float(a.data<mx::bfloat16_t>(), storage.data(), a.size());
  }
  return storage.data();
}

void store_float(const float* src, array& out) {
  if (out.dtype() == mx::float16) {
    from_float(src, out.data<mx::float16_t>(), out.size());
  } else if (out.dtype() == mx::bfloat16) {
    from_float(src, out.data<mx::bfloat16_t>(), out.size());
  }
}

std::vector<array> weak_copies(const std::vector<array>& arrays, size_t first) {
  std::vector<array> out;
  for (size_t i = first; i < arrays.size(); ++i) {
    out.push_back(array::unsafe_weak_copy(arrays[i]));
  }
  return out;
}

} // namespace

void LowBitMatmul::eval_cpu(const std::vector<array>& inputs, array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) {
    encoder.set_input_array(a);
  }
  encoder.set_output_array(out);
  encoder.dispatch([x = array::unsafe_weak_copy(inputs[0]),
                    weight = weak_copies(inputs, 1),
                    out = array::unsafe_weak_copy(out),
                    spec = spec_,
                    has_bias = has_bias_,
                    transpose = transpose_,
                    activation_bits = activation_bits_]() mutable {
    if (out.size() == 0) {
      return;
    }
    cpu::WeightView w = cpu::make_view(spec, has_bias, weight);
    int M = int(x.size() / x.shape(-1));
    std::vector<float> x_storage, out_storage;
    const float* xf = as_float(x, x_storage);
    if (activation_bits == 8) {
      // The portable path multiplies the int8-rounded values in float: the
      // same result as integer dot products, up to fp32 rounding.
      int K = x.shape(-1);
      if (xf != x_storage.data()) {
        x_storage.assign(xf, xf + x.size());
      }
      cpu::parallel_for(M, [&](int m0, int m1) {
        std::vector<int8_t> scratch(K);
        for (int m = m0; m < m1; ++m) {
          cpu::round_row_to_int8_grid(x_storage.data() + size_t(m) * K, K, scratch.data());
        }
      });
      xf = x_storage.data();
    }
    float* of = out.data<float>();
    if (out.dtype() != mx::float32) {
      out_storage.resize(out.size());
      of = out_storage.data();
    }
    if (transpose) {
      cpu::matmul_nt(w, xf, M, of);
    } else {
      cpu::matmul_nn(w, xf, M, of);
    }
    store_float(of, out);
  });
}

void LowBitDequantize::eval_cpu(const std::vector<array>& inputs, array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) {
    encoder.set_input_array(a);
  }
  encoder.set_output_array(out);
  encoder.dispatch([weight = weak_copies(inputs, 0),
                    out = array::unsafe_weak_copy(out),
                    spec = spec_,
                    has_bias = has_bias_]() mutable {
    cpu::WeightView w = cpu::make_view(spec, has_bias, weight);
    cpu::parallel_for(w.N, [&](int n0, int n1) {
      std::vector<float> row(w.K);
      for (int n = n0; n < n1; ++n) {
        cpu::dequantize_row(w, n, row.data());
        size_t offset = size_t(n) * w.K;
        if (out.dtype() == mx::float32) {
          std::copy(row.begin(), row.end(), out.data<float>() + offset);
        } else if (out.dtype() == mx::float16) {
          from_float(row.data(), out.data<mx::float16_t>() + offset, w.K);
        } else {
          from_float(row.data(), out.data<mx::bfloat16_t>() + offset, w.K);
        }
      }
    });
  });
}

} // namespace mlx_lowbit
