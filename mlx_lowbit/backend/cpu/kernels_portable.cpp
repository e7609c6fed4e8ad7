// Copyright © 2026 mlx-lowbit contributors.
//
// The portable kernels (any CPU, plain C++): decode a group of weights to
// floats once, then reuse it for every row of x. Scales and biases are applied per group, not per weight:
//   sum_k (s * t_k + b) x_k = s * sum_k t_k x_k + b * sum_k x_k.

#include <algorithm>
#include <vector>

#include "mlx_lowbit/backend/cpu/kernels.h"
#include "mlx_lowbit/backend/cpu/thread_pool.h"

namespace mlx_lowbit::cpu {

namespace {

// Rows of w decoded together, so one pass over x[m, group] serves them all.
constexpr int kRowBlock = 4;

inline float dot(const float* a, const float* b, int n) {
  float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
  for (int i = 0; i < n; ++i) {
    acc += a[i] * b[i];
  }
  return acc;
}

inline void axpy(float alpha, const float* x, float* y, int n) {
#pragma omp simd
  for (int i = 0; i < n; ++i) {
    y[i] += alpha * x[i];
  }
}

// Sum of x[m, group g] for every (m, g): the bias term's second factor.
std::vector<float> group_sums(const float* x, int M, int K, int gs) {
  int G = K / gs;
  std::vector<float> sums(size_t(M) * G);
  parallel_for(M, [&](int m0, int m1) {
    std::vector<float> ones(gs, 1.0f);
    for (int m = m0; m < m1; ++m) {
      for (int g = 0; g < G; ++g) {
        sums[size_t(m) * G + g] = dot(x + size_t(m) * K + size_t(g) * gs, ones.data(), gs);
      }
    }
  });
  return sums;
}

// The format's decode unit: the smallest run decode_signs accepts.
int decode_unit(const FormatSpec& spec) {
  switch (spec.format) {
    case Format::Ternary:
      return lowbit::ternary::kPerWord;
    case Format::Binary:
      return lowbit::binary::kPerWord;
    case Format::Codebook:
      return spec.vector_size;
  }
  return lowbit::kKMultiple;
}

} // namespace

void matmul_nt(const WeightView& w, const float* x, int M, float* out) {
  const int N = w.N, K = w.K, gs = w.spec.group_size, G = w.groups();
  std::vector<float> xsum;
  if (w.biases) {
    xsum = group_sums(x, M, K, gs);
  }
  int blocks = (N + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, [&](int b0, int b1) {
    std::vector<float> wdec(size_t(kRowBlock) * gs);
    std::vector<float> acc(size_t(kRowBlock) * M);
    for (int b = b0; b < b1; ++b) {
      int n0 = b * kRowBlock, rows = std::min(kRowBlock, N - n0);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int g = 0; g < G; ++g) {
        float scale[kRowBlock], bias[kRowBlock];
        for (int r = 0; r < rows; ++r) {
          w.decode_signs(n0 + r, g * gs, gs, &wdec[size_t(r) * gs]);
          scale[r] = w.scale(n0 + r, g);
          bias[r] = w.bias(n0 + r, g);
        }
        for (int m = 0; m < M; ++m) {
          const float* xs = x + size_t(m) * K + size_t(g) * gs;
          float xg = w.biases ? xsum[size_t(m) * G + g] : 0.0f;
          for (int r = 0; r < rows; ++r) {
            acc[size_t(r) * M + m] += scale[r] * dot(&wdec[size_t(r) * gs], xs, gs) + bias[r] * xg;
          }
        }
      }
      for (int r = 0; r < rows; ++r) {
        for (int m = 0; m < M; ++m) {
          out[size_t(m) * N + n0 + r] = acc[size_t(r) * M + m];
        }
      }
    }
  });
}

void dequantize_row(const WeightView& w, int n, float* dst) {
  const int gs = w.spec.group_size;
  w.decode_signs(n, 0, w.K, dst);
  for (int g = 0; g < w.groups(); ++g) {
    float s = w.scale(n, g), b = w.bias(n, g);
    float* d = dst + size_t(g) * gs;
    for (int i = 0; i < gs; ++i) {
      d[i] = s * d[i] + b;
    }
  }
}

void matmul_nn(const WeightView& w, const float* x, int M, float* out) {
  const int N = w.N, K = w.K, gs = w.spec.group_size;
  // Each worker owns a stretch of output columns [k0, k1), so no two write
  // the same element; stretches are whole decode units.
  const int unit = decode_unit(w.spec);
  parallel_for(K / unit, [&](int u0, int u1) {
    int k0 = u0 * unit, len = (u1 - u0) * unit;
    std::vector<float> wrow(len), acc(size_t(M) * len, 0.0f);
    for (int n = 0; n < N; ++n) {
      w.decode_signs(n, k0, len, wrow.data());
      for (int k = k0; k < k0 + len;) {
        int g = k / gs, end = std::min(k0 + len, (g + 1) * gs);
        float s = w.scale(n, g), b = w.bias(n, g);
        for (; k < end; ++k) {
          wrow[k - k0] = s * wrow[k - k0] + b;
        }
      }
      for (int m = 0; m < M; ++m) {
        axpy(x[size_t(m) * N + n], wrow.data(), &acc[size_t(m) * len], len);
      }
    }
    for (int m = 0; m < M; ++m) {
      std::copy_n(&acc[size_t(m) * len], len, out + size_t(m) * K + k0);
    }
  });
}

} // namespace mlx_lowbit::cpu
