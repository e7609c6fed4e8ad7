// Copyright © 2026 mlx-lowbit contributors.
//
// The CPU side of quantization: the reference quantizers (docs/FORMATS.md,
// "Reference quantizers") and the row packers, run over the CPU workers, and
// eval_cpu for LowBitQuantize. They live in the backend so that the core
// (mlx_lowbit/quantize.cpp: checks, shapes, the lazy op) needs no backend
// header: the backend includes the core, never the other way round.

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/types/half_types.h"
#include "mlx_lowbit/backend/cpu/thread_pool.h"
#include "mlx_lowbit/codebook_cluster.h"
#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/primitives.h"
#include "mlx_lowbit/quantize.h"

namespace mlx_lowbit {

namespace {

using cpu::parallel_for;

void check_finite(const float* p, size_t n, int K, std::string_view tag) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) {
      throw_invalid(
          tag, "The weight contains ", std::isnan(p[i]) ? "NaN" : "Inf", " (first at row ", i / K,
          ", column ", i % K, ").");
    }
  }
}

// Writes per-group floats into an fp16 or fp32 array, refusing values fp16
// cannot hold rather than storing Inf.
struct ScaleWriter {
  void* data;
  bool f32;
  explicit ScaleWriter(mx::array& a) : data(a.data<void>()), f32(a.dtype() == mx::float32) {}
  void set(size_t i, float value, std::string_view tag) const {
    if (f32) {
      static_cast<float*>(data)[i] = value;
      return;
    }
    if (std::fabs(value) > 65504.0f) {
      throw_invalid(
          tag, "A scale or bias of ", value, " does not fit in float16; pass scale_dtype=float32.");
    }
    static_cast<mx::float16_t*>(data)[i] = static_cast<mx::float16_t>(value);
  }
};

void pack_ternary_row(const int8_t* t, int K, uint32_t* dst) {
  namespace tf = lowbit::ternary;
  for (int w = 0; w < tf::words_per_row(K); ++w) {
    uint32_t word = 0;
    for (int i = 0; i < tf::kPerWord; ++i) {
      word |= tf::code_of(t[w * tf::kPerWord + i]) << (tf::kBits * i);
    }
    dst[w] = word;
  }
}

void pack_binary_row(const uint8_t* bits, int K, uint32_t* dst) {
  namespace bf = lowbit::binary;
  for (int w = 0; w < bf::words_per_row(K); ++w) {
    uint32_t word = 0;
    for (int i = 0; i < bf::kPerWord; ++i) {
      word |= uint32_t(bits[w * bf::kPerWord + i] & 1u) << i;
    }
    dst[w] = word;
  }
}

void pack_codebook_row(const uint32_t* idx, int runs, int c, int words, uint32_t* dst) {
  std::fill(dst, dst + words, 0u);
  for (int j = 0; j < runs; ++j) {
    // The inverse of codebook::index_from_words: bits [j*c, j*c + c).
    uint64_t bits = uint64_t(idx[j]) << ((j * c) % lowbit::kWordBits);
    int w = lowbit::codebook::first_word_of(j, c);
    dst[w] |= uint32_t(bits);
    if (bits >> 32) {
      dst[w + 1] |= uint32_t(bits >> 32);
    }
  }
}

void quantize_ternary(
    const float* wp, int N, int K, int gs, mx::array& packed, const ScaleWriter& scales) {
  constexpr std::string_view tag = "quantize";
  const int G = K / gs;
  parallel_for(N, [&](int n0, int n1) {
    std::vector<int8_t> t(K);
    for (int n = n0; n < n1; ++n) {
      const float* row = wp + size_t(n) * K;
      for (int g = 0; g < G; ++g) {
        const float* x = row + size_t(g) * gs;
        int8_t* tg = t.data() + size_t(g) * gs;
        double absmean = 0.0;
        for (int i = 0; i < gs; ++i) {
          absmean += std::fabs(x[i]);
        }
        absmean /= gs;
        double wt = 0.0, tt = 0.0;
        for (int i = 0; i < gs; ++i) {
          double q = absmean > 0.0 ? std::nearbyint(x[i] / absmean) : 0.0;
          tg[i] = int8_t(std::clamp(q, -1.0, 1.0));
          wt += double(x[i]) * tg[i];
          tt += tg[i] * tg[i];
        }
        scales.set(size_t(n) * G + g, tt > 0.0 ? float(wt / tt) : 0.0f, tag);
      }
      pack_ternary_row(
          t.data(), K, packed.data<uint32_t>() + size_t(n) * lowbit::ternary::words_per_row(K));
    }
  });
}

// biases: null for the symmetric variant.
void quantize_binary(
    const float* wp,
    int N,
    int K,
    int gs,
    mx::array& packed,
    const ScaleWriter& scales,
    const ScaleWriter* biases) {
  constexpr std::string_view tag = "quantize";
  const int G = K / gs;
  const bool with_bias = biases != nullptr;
  constexpr int kLloydIters = 8;
  parallel_for(N, [&](int n0, int n1) {
    std::vector<uint8_t> bits(K);
    for (int n = n0; n < n1; ++n) {
      const float* row = wp + size_t(n) * K;
      for (int g = 0; g < G; ++g) {
        const float* x = row + size_t(g) * gs;
        uint8_t* bg = bits.data() + size_t(g) * gs;
        size_t at = size_t(n) * G + g;
        if (!with_bias) {
          double absmean = 0.0;
          for (int i = 0; i < gs; ++i) {
            bg[i] = x[i] >= 0.0f;
            absmean += std::fabs(x[i]);
          }
          scales.set(at, float(absmean / gs), tag);
          continue;
        }
        // Two levels bias +- scale: threshold at the midpoint, refit the
        // two means, repeat until the split stops changing.
        double mean = 0.0;
        for (int i = 0; i < gs; ++i) {
          mean += x[i];
        }
        double threshold = mean / gs, scale = 0.0, bias = threshold;
        for (int it = 0; it < kLloydIters; ++it) {
          double hi = 0.0, lo = 0.0;
          int n_hi = 0;
          bool changed = false;
          for (int i = 0; i < gs; ++i) {
            uint8_t b = x[i] >= threshold;
            changed |= it == 0 || b != bg[i];
            bg[i] = b;
            (b ? hi : lo) += x[i];
            n_hi += b;
          }
          if (n_hi == 0 || n_hi == gs) {
            scale = 0.0; // a constant group: bias alone reproduces it
            bias = mean / gs;
            break;
          }
          hi /= n_hi;
          lo /= gs - n_hi;
          scale = (hi - lo) / 2.0;
          bias = (hi + lo) / 2.0;
          if (!changed) {
            break;
          }
          threshold = bias;
        }
        scales.set(at, float(scale), tag);
        biases->set(at, float(bias), tag);
      }
      pack_binary_row(
          bits.data(), K, packed.data<uint32_t>() + size_t(n) * lowbit::binary::words_per_row(K));
    }
  });
}

void quantize_codebook(
    const float* wp,
    int N,
    int K,
    const QuantizeOptions& o,
    mx::array& packed,
    const ScaleWriter& scales,
    mx::array& codebook) {
  constexpr std::string_view tag = "quantize";
  const FormatSpec& spec = o.spec;
  const int gs = spec.group_size, v = spec.vector_size, c = spec.index_bits;
  const int G = K / gs, runs = K / v;

  // Sign pattern of every run of v weights (bit i set: weight i >= 0).
  std::vector<uint32_t> patterns(size_t(N) * runs);
  parallel_for(N, [&](int n0, int n1) {
    for (size_t r = size_t(n0) * runs; r < size_t(n1) * runs; ++r) {
      const float* x = wp + r * v;
      uint32_t p = 0;
      for (int i = 0; i < v; ++i) {
        p |= uint32_t(x[i] >= 0.0f) << i;
      }
      patterns[r] = p;
    }
  });
  std::vector<uint64_t> hist(size_t(1) << v, 0);
  for (uint32_t p : patterns) {
    ++hist[p];
  }
  PatternClustering cl = cluster_patterns(hist, v, c, o.seed, o.max_iters);

  for (size_t i = 0; i < cl.centroids.size(); ++i) {
    if (v == 8) {
      codebook.data<uint8_t>()[i] = uint8_t(cl.centroids[i]);
    } else {
      codebook.data<uint16_t>()[i] = uint16_t(cl.centroids[i]);
    }
  }
  const int words = spec.packed_words_per_row(K);
  parallel_for(N, [&](int n0, int n1) {
    std::vector<uint32_t> idx(runs);
    for (int n = n0; n < n1; ++n) {
      const float* row = wp + size_t(n) * K;
      for (int j = 0; j < runs; ++j) {
        idx[j] = cl.nearest[patterns[size_t(n) * runs + j]];
      }
      // Least-squares scale for the chosen +-1 patterns: mean of w * p.
      for (int g = 0; g < G; ++g) {
        double acc = 0.0;
        for (int j = g * gs / v; j < (g + 1) * gs / v; ++j) {
          uint32_t pattern = cl.centroids[idx[j]];
          for (int i = 0; i < v; ++i) {
            acc += (lowbit::codebook::pattern_bit(pattern, i) ? 1.0 : -1.0) * row[j * v + i];
          }
        }
        scales.set(size_t(n) * G + g, float(acc / gs), tag);
      }
      pack_codebook_row(idx.data(), runs, c, words, packed.data<uint32_t>() + size_t(n) * words);
    }
  });
}

} // namespace

void quantize_into(
    const float* w, int N, int K, const QuantizeOptions& o, std::vector<mx::array>& out) {
  check_finite(w, size_t(N) * K, K, "quantize");
  ScaleWriter scales(out[1]);
  switch (o.spec.format) {
    case Format::Ternary:
      quantize_ternary(w, N, K, o.spec.group_size, out[0], scales);
      break;
    case Format::Binary: {
      std::optional<ScaleWriter> biases;
      if (o.biases) {
        biases.emplace(out[2]);
      }
      quantize_binary(w, N, K, o.spec.group_size, out[0], scales, biases ? &*biases : nullptr);
      break;
    }
    case Format::Codebook:
      quantize_codebook(w, N, K, o, out[0], scales, out[2]);
      break;
  }
}

void pack_ternary_rows(const int8_t* t, int N, int K, uint32_t* dst) {
  parallel_for(N, [&](int n0, int n1) {
    for (int n = n0; n < n1; ++n) {
      pack_ternary_row(t + size_t(n) * K, K, dst + size_t(n) * lowbit::ternary::words_per_row(K));
    }
  });
}

void pack_binary_rows(const uint8_t* bits, int N, int K, uint32_t* dst) {
  parallel_for(N, [&](int n0, int n1) {
    for (int n = n0; n < n1; ++n) {
      pack_binary_row(bits + size_t(n) * K, K, dst + size_t(n) * lowbit::binary::words_per_row(K));
    }
  });
}

void pack_codebook_rows(const uint32_t* idx, int N, int runs, int c, int words, uint32_t* dst) {
  parallel_for(N, [&](int n0, int n1) {
    for (int n = n0; n < n1; ++n) {
      pack_codebook_row(idx + size_t(n) * runs, runs, c, words, dst + size_t(n) * words);
    }
  });
}

void LowBitQuantize::eval_cpu(const std::vector<array>& inputs, std::vector<array>& outputs) {
  for (auto& o : outputs) {
    o.set_data(mx::allocator::malloc(o.nbytes()));
  }
  if (synchronous_) {
    // See the class comment: the weight's producers (and any fence) are
    // queued on this stream before us, so once it is idle the data is there.
    mx::synchronize(stream());
    try {
      quantize_into(
          inputs[0].data<float>(), inputs[0].shape(0), inputs[0].shape(1), options_, outputs);
    } catch (const std::exception& e) {
      // An evaluation error, as MLX reports its own (RuntimeError).
      throw std::runtime_error(e.what());
    }
    return;
  }
  auto& encoder = mx::cpu::get_command_encoder(stream());
  encoder.set_input_array(inputs[0]);
  std::vector<array> outs;
  for (auto& o : outputs) {
    encoder.set_output_array(o);
    outs.push_back(array::unsafe_weak_copy(o));
  }
  encoder.dispatch([w = array::unsafe_weak_copy(inputs[0]), outs = std::move(outs),
                    options = options_]() mutable {
    quantize_into(w.data<float>(), w.shape(0), w.shape(1), options, outs);
  });
}

} // namespace mlx_lowbit
