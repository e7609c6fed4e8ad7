// Copyright © 2026 mlx-lowbit contributors.
//
// Round-to-nearest reference quantizers (docs/FORMATS.md, "Reference
// quantizers") and the packers they share.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mlx/array.h"
#include "mlx_lowbit/format_spec.h"

namespace mlx_lowbit {

struct QuantizeOptions {
  FormatSpec spec;
  bool biases = false; // binary only: fit w ~ scale * s + bias
  mx::Dtype scale_dtype = mx::float16;
  uint64_t seed = 0;  // codebook only
  int max_iters = 30; // codebook only: Lloyd iterations

  bool operator==(const QuantizeOptions&) const = default;
};

// The quantizer as a lazy op on the CPU stream: packed, scales, then biases
// (binary with bias) or the codebook. Shapes, dtypes and options are checked
// now; NaN / Inf in w are reported when the outputs are evaluated. Lazy like
// mx.quantize, so arrays that are replaced before use (mlx-lm builds a
// model's layers, then loads their weights) cost nothing.
std::vector<mx::array> lowbit_quantize(const mx::array& w, const QuantizeOptions& opts);

// The same, evaluated now, with NaN / Inf reported now.
std::vector<mx::array> quantize_now(const mx::array& w, const QuantizeOptions& opts);

// Runs the quantizer on a row-major float32 (N, K) weight into the outputs
// of lowbit_quantize, allocated by the caller (LowBitQuantize::eval_cpu,
// quantize_now). Defined by the CPU backend (backend/cpu/quantize.cpp), like
// the row packers below, so that the core includes no backend header.
void quantize_into(
    const float* w, int N, int K, const QuantizeOptions& opts, std::vector<mx::array>& outputs);

// N rows of unpacked values, row-major, into N rows of packed words, over
// the CPU workers (backend/cpu/quantize.cpp; the quantizers pack with the
// same row code). The inputs are already checked.
void pack_ternary_rows(const int8_t* t, int N, int K, uint32_t* dst);
void pack_binary_rows(const uint8_t* bits, int N, int K, uint32_t* dst);
void pack_codebook_rows(const uint32_t* idx, int N, int runs, int c, int words, uint32_t* dst);

// Packers from unpacked values; the quantizers use the same code.
mx::array pack_ternary(const mx::array& t);   // int8 in {-1, 0, 1}, (N, K)
mx::array pack_binary(const mx::array& bits); // uint8 or bool 0/1, (N, K)
mx::array pack_codebook(const mx::array& indices, int vector_size, int index_bits); // (N, K / v)

} // namespace mlx_lowbit
