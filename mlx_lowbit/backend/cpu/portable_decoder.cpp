// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/backend/cpu/portable_decoder.h"

#include "mlx/types/half_types.h"

namespace mlx_lowbit::cpu {

namespace mx = mlx::core;

namespace {

inline float load_scale(const void* p, bool f32, size_t i) {
  return f32 ? static_cast<const float*>(p)[i]
             : static_cast<float>(static_cast<const mx::float16_t*>(p)[i]);
}

} // namespace

float WeightView::scale(int n, int g) const {
  return load_scale(scales, scales_f32, size_t(n) * groups() + g);
}

float WeightView::bias(int n, int g) const {
  return biases ? load_scale(biases, scales_f32, size_t(n) * groups() + g) : 0.0f;
}

void WeightView::decode_signs(int n, int k0, int len, float* dst) const {
  const uint32_t* row = packed + size_t(n) * words_per_row;
  switch (spec.format) {
    case Format::Ternary: {
      namespace t = lowbit::ternary;
      for (int w = k0 / t::kPerWord; w < (k0 + len) / t::kPerWord; ++w) {
        uint32_t word = row[w];
        for (int i = 0; i < t::kPerWord; ++i) {
          *dst++ = float(t::value_of(t::code_at(word, i)));
        }
      }
      break;
    }
    case Format::Binary: {
      namespace b = lowbit::binary;
      for (int w = k0 / b::kPerWord; w < (k0 + len) / b::kPerWord; ++w) {
        uint32_t word = row[w];
        for (int i = 0; i < b::kPerWord; ++i) {
          *dst++ = float(b::sign_of(b::bit_at(word, i)));
        }
      }
      break;
    }
    case Format::Codebook: {
      namespace c = lowbit::codebook;
      int v = spec.vector_size, bits = spec.index_bits;
      for (int j = k0 / v; j < (k0 + len) / v; ++j) {
        int w = c::first_word_of(j, bits);
        uint32_t hi = w + 1 < words_per_row ? row[w + 1] : 0u;
        uint32_t idx = c::index_from_words(row[w], hi, j, bits);
        uint32_t pattern = v == 8 ? static_cast<const uint8_t*>(codebook)[idx]
                                  : static_cast<const uint16_t*>(codebook)[idx];
        for (int i = 0; i < v; ++i) {
          *dst++ = c::pattern_bit(pattern, i) ? 1.0f : -1.0f;
        }
      }
      break;
    }
  }
}

WeightView make_view(const FormatSpec& spec, bool has_bias, const std::vector<mx::array>& in) {
  WeightView w;
  w.spec = spec;
  const mx::array& packed = in[0];
  const mx::array& scales = in[1];
  w.N = packed.shape(0);
  w.K = scales.shape(1) * spec.group_size;
  w.words_per_row = packed.shape(1);
  w.packed = packed.data<uint32_t>();
  w.scales = scales.data<void>();
  w.scales_f32 = scales.dtype() == mx::float32;
  size_t next = 2;
  if (has_bias) {
    w.biases = in[next++].data<void>();
  }
  if (spec.format == Format::Codebook) {
    w.codebook = in[next++].data<void>();
  }
  return w;
}

} // namespace mlx_lowbit::cpu
