// Copyright © 2026 mlx-lowbit contributors.
//
// Host-side description of a quantized weight: which format, its options, and
// the checks that its arrays agree with them. The byte layout itself lives in
// formats/*.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mlx/array.h"
#include "mlx_lowbit/formats.h"

namespace mlx_lowbit {

namespace mx = mlx::core;
using lowbit::Format;

struct FormatSpec {
  Format format = Format::Ternary;
  int group_size = 128;
  int vector_size = 0; // codebook only: weights per index (8 or 16)
  int index_bits = 0;  // codebook only: bits per index (4 .. min(16, v))

  bool operator==(const FormatSpec&) const = default;

  // uint32 words per row of the packed array for a reduction length K.
  int packed_words_per_row(int K) const;
  int codebook_size() const {
    return 1 << index_bits;
  }
  mx::Dtype codebook_dtype() const {
    return vector_size == 8 ? mx::uint8 : mx::uint16;
  }
};

Format parse_format(std::string_view name, std::string_view tag);
const char* format_name(Format format);
// Every supported format's name, in a fixed order.
std::vector<std::string> format_names();

// Checks that a (N, K) weight fits the kernels' 32-bit offsets, in 64 bits
// (before anything divides by K or allocates with it).
void check_weight_size(int64_t N, int64_t K, std::string_view tag);

// Checks the options of `spec` (group size, vector size, index bits) on
// their own, before any array is looked at.
void validate_spec(const FormatSpec& spec, std::string_view tag);

// A spec from the names and numbers the Python API takes, checked.
FormatSpec make_format_spec(
    std::string_view format, int group_size, int vector_size, int index_bits, std::string_view tag);

// Checks that the arrays of a quantized weight agree with `spec` and with
// each other, and returns K. Throws std::invalid_argument naming the problem.
int validate_weight(
    const FormatSpec& spec,
    const mx::array& packed,
    const mx::array& scales,
    const std::optional<mx::array>& biases,
    const std::optional<mx::array>& codebook,
    std::string_view tag);

} // namespace mlx_lowbit
