// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/quantize.h"

#include <cmath>
#include <unordered_set>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/ops.h"
#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/primitives.h"

namespace mlx_lowbit {

namespace {

// An evaluated array with room for its data, to be filled in place.
mx::array empty_array(mx::Shape shape, mx::Dtype dtype) {
  size_t n = 1;
  for (auto d : shape) {
    n *= d;
  }
  return mx::array(mx::allocator::malloc(n * mx::size_of(dtype)), std::move(shape), dtype);
}

// Shape, dtype and group checks of the weight, before anything is evaluated.
void check_weight(const mx::array& w, int group_size, std::string_view tag) {
  if (w.ndim() != 2) {
    throw_invalid(tag, "The weight must be 2-D (N, K), got shape ", shape_str(w), ".");
  }
  if (!mx::issubdtype(w.dtype(), mx::floating)) {
    throw_invalid(tag, "The weight must be a float array, got ", w.dtype(), ".");
  }
  if (group_size <= 0 || group_size % lowbit::kKMultiple != 0 || w.shape(1) % group_size != 0) {
    throw_invalid(
        tag, "group_size must be a positive multiple of ", lowbit::kKMultiple,
        " that divides K=", w.shape(1), ", got ", group_size, ".");
  }
  check_weight_size(w.shape(0), w.shape(1), tag);
}

void check_scale_dtype(mx::Dtype t, std::string_view tag) {
  if (t != mx::float16 && t != mx::float32) {
    throw_invalid(tag, "scale_dtype must be float16 or float32, got ", t, ".");
  }
}

// Whether `a` depends on GPU work not yet scheduled (see LowBitQuantize).
bool waits_on_gpu(const mx::array& a) {
  std::vector<mx::array> todo = {a};
  std::unordered_set<std::uintptr_t> seen;
  while (!todo.empty()) {
    mx::array b = todo.back();
    todo.pop_back();
    if (b.status() != mx::array::Status::unscheduled || !b.has_primitive() ||
        !seen.insert(b.id()).second) {
      continue;
    }
    if (b.primitive().device() == mx::Device::gpu) {
      return true;
    }
    todo.insert(todo.end(), b.inputs().begin(), b.inputs().end());
  }
  return false;
}

mx::array unpacked_input(const mx::array& a, mx::Dtype dtype, std::string_view tag) {
  if (a.ndim() != 2) {
    throw_invalid(tag, "Expected a 2-D array, got shape ", shape_str(a), ".");
  }
  auto cpu = mx::Device(mx::Device::cpu);
  mx::array c = mx::contiguous(mx::astype(a, dtype, cpu), false, cpu);
  c.eval();
  return c;
}

} // namespace

std::vector<mx::array> lowbit_quantize(const mx::array& w, const QuantizeOptions& o) {
  constexpr std::string_view tag = "quantize";
  // 1. validate
  check_weight(w, o.spec.group_size, tag);
  validate_spec(o.spec, tag);
  check_scale_dtype(o.scale_dtype, tag);
  if (o.biases && o.spec.format != Format::Binary) {
    throw_invalid(
        tag, "bias applies only to the binary format, not to ", format_name(o.spec.format), ".");
  }
  if (o.max_iters < 0) {
    throw_invalid(tag, "max_iters must be >= 0, got ", o.max_iters, ".");
  }
  // 2-4. the quantizer reads float32 rows, on the CPU whatever the default device.
  auto cpu = mx::Device(mx::Device::cpu);
  mx::array w32 = mx::contiguous(mx::astype(w, mx::float32, cpu), false, cpu);
  // 5. shapes
  const int N = w.shape(0), K = w.shape(1), G = K / o.spec.group_size;
  std::vector<mx::Shape> shapes = {{N, o.spec.packed_words_per_row(K)}, {N, G}};
  std::vector<mx::Dtype> dtypes = {mx::uint32, o.scale_dtype};
  if (o.biases) {
    shapes.push_back({N, G});
    dtypes.push_back(o.scale_dtype);
  }
  if (o.spec.format == Format::Codebook) {
    shapes.push_back({o.spec.codebook_size()});
    dtypes.push_back(o.spec.codebook_dtype());
  }
  // 6. the arrays
  return mx::array::make_arrays(
      std::move(shapes), dtypes,
      std::make_shared<LowBitQuantize>(mx::to_stream(cpu), o, !waits_on_gpu(w32)), {w32});
}

std::vector<mx::array> quantize_now(const mx::array& w, const QuantizeOptions& o) {
  // The lazy op's checks and shapes, then the same work on this thread, so
  // that data-dependent errors (NaN, a scale fp16 cannot hold) raise here as
  // std::invalid_argument rather than from inside an evaluation.
  auto lazy = lowbit_quantize(w, o);
  mx::array w32 = lazy[0].inputs()[0];
  w32.eval();
  std::vector<mx::array> out;
  for (auto& a : lazy) {
    out.push_back(empty_array(a.shape(), a.dtype()));
  }
  quantize_into(w32.data<float>(), w.shape(0), w.shape(1), o, out);
  return out;
}

mx::array pack_ternary(const mx::array& t) {
  constexpr std::string_view tag = "pack_ternary";
  mx::array t8 = unpacked_input(t, mx::int8, tag);
  const int N = t.shape(0), K = t.shape(1);
  if (K % lowbit::ternary::kPerWord != 0) {
    throw_invalid(tag, "K must be a multiple of ", lowbit::ternary::kPerWord, ", got ", K, ".");
  }
  const int8_t* tp = t8.data<int8_t>();
  for (size_t i = 0; i < t8.size(); ++i) {
    if (tp[i] < -1 || tp[i] > 1) {
      throw_invalid(tag, "Ternary values must be -1, 0 or 1, found ", int(tp[i]), ".");
    }
  }
  mx::array packed = empty_array({N, lowbit::ternary::words_per_row(K)}, mx::uint32);
  pack_ternary_rows(tp, N, K, packed.data<uint32_t>());
  return packed;
}

mx::array pack_binary(const mx::array& bits) {
  constexpr std::string_view tag = "pack_binary";
  mx::array b8 = unpacked_input(bits, mx::uint8, tag);
  const int N = bits.shape(0), K = bits.shape(1);
  if (K % lowbit::binary::kPerWord != 0) {
    throw_invalid(tag, "K must be a multiple of ", lowbit::binary::kPerWord, ", got ", K, ".");
  }
  const uint8_t* bp = b8.data<uint8_t>();
  for (size_t i = 0; i < b8.size(); ++i) {
    if (bp[i] > 1) {
      throw_invalid(tag, "Binary values must be 0 or 1, found ", int(bp[i]), ".");
    }
  }
  mx::array packed = empty_array({N, lowbit::binary::words_per_row(K)}, mx::uint32);
  pack_binary_rows(bp, N, K, packed.data<uint32_t>());
  return packed;
}

mx::array pack_codebook(const mx::array& indices, int v, int c) {
  constexpr std::string_view tag = "pack_codebook";
  FormatSpec spec{Format::Codebook, lowbit::kKMultiple, v, c};
  validate_spec(spec, tag);
  mx::array idx = unpacked_input(indices, mx::uint32, tag);
  const int N = indices.shape(0), runs = indices.shape(1), K = runs * v;
  const uint32_t* ip = idx.data<uint32_t>();
  for (size_t i = 0; i < idx.size(); ++i) {
    if (ip[i] >> c) {
      throw_invalid(tag, "Index ", ip[i], " does not fit in index_bits=", c, ".");
    }
  }
  const int words = spec.packed_words_per_row(K);
  mx::array packed = empty_array({N, words}, mx::uint32);
  pack_codebook_rows(ip, N, runs, c, words, packed.data<uint32_t>());
  return packed;
}

} // namespace mlx_lowbit
