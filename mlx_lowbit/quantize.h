// Copyright © 2026 mlx-lowbit contributors.
//
// Round-to-nearest reference quantizers and the packers they share. These
// run eagerly on the CPU (they evaluate w) and return evaluated arrays.
#pragma once

#include <cstdint>
#include <optional>

#include "mlx/array.h"
#include "mlx_lowbit/format_spec.h"

namespace mlx_lowbit {

struct QuantizedArrays {
  mx::array packed;
  mx::array scales;
  std::optional<mx::array> biases;
  std::optional<mx::array> codebook;
};

// Per group: t = clamp(round(w / mean|w|), -1, 1) (BitNet b1.58's absmean
// rule), then the least-squares scale for that t.
QuantizedArrays quantize_ternary(const mx::array& w, int group_size, mx::Dtype scale_dtype);

// Per group: s = sign(w) and scale = mean|w| (the least-squares scale); with
// bias, a two-level fit w ~ scale * s + bias by 1-D Lloyd iterations.
QuantizedArrays
quantize_binary(const mx::array& w, int group_size, bool bias, mx::Dtype scale_dtype);

// Sign patterns of v consecutive weights clustered into 2^c centroids
// (Hamming distance, majority-sign update), then least-squares scales.
QuantizedArrays quantize_codebook(
    const mx::array& w,
    int group_size,
    int vector_size,
    int index_bits,
    uint64_t seed,
    int max_iters,
    mx::Dtype scale_dtype);

// Packers from unpacked values; the quantizers use the same code.
mx::array pack_ternary(const mx::array& t); // int8 in {-1, 0, 1}, (N, K)
mx::array pack_binary(const mx::array& bits); // uint8 or bool 0/1, (N, K)
mx::array pack_codebook(const mx::array& indices, int vector_size, int index_bits); // (N, K / v)

} // namespace mlx_lowbit
