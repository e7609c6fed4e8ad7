// Copyright © 2026 mlx-lowbit contributors.
//
// A standalone check of one SIMD kernel table (kernel_abi.h) against a
// float64 product of weights decoded with the format headers, without
// Python or MLX. It lets the NEON kernels run under qemu-user on an x86
// machine (tests/test_cpu_kernels.py builds and runs it where an aarch64
// cross compiler and qemu are installed). Prints "N passed, M failed".
//
//   harness <neon|avx2|avx512>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mlx_lowbit/backend/cpu/activation_quant.h"
#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

using namespace mlx_lowbit::cpu;
namespace tern = lowbit::ternary;
namespace bin = lowbit::binary;
namespace cbk = lowbit::codebook;

namespace {

std::mt19937 rng(7);

struct Case {
  int format, N, K, gs, v = 0, c = 0;
  bool bias = false, f16 = false;
};

struct Weight {
  std::vector<uint32_t> packed;
  std::vector<float> s32, b32;
  std::vector<uint16_t> s16, b16;
  std::vector<uint8_t> cb8;
  std::vector<uint16_t> cb16;
  std::vector<double> dense; // (N, K)
  PackedWeight view;
};

// fp16 bits of 1 + j / 1024 (exactly representable), and its value.
uint16_t half_bits(int j) {
  return uint16_t(0x3C00 + j);
}
double half_value(int j) {
  return 1.0 + j / 1024.0;
}

Weight make(const Case& c) {
  Weight w;
  const int G = c.K / c.gs;
  int wpr = c.format == 0   ? tern::words_per_row(c.K)
            : c.format == 1 ? bin::words_per_row(c.K)
                            : cbk::index_words_per_row(c.K, c.v, c.c);
  w.packed.assign(size_t(c.N) * wpr, 0);
  std::vector<double> scale(size_t(c.N) * G), bias(size_t(c.N) * G, 0.0);
  std::uniform_int_distribution<int> sj(0, 1023);
  for (size_t i = 0; i < scale.size(); ++i) {
    int j = sj(rng), jb = sj(rng);
    scale[i] = half_value(j);
    w.s16.push_back(half_bits(j));
    w.s32.push_back(float(scale[i]));
    if (c.bias) {
      bias[i] = half_value(jb) - 1.5;
      // fp16 of (1 + jb/1024) - 1.5 is not a simple pattern: store f32 only.
      w.b32.push_back(float(bias[i]));
    }
  }
  if (c.format == 2) {
    const int n = 1 << c.c;
    std::vector<uint32_t> all(1u << c.v);
    for (uint32_t i = 0; i < all.size(); ++i) {
      all[i] = i;
    }
    std::shuffle(all.begin(), all.end(), rng);
    for (int i = 0; i < n; ++i) {
      if (c.v == 8) {
        w.cb8.push_back(uint8_t(all[i]));
      } else {
        w.cb16.push_back(uint16_t(all[i]));
      }
    }
  }
  w.dense.assign(size_t(c.N) * c.K, 0.0);
  for (int n = 0; n < c.N; ++n) {
    uint32_t* row = w.packed.data() + size_t(n) * wpr;
    for (int k = 0; k < c.K; ++k) {
      double sign = 0;
      if (c.format == 0) {
        int t = int(rng() % 3) - 1;
        row[k / tern::kPerWord] |= tern::code_of(t) << (tern::kBits * (k % tern::kPerWord));
        sign = t;
      } else if (c.format == 1) {
        uint32_t b = rng() & 1u;
        row[k / bin::kPerWord] |= b << (k % bin::kPerWord);
        sign = bin::sign_of(b);
      }
      w.dense[size_t(n) * c.K + k] = sign;
    }
    if (c.format == 2) {
      for (int j = 0; j < cbk::runs_per_row(c.K, c.v); ++j) {
        uint32_t idx = rng() % (1u << c.c);
        int bit = j * c.c;
        uint64_t both = uint64_t(idx) << (bit % 32);
        row[bit / 32] |= uint32_t(both);
        if (both >> 32) {
          row[bit / 32 + 1] |= uint32_t(both >> 32);
        }
      }
      for (int j = 0; j < cbk::runs_per_row(c.K, c.v); ++j) {
        int word = cbk::first_word_of(j, c.c);
        uint32_t hi = word + 1 < wpr ? row[word + 1] : 0u;
        uint32_t idx = cbk::index_from_words(row[word], hi, j, c.c);
        uint32_t pattern = c.v == 8 ? w.cb8[idx] : w.cb16[idx];
        for (int i = 0; i < c.v; ++i) {
          w.dense[size_t(n) * c.K + j * c.v + i] = cbk::pattern_bit(pattern, i) ? 1.0 : -1.0;
        }
      }
    }
    for (int k = 0; k < c.K; ++k) {
      size_t g = size_t(n) * G + k / c.gs;
      w.dense[size_t(n) * c.K + k] = w.dense[size_t(n) * c.K + k] * scale[g] + bias[g];
    }
  }
  bool f16 = c.f16 && !c.bias;
  w.view = PackedWeight{
      c.format,
      c.N,
      c.K,
      c.gs,
      c.v,
      c.c,
      wpr,
      w.packed.data(),
      f16 ? static_cast<const void*>(w.s16.data()) : w.s32.data(),
      c.bias ? w.b32.data() : nullptr,
      c.format != 2 ? nullptr
      : c.v == 8    ? static_cast<const void*>(w.cb8.data())
                    : w.cb16.data(),
      !f16};
  return w;
}

// Two chunks, like a two-thread pool, so work splitting is exercised.
void two_chunks(int n, void (*body)(void*, int, int), void* ctx) {
  body(ctx, 0, n / 2);
  body(ctx, n / 2, n);
}

int passed = 0, failed = 0;

void check(
    const char* what,
    const Case& c,
    int M,
    const std::vector<float>& out,
    const std::vector<double>& ref) {
  double amax = 1e-30, err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    amax = std::max(amax, std::fabs(ref[i]));
    err = std::max(err, std::fabs(out[i] - ref[i]));
  }
  if (err / amax <= 2e-5) {
    ++passed;
  } else {
    ++failed;
    std::printf(
        "FAIL %s format=%d N=%d K=%d gs=%d v=%d c=%d bias=%d f16=%d M=%d: rel err %.3g\n", what,
        c.format, c.N, c.K, c.gs, c.v, c.c, int(c.bias), int(c.f16), M, err / amax);
  }
}

// The avx512 table's table-lookup GEMV, where this CPU can run it.
const LutKernels* lut = nullptr;

void run(const KernelTable& t, const Case& c, int M) {
  Weight w = make(c);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(M) * c.K), xt(size_t(M) * c.N);
  for (auto& v : x)
    v = nd(rng);
  for (auto& v : xt)
    v = nd(rng);
  std::vector<int8_t> xq(x.size());
  std::vector<float> xscale(M);
  for (int m = 0; m < M; ++m) {
    xscale[m] = 0.01f * float(1 + m % 5);
    for (int k = 0; k < c.K; ++k) {
      xq[size_t(m) * c.K + k] = int8_t(int(rng() % 255) - 127);
    }
  }
  MatmulArgs a{};
  a.w = w.view;
  a.M = M;
  a.parallel = &two_chunks;
  std::vector<float> out(size_t(M) * c.N);
  std::vector<double> ref(out.size());
  // x @ W.T, float
  a.x = x.data();
  a.out = out.data();
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double s = 0;
      for (int k = 0; k < c.K; ++k)
        s += double(x[size_t(m) * c.K + k]) * w.dense[size_t(n) * c.K + k];
      ref[size_t(m) * c.N + n] = s;
    }
  t.matmul_nt(a);
  check("nt", c, M, out, ref);
  if (lut && c.format < 2 && c.gs % 32 == 0) {
    // The float-x nibble-lookup GEMV over its repacked copy, all rows at once.
    std::vector<uint32_t> idx(lut_nibble_words(c.N, c.K, c.format));
    std::vector<float> sc(lut_nibble_scale_count(c.N, c.K, c.gs)), bi(c.bias ? sc.size() : 0);
    lut->repack_nibbles(w.view, idx.data(), sc.data(), c.bias ? bi.data() : nullptr);
    const LutNibbleWeight tw{
        c.format, c.N, c.K, c.gs, idx.data(), sc.data(), c.bias ? bi.data() : nullptr};
    std::fill(out.begin(), out.end(), -1.0f);
    lut->gemv_nibbles(tw, x.data(), M, out.data(), &two_chunks);
    check("nt_nibbles", c, M, out, ref);
  }
  // int8
  a.xq = xq.data();
  a.xscale = xscale.data();
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < c.N; ++n) {
      double s = 0;
      for (int k = 0; k < c.K; ++k)
        s += double(xq[size_t(m) * c.K + k]) * w.dense[size_t(n) * c.K + k];
      ref[size_t(m) * c.N + n] = s * xscale[m];
    }
  t.matmul_nt_int8(a);
  check("nt_int8", c, M, out, ref);
  if (lut && c.format < 2 && c.gs % lut_weights_per_byte(c.format) == 0 && c.gs <= kLutMaxGroup) {
    // The table-lookup GEMV, one row of x at a time, over its repacked copy.
    std::vector<uint8_t> idx(lut_index_bytes(c.N, c.K, c.format));
    std::vector<float> sc(lut_scale_count(c.N, c.K, c.gs)), bi(c.bias ? sc.size() : 0);
    lut->repack(w.view, idx.data(), sc.data(), c.bias ? bi.data() : nullptr);
    const LutWeight tl{
        c.format, c.N, c.K, c.gs, idx.data(), sc.data(), c.bias ? bi.data() : nullptr};
    std::fill(out.begin(), out.end(), -1.0f);
    for (int m = 0; m < M; ++m)
      lut->gemv(
          tl, xq.data() + size_t(m) * c.K, xscale[m], out.data() + size_t(m) * c.N, &two_chunks);
    check("nt_int8_lut", c, M, out, ref);
  }
  // x @ W
  std::vector<float> out_nn(size_t(M) * c.K);
  std::vector<double> ref_nn(out_nn.size());
  a.x = xt.data();
  a.out = out_nn.data();
  for (int m = 0; m < M; ++m)
    for (int k = 0; k < c.K; ++k) {
      double s = 0;
      for (int n = 0; n < c.N; ++n)
        s += double(xt[size_t(m) * c.N + n]) * w.dense[size_t(n) * c.K + k];
      ref_nn[size_t(m) * c.K + k] = s;
    }
  t.matmul_nn(a);
  check("nn", c, M, out_nn, ref_nn);
}

void check_halves(const KernelTable& t) {
  std::vector<uint16_t> h = {0x0000, 0x3C00, 0xC000, 0x3555, 0x7BFF,
                             0x0001, 0x8400, 0x4248, 0x3C01};
  std::vector<float> f(h.size());
  t.half_to_float(h.data(), Half16::Float16, f.data(), h.size());
  const float want[] = {0.0f,         1.0f,           -2.0f,           0.333251953125f,
                        65504.0f,     5.9604645e-08f, -6.1035156e-05f, 3.140625f,
                        1.0009765625f};
  std::vector<uint16_t> back(h.size());
  t.float_to_half(f.data(), Half16::Float16, back.data(), f.size());
  bool ok = back == h;
  for (size_t i = 0; i < h.size(); ++i)
    ok = ok && f[i] == want[i];
  std::vector<uint16_t> bf = {0x3F80, 0xC040, 0x0000};
  std::vector<float> bff(3);
  t.half_to_float(bf.data(), Half16::BFloat16, bff.data(), 3);
  ok = ok && bff[0] == 1.0f && bff[1] == -3.0f && bff[2] == 0.0f;
  float r[] = {1.00390625f, 1.01171875f}; // ties: to even (1.0) and up (1.015625)
  uint16_t rb[2];
  t.float_to_half(r, Half16::BFloat16, rb, 2);
  ok = ok && rb[0] == 0x3F80 && rb[1] == 0x3F82;
  ok ? ++passed : ++failed;
  if (!ok)
    std::printf("FAIL half conversions\n");
}

// The table's int8 rounding against activation_quant.h's, bit for bit: ties
// (x * 127 / amax = n + 0.5 exactly), negative zeros, all-zero rows, and
// row lengths around the vector width.
void check_int8_rounding(const KernelTable& t) {
  bool ok = true;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int K : {1, 3, 4, 15, 16, 17, 33, 64, 100, 4096}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> x(K);
      for (int k = 0; k < K; ++k) {
        // kind 1: amax 127, so x * inv = x: halves are exact ties.
        x[k] = kind == 0 ? nd(rng) : kind == 1 ? float(int(rng() % 254) - 127) + 0.5f : -0.0f;
      }
      if (kind == 1) {
        x[rng() % K] = 127.0f;
      }
      std::vector<int8_t> q1(K), q2(K, 99);
      const float s1 = quantize_row_int8(x.data(), K, q1.data());
      const float s2 = t.quantize_int8(x.data(), K, q2.data());
      ok = ok && s1 == s2 && q1 == q2;
    }
  }
  ok ? ++passed : ++failed;
  if (!ok)
    std::printf("FAIL int8 rounding\n");
}

} // namespace

int main(int argc, char** argv) {
  std::string name = argc > 1 ? argv[1] : "";
  const KernelTable* t = nullptr;
#if defined(__aarch64__)
  if (name == "neon")
    t = neon_kernels();
#else
  if (name == "avx2")
    t = avx2_kernels();
  if (name == "avx512")
    t = avx512_kernels();
  if (name == "avx512" && __builtin_cpu_supports("avx512vbmi"))
    lut = avx512_lut_kernels();
#endif
  if (!t) {
    std::printf("usage: harness <neon|avx2|avx512> (for this architecture)\n");
    return 2;
  }
  check_halves(*t);
  check_int8_rounding(*t);
  const int Ms[] = {1, 2, 3, 4, 5, 9, 13, 25};
  std::vector<Case> cases;
  for (int f = 0; f < 3; ++f) {
    const int shapes[][3] = {{1, 64, 64},     {7, 192, 32},    {33, 192, 64}, {9, 1152, 384},
                             {20, 1152, 128}, {130, 512, 256}, {65, 256, 32}};
    for (const auto& shape : shapes) {
      const int N = shape[0], K = shape[1], gs = shape[2];
      if (f == 2) {
        cases.push_back({f, N, K, gs, 16, 12});
        cases.push_back({f, N, K, gs, 8, 5, false, true});
      } else {
        cases.push_back({f, N, K, gs, 0, 0, false, true});
        cases.push_back({f, N, K, gs, 0, 0, f == 1});
      }
    }
  }
  for (const Case& c : cases)
    for (int M : Ms)
      run(*t, c, M);
  // Codebook field widths (c for v = 16, 2c for v = 8): whole-byte field
  // pairs (8, 12, 16 bits) and the general kernel; row streams that end
  // mid-word, the last row after a block of 8 or 4 rows, one word per row.
  const int vc[][2] = {{16, 4},  {16, 5}, {16, 8}, {16, 11}, {16, 13},
                       {16, 16}, {8, 4},  {8, 5},  {8, 7},   {8, 8}};
  const int cb_shapes[][3] = {{13, 256, 256}, {9, 192, 64}, {3, 32, 32}};
  for (const auto& p : vc)
    for (const auto& shape : cb_shapes)
      for (int M : {1, 2, 4, 5})
        run(*t, {2, shape[0], shape[1], shape[2], p[0], p[1], false, true}, M);
  std::printf("%s: %d passed, %d failed\n", t->name, passed, failed);
  return failed ? 1 : 0;
}
