// Copyright © 2026 mlx-lowbit contributors.
//
// eval_cpu for LowBitMatmul and LowBitDequantize: pick the kernel path
// (isa.h), convert activations to float32 (or int8 rows), run the kernel
// inside the CPU stream's dispatch, convert back.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <tuple>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/types/half_types.h"
#include "mlx_lowbit/backend/cpu/activation_quant.h"
#include "mlx_lowbit/backend/cpu/isa.h"
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

cpu::PackedWeight packed_weight(const cpu::WeightView& v) {
  return cpu::PackedWeight{int(v.spec.format),
                           v.N,
                           v.K,
                           v.spec.group_size,
                           v.spec.vector_size,
                           v.spec.index_bits,
                           v.words_per_row,
                           v.packed,
                           v.scales,
                           v.biases,
                           v.codebook,
                           v.scales_f32};
}

cpu::Half16 half_type(const array& a) {
  return a.dtype() == mx::float16 ? cpu::Half16::Float16 : cpu::Half16::BFloat16;
}

// The portable kernels: float32 everywhere; int8 activations are rounded to
// their int8 grid and multiplied in float (the same result as an integer
// product, up to fp32 rounding).
void matmul_portable(
    const cpu::WeightView& w, array& x, array& out, bool transpose, int activation_bits) {
  int M = int(x.size() / x.shape(-1));
  std::vector<float> x_storage, out_storage;
  const float* xf = as_float(x, x_storage);
  if (activation_bits == 8) {
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
}

// The rows that quantize_int8 did not quantize (scale 0: NaN, Inf, zero or
// tiny max|x|) computed again with their float values, over what the int8
// kernel wrote for them. Returns false if scratch could not be allocated.
bool float_rows_over_int8(const cpu::KernelTable& k, const cpu::MatmulArgs& args, int K, int N) {
  std::vector<int> rows;
  for (int m = 0; m < args.M; ++m) {
    if (args.xscale[m] == 0.0f) {
      rows.push_back(m);
    }
  }
  if (rows.empty()) {
    return true;
  }
  std::vector<float> xf(rows.size() * size_t(K)), of(rows.size() * size_t(N));
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(args.x + size_t(rows[i]) * K, K, xf.data() + i * K);
  }
  cpu::MatmulArgs f = args;
  f.M = int(rows.size());
  f.x = xf.data();
  f.xq = nullptr;
  f.xscale = nullptr;
  f.out = of.data();
  if (!k.matmul_nt(f)) {
    return false;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(of.data() + i * N, N, args.out + size_t(rows[i]) * N);
  }
  return true;
}

// The weight's arrays as eval_cpu saw them: the stream's task only gets weak
// copies, whose data blocks are not the weight's own.
struct WeightOwner {
  std::weak_ptr<array::Data> packed, scales, biases; // biases: empty if none
};

// The repacked copy of one ternary or binary weight for a table-lookup GEMV, built at
// its first such product and kept while the weight's arrays live (the
// file format and the QuantizedWeight stay as they are): byte indices for
// int8 x, or (`nibbles`) the 4-bit indices for float x.
struct LutCopy {
  WeightOwner owner;
  std::vector<uint8_t> idx;
  std::vector<uint32_t> nibble_idx;
  std::vector<float> scales, biases;
};

// Keyed by the arrays' data blocks and the addresses read (a view may start
// inside a block); an entry whose weight was freed is dropped, so a block
// reused for another weight never finds a stale copy.
using LutKey = std::
    tuple<const void*, const void*, const void*, const void*, const void*, int, int, int, bool>;

std::shared_ptr<const LutCopy> lut_copy(
    const cpu::LutKernels& lut,
    const cpu::PackedWeight& w,
    const WeightOwner& owner,
    bool nibbles = false) {
  static std::mutex mutex;
  static std::map<LutKey, std::shared_ptr<LutCopy>> copies;
  auto packed = owner.packed.lock(), scales = owner.scales.lock(), biases = owner.biases.lock();
  if (!packed || !scales || (w.biases && !biases)) {
    return nullptr;
  }
  const LutKey key{packed.get(), scales.get(), biases.get(), w.packed, w.scales,
                   w.N,          w.K,          w.group_size, nibbles};
  std::lock_guard<std::mutex> lock(mutex);
  for (auto it = copies.begin(); it != copies.end();) {
    const WeightOwner& o = it->second->owner;
    const bool gone = o.packed.expired() || o.scales.expired() ||
                      (!it->second->biases.empty() && o.biases.expired());
    it = gone ? copies.erase(it) : std::next(it);
  }
  auto& copy = copies[key];
  if (!copy) {
    auto c = std::make_shared<LutCopy>();
    c->owner = owner;
    c->scales.resize(
        nibbles ? cpu::lut_nibble_scale_count(w.N, w.K, w.group_size)
                : cpu::lut_scale_count(w.N, w.K, w.group_size));
    c->biases.resize(w.biases ? c->scales.size() : 0);
    float* biases_out = w.biases ? c->biases.data() : nullptr;
    if (nibbles) {
      c->nibble_idx.resize(cpu::lut_nibble_words(w.N, w.K, w.format));
      lut.repack_nibbles(w, c->nibble_idx.data(), c->scales.data(), biases_out);
    } else {
      c->idx.resize(cpu::lut_index_bytes(w.N, w.K, w.format));
      lut.repack(w, c->idx.data(), c->scales.data(), biases_out);
    }
    copy = std::move(c);
  }
  return copy;
}

// MLX_LOWBIT_CPU_LUT=0 turns the table-lookup GEMV off (to compare kernels).
bool lut_enabled() {
  const char* v = std::getenv("MLX_LOWBIT_CPU_LUT");
  return !v || std::strcmp(v, "0") != 0;
}

// Up to this many rows of x the table-lookup GEMV, one row at a time, was
// measured faster than the vpdpbusd GEMV (Zen 4, 4096 x 4096: 0.45x at M = 1,
// 0.7x at M = 2, 0.75-0.8x at M = 3 and 4; docs/CPU_KERNELS.md).
constexpr int kLutMaxM = 4;

// The table-lookup GEMV where it applies (int8 rows of x, M <= kLutMaxM,
// ternary or binary, groups of at most kLutMaxGroup); false where it does not, and the
// caller runs the table's kernel.
bool try_lut_gemv(
    const cpu::LutKernels* lut, const cpu::MatmulArgs& args, const WeightOwner& owner) {
  const cpu::PackedWeight& w = args.w;
  const bool ternary = w.format == int(lowbit::Format::Ternary);
  const bool binary = w.format == int(lowbit::Format::Binary);
  if (!lut || args.M > kLutMaxM || !(ternary || binary) ||
      w.group_size % cpu::lut_weights_per_byte(w.format) != 0 || w.group_size > cpu::kLutMaxGroup ||
      !lut_enabled()) {
    return false;
  }
  auto copy = lut_copy(*lut, w, owner);
  if (!copy) {
    return false;
  }
  const cpu::LutWeight tl{
      w.format,
      w.N,
      w.K,
      w.group_size,
      copy->idx.data(),
      copy->scales.data(),
      copy->biases.empty() ? nullptr : copy->biases.data()};
  for (int m = 0; m < args.M; ++m) {
    const size_t x0 = size_t(m) * w.K, out0 = size_t(m) * w.N;
    if (!lut->gemv(tl, args.xq + x0, args.xscale[m], args.out + out0, args.parallel)) {
      throw std::bad_alloc();
    }
  }
  return true;
}

// The float-x GEMV by nibble lookup (ternary or binary, x @ W.T) where it
// was measured faster than the FMA kernels (Zen 4, 4096 x 4096, 2026-12-04,
// docs/CPU_KERNELS.md): binary up to M = kNibbleMaxM1 (0.4-0.6x), ternary
// at M = 1 and, on one thread, up to kNibbleMaxM1 (0.6-0.85x; with two
// threads ternary M > 1 did not gain: the other kernels scale over threads
// and this one, bound by its permutes, less). False where it does not apply.
constexpr int kNibbleMaxM1 = 16;
constexpr int kNibbleRowsPerPass = 8; // rows of x whose tables share a pass
bool try_nibble_gemv(
    const cpu::LutKernels* lut, const cpu::MatmulArgs& args, const WeightOwner& owner) {
  const cpu::PackedWeight& w = args.w;
  const bool ternary = w.format == int(lowbit::Format::Ternary);
  const bool binary = w.format == int(lowbit::Format::Binary);
  const int max_m = cpu::num_threads() == 1 || binary ? kNibbleMaxM1 : 1;
  if (!lut || !(ternary || binary) || w.group_size % 32 != 0 || args.M > max_m || !lut_enabled()) {
    return false;
  }
  auto copy = lut_copy(*lut, w, owner, /* nibbles = */ true);
  if (!copy) {
    return false;
  }
  const cpu::LutNibbleWeight tw{
      w.format,
      w.N,
      w.K,
      w.group_size,
      copy->nibble_idx.data(),
      copy->scales.data(),
      copy->biases.empty() ? nullptr : copy->biases.data()};
  for (int m = 0; m < args.M; m += kNibbleRowsPerPass) {
    const int rows = std::min(kNibbleRowsPerPass, args.M - m);
    if (!lut->gemv_nibbles(
            tw, args.x + size_t(m) * w.K, rows, args.out + size_t(m) * w.N, args.parallel)) {
      throw std::bad_alloc();
    }
  }
  return true;
}

// A SIMD path: the same contract through kernel_abi.h.
void matmul_simd(
    const cpu::KernelTable& k,
    const cpu::LutKernels* lut,
    const WeightOwner& owner,
    const cpu::WeightView& w,
    array& x,
    array& out,
    bool transpose,
    int activation_bits) {
  cpu::MatmulArgs args{};
  args.w = packed_weight(w);
  args.M = int(x.size() / x.shape(-1));
  args.parallel = &cpu::parallel_for_c;
  const size_t x_cols = x.shape(-1);
  const bool given_f32 = x.dtype() == mx::float32;
  // int8 rows for x @ W.T; x @ W has no integer kernel, so there x is
  // rounded to its int8 grid and multiplied in float, as on the portable path.
  const bool int8_rows = activation_bits == 8 && transpose;
  const bool int8_grid = activation_bits == 8 && !transpose;
  std::vector<float> x_storage, out_storage;
  std::vector<int8_t> xq;
  std::vector<float> xscale;
  if (!given_f32 || int8_grid) {
    x_storage.resize(x.size());
  }
  if (int8_rows) {
    xq.resize(x.size());
    xscale.resize(args.M);
  }
  const float* xf = given_f32 && !int8_grid ? x.data<float>() : x_storage.data();
  // One parallel region prepares each row: float32, then int8.
  if (!given_f32 || activation_bits == 8) {
    cpu::parallel_for(args.M, [&](int m0, int m1) {
      const size_t first = m0 * x_cols, count = (m1 - m0) * x_cols;
      if (!given_f32) {
        k.half_to_float(x.data<uint16_t>() + first, half_type(x), x_storage.data() + first, count);
      } else if (int8_grid) {
        std::copy_n(x.data<float>() + first, count, x_storage.data() + first);
      }
      std::vector<int8_t> scratch(int8_grid ? x_cols : 0);
      for (int m = m0; m < m1; ++m) {
        if (int8_rows) {
          xscale[m] = k.quantize_int8(xf + m * x_cols, int(x_cols), xq.data() + m * x_cols);
        } else if (int8_grid) {
          cpu::round_row_to_int8_grid(x_storage.data() + m * x_cols, int(x_cols), scratch.data());
        }
      }
    });
  }
  args.x = xf;
  if (int8_rows) {
    args.xq = xq.data();
    args.xscale = xscale.data();
  }
  args.out = out.data<float>();
  if (out.dtype() != mx::float32) {
    out_storage.resize(out.size());
    args.out = out_storage.data();
  }
  bool ok = !transpose   ? k.matmul_nn(args)
            : !int8_rows ? try_nibble_gemv(lut, args, owner) || k.matmul_nt(args)
                         : try_lut_gemv(lut, args, owner) || k.matmul_nt_int8(args);
  if (ok && int8_rows) {
    ok = float_rows_over_int8(k, args, int(x_cols), int(out.shape(-1)));
  }
  if (!ok) {
    throw std::bad_alloc();
  }
  if (out.dtype() != mx::float32) {
    const size_t cols = out.shape(-1);
    cpu::parallel_for(args.M, [&](int m0, int m1) {
      k.float_to_half(
          out_storage.data() + m0 * cols, half_type(out), out.data<uint16_t>() + m0 * cols,
          (m1 - m0) * cols);
    });
  }
}

} // namespace

void LowBitMatmul::eval_cpu(const std::vector<array>& inputs, array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) {
    encoder.set_input_array(a);
  }
  encoder.set_output_array(out);
  // Resolved here, on the caller's thread, so that a bad MLX_LOWBIT_CPU_ISA
  // raises at mx.eval instead of inside the stream's worker.
  const cpu::Isa isa = cpu::active_isa();
  const cpu::KernelTable* kernels = cpu::kernels_for(isa);
  const cpu::LutKernels* lut = cpu::lut_kernels_for(isa);
  const WeightOwner owner{
      inputs[1].data_shared_ptr(), inputs[2].data_shared_ptr(),
      spec_.format == lowbit::Format::Binary && has_bias_
          ? std::weak_ptr<array::Data>(inputs[3].data_shared_ptr())
          : std::weak_ptr<array::Data>()};
  encoder.dispatch([x = array::unsafe_weak_copy(inputs[0]), weight = weak_copies(inputs, 1),
                    out = array::unsafe_weak_copy(out), spec = spec_, has_bias = has_bias_,
                    transpose = transpose_, activation_bits = activation_bits_, kernels, lut,
                    owner]() mutable {
    if (out.size() == 0) {
      return;
    }
    cpu::WeightView w = cpu::make_view(spec, has_bias, weight);
    if (kernels) {
      matmul_simd(*kernels, lut, owner, w, x, out, transpose, activation_bits);
    } else {
      matmul_portable(w, x, out, transpose, activation_bits);
    }
  });
}

void LowBitDequantize::eval_cpu(const std::vector<array>& inputs, array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  auto& encoder = mx::cpu::get_command_encoder(stream());
  for (auto& a : inputs) {
    encoder.set_input_array(a);
  }
  encoder.set_output_array(out);
  encoder.dispatch([weight = weak_copies(inputs, 0), out = array::unsafe_weak_copy(out),
                    spec = spec_, has_bias = has_bias_]() mutable {
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
