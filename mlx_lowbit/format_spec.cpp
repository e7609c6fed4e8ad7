// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/format_spec.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "mlx_lowbit/enum_names.h"

namespace mlx_lowbit {

namespace {

// Element offsets into a weight, and bit offsets into a codebook row (up to
// 2 bits per weight), are int in the kernels (CPU and Metal).
constexpr int64_t kMaxElements = std::numeric_limits<int>::max();
constexpr int64_t kMaxK = kMaxElements / 2;

// The one list of format names; parsing and error texts are built from it.
constexpr EnumNames<Format, 3> kFormats = {{
    {Format::Ternary, "ternary"},
    {Format::Binary, "binary"},
    {Format::Codebook, "codebook"},
}};

} // namespace

Format parse_format(std::string_view name, std::string_view tag) {
  return parse_enum(kFormats, name, "format", tag);
}

const char* format_name(Format format) {
  return enum_name(kFormats, format);
}

std::vector<std::string> format_names() {
  std::vector<std::string> names;
  for (auto& [format, text] : kFormats) {
    names.push_back(text);
  }
  return names;
}

int FormatSpec::packed_words_per_row(int K) const {
  switch (format) {
    case Format::Ternary:
      return lowbit::ternary::words_per_row(K);
    case Format::Binary:
      return lowbit::binary::words_per_row(K);
    case Format::Codebook:
      return lowbit::codebook::index_words_per_row(K, vector_size, index_bits);
  }
  throw std::logic_error("[packed_words_per_row] corrupt Format value.");
}

void check_weight_size(int64_t N, int64_t K, std::string_view tag) {
  if (N < 1 || K < 1 || K > kMaxK || N * K > kMaxElements) {
    throw_invalid(
        tag, "A (", N, ", ", K, ") weight is outside what the kernels index (32-bit offsets): ",
        "N and K must be at least 1, K at most ", kMaxK, " and N * K at most ", kMaxElements, ".");
  }
}

void validate_spec(const FormatSpec& spec, std::string_view tag) {
  if (spec.group_size <= 0 || spec.group_size % lowbit::kKMultiple != 0) {
    throw_invalid(
        tag, "group_size must be a positive multiple of ", lowbit::kKMultiple,
        " (e.g. 32, 64, 128 or K), got ", spec.group_size, ".");
  }
  if (spec.format == Format::Codebook) {
    if (spec.vector_size != 8 && spec.vector_size != 16) {
      throw_invalid(tag, "codebook vector_size must be 8 or 16, got ", spec.vector_size, ".");
    }
    int max_bits = std::min(lowbit::codebook::kMaxIndexBits, spec.vector_size);
    if (spec.index_bits < lowbit::codebook::kMinIndexBits || spec.index_bits > max_bits) {
      throw_invalid(
          tag, "codebook index_bits must be in [", lowbit::codebook::kMinIndexBits, ", ", max_bits,
          "] for vector_size=", spec.vector_size, ", got ", spec.index_bits, ".");
    }
  } else if (spec.vector_size != 0 || spec.index_bits != 0) {
    throw_invalid(
        tag, "vector_size and index_bits apply only to the codebook format, not to ",
        format_name(spec.format), ".");
  }
}

FormatSpec make_format_spec(
    std::string_view format,
    int group_size,
    int vector_size,
    int index_bits,
    std::string_view tag) {
  FormatSpec spec{parse_format(format, tag), group_size, vector_size, index_bits};
  validate_spec(spec, tag);
  return spec;
}

int validate_weight(
    const FormatSpec& spec,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    std::string_view tag) {
  validate_spec(spec, tag);
  const char* fmt = format_name(spec.format);
  if (packed.dtype() != mx::uint32 || packed.ndim() != 2) {
    throw_invalid(
        tag, "The packed ", fmt, " weight must be a 2-D uint32 array, got ", packed.dtype(),
        " with shape ", shape_str(packed), ".");
  }
  if (scales.ndim() != 2 || (scales.dtype() != mx::float16 && scales.dtype() != mx::float32)) {
    throw_invalid(
        tag, "scales must be a 2-D float16 or float32 array, got ", scales.dtype(), " with shape ",
        shape_str(scales), ".");
  }
  int N = packed.shape(0);
  if (scales.shape(0) != N || scales.shape(1) < 1) {
    throw_invalid(
        tag, "scales have shape ", shape_str(scales), " but the packed weight has ", N,
        " rows; expected (", N, ", K / group_size).");
  }
  // In 64 bits before anything divides by K or sizes a buffer with it: a
  // hand-built shape can make it overflow int (to 0, or negative).
  const int64_t K64 = int64_t(scales.shape(1)) * spec.group_size;
  check_weight_size(N, K64, tag);
  const int K = int(K64);
  int words = spec.packed_words_per_row(K);
  if (packed.shape(1) != words) {
    throw_invalid(
        tag, "The packed ", fmt, " weight has shape ", shape_str(packed), " but scales ",
        shape_str(scales), " with group_size=", spec.group_size, " mean K=", K, ", which needs ",
        words, " uint32 words per row.");
  }
  if (biases) {
    if (spec.format != Format::Binary) {
      throw_invalid(tag, "biases apply only to the binary format, not to ", fmt, ".");
    }
    if (biases->shape() != scales.shape() || biases->dtype() != scales.dtype()) {
      throw_invalid(
          tag, "biases must match scales in shape and dtype: scales are ", scales.dtype(), " ",
          shape_str(scales), ", biases ", biases->dtype(), " ", shape_str(*biases), ".");
    }
  }
  if (spec.format == Format::Codebook) {
    if (!codebook) {
      throw_invalid(tag, "The codebook format needs its codebook array.");
    }
    if (codebook->ndim() != 1 || codebook->size() != size_t(spec.codebook_size()) ||
        codebook->dtype() != spec.codebook_dtype()) {
      throw_invalid(
          tag, "The codebook must be a 1-D ", spec.codebook_dtype(), " array of 2^",
          spec.index_bits, " = ", spec.codebook_size(),
          " patterns for vector_size=", spec.vector_size, ", got ", codebook->dtype(),
          " with shape ", shape_str(*codebook), ".");
    }
  } else if (codebook) {
    throw_invalid(tag, "A codebook applies only to the codebook format, not to ", fmt, ".");
  }
  return K;
}

} // namespace mlx_lowbit
