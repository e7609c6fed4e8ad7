// Copyright © 2026 mlx-lowbit contributors.
//
// Times one CPU kernel table (kernel_abi.h) on its own, without Python or
// MLX, on one thread: the kernel's share of an `lb.matmul` call, for
// profiling (docs/CPU_KERNELS.md, "What bounds each M"). Weights are random
// codes with float16 scales of 1 and group 128; the figure is the best and
// the median of 7 runs of `reps` products each, plus the bytes of the weight
// read per second at the best.
//
//   c++ -std=c++20 -O2 -I. -mavx2 -mfma -mf16c -mbmi2 -mavx512f -mavx512bw \
//     -mavx512vl -mavx512dq -mavx512vnni tools/cpu_kernel_timer.cpp \
//     mlx_lowbit/backend/cpu/kernels_avx2.cpp mlx_lowbit/backend/cpu/kernels_avx512.cpp \
//     -o /tmp/cpu_kernel_timer
//   /tmp/cpu_kernel_timer avx512 ternary 1 int8 [reps N K]
//
// `lut` in place of the ISA times the table-lookup GEMVs (ternary or binary;
// int8: one call per row of x as the backend makes them; float: the nibble
// lookup, all rows in one call), the weight repacked once outside the
// timing; add kernels_avx512_lut.cpp and -mavx512vbmi.
//
// Only run it on a CPU that has the table's ISA (isa.cpp is not linked in).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"
#include "mlx_lowbit/formats.h"

using namespace mlx_lowbit::cpu;

namespace {

void serial(int n, void (*body)(void*, int, int), void* ctx) {
  body(ctx, 0, n);
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(
        stderr, "usage: %s avx2|avx512 ternary|binary|codebook M int8|float [reps N K]\n", argv[0]);
    return 2;
  }
  const std::string isa = argv[1], name = argv[2];
  const int M = std::atoi(argv[3]);
  const bool int8 = std::string(argv[4]) == "int8";
  const int reps = argc > 5 ? std::atoi(argv[5]) : 100;
  const int N = argc > 6 ? std::atoi(argv[6]) : 4096, K = argc > 7 ? std::atoi(argv[7]) : 4096;
  const int gs = 128, v = 16, c = 12, G = K / gs;
  const int fmt = name == "ternary" ? 0 : name == "binary" ? 1 : 2;
  const bool lut = isa == "lut";
  const KernelTable* t = isa == "avx2" ? avx2_kernels() : avx512_kernels();

  std::mt19937 rng(1);
  const int wpr = fmt == 0   ? lowbit::ternary::words_per_row(K)
                  : fmt == 1 ? lowbit::binary::words_per_row(K)
                             : lowbit::codebook::index_words_per_row(K, v, c);
  std::vector<uint32_t> packed(size_t(N) * wpr);
  for (auto& p : packed) {
    p = rng();
    if (fmt == 0) { // codes 0..2 only
      p = 0;
      for (int i = 0; i < 16; ++i) {
        p |= uint32_t(rng() % 3) << (2 * i);
      }
    }
  }
  std::vector<uint16_t> scales(size_t(N) * G, 0x3C00), codebook(1 << c);
  for (auto& e : codebook) {
    e = uint16_t(rng());
  }
  std::vector<float> x(size_t(M) * K), out(size_t(M) * N), xscale(M);
  std::vector<int8_t> xq(size_t(M) * K);
  for (auto& e : x) {
    e = float(rng() % 1000) / 500.0f - 1.0f;
  }
  MatmulArgs a{};
  a.w = PackedWeight{
      fmt, N, K, gs, v, c, wpr, packed.data(), scales.data(), nullptr, codebook.data(), false};
  a.M = M;
  a.x = x.data();
  a.xq = xq.data();
  a.xscale = xscale.data();
  a.out = out.data();
  a.parallel = &serial;
  std::vector<uint8_t> idx;
  std::vector<float> lut_scales;
  LutWeight tl{};
  if (lut && int8) {
    idx.resize(lut_index_bytes(N, K, fmt));
    lut_scales.resize(lut_scale_count(N, K, gs));
    avx512_lut_kernels()->repack(a.w, idx.data(), lut_scales.data(), nullptr);
    tl = LutWeight{fmt, N, K, gs, idx.data(), lut_scales.data(), nullptr};
  }
  const bool nibbles = lut && !int8;
  std::vector<uint32_t> nidx;
  LutNibbleWeight tn{};
  if (nibbles) {
    nidx.resize(lut_nibble_words(N, K, fmt));
    lut_scales.resize(lut_nibble_scale_count(N, K, gs));
    avx512_lut_kernels()->repack_nibbles(a.w, nidx.data(), lut_scales.data(), nullptr);
    tn = LutNibbleWeight{fmt, N, K, gs, nidx.data(), lut_scales.data(), nullptr};
  }
  auto product = [&] {
    if (nibbles) {
      return avx512_lut_kernels()->gemv_nibbles(tn, x.data(), M, out.data(), &serial);
    }
    if (lut) {
      bool ok = true;
      for (int m = 0; m < M; ++m) {
        const size_t x0 = size_t(m) * K;
        xscale[m] = t->quantize_int8(x.data() + x0, K, xq.data() + x0);
        ok &= avx512_lut_kernels()->gemv(
            tl, xq.data() + x0, xscale[m], out.data() + size_t(m) * N, &serial);
      }
      return ok;
    }
    if (!int8) {
      return t->matmul_nt(a);
    }
    for (int m = 0; m < M; ++m) {
      xscale[m] = t->quantize_int8(x.data() + size_t(m) * K, K, xq.data() + size_t(m) * K);
    }
    return t->matmul_nt_int8(a);
  };
  for (int i = 0; i < 5; ++i) {
    product();
  }
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      product();
    }
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    runs.push_back(d.count() / reps);
  }
  std::sort(runs.begin(), runs.end());
  const double bytes = packed.size() * 4.0 + scales.size() * 2.0;
  std::printf(
      "%s %s M=%d %s N=%d K=%d: best %.1f us, median %.1f us, %.1f GB/s (out[0] %g)\n", isa.c_str(),
      name.c_str(), M, int8 ? "int8" : "float", N, K, runs[0] * 1e6, runs[3] * 1e6,
      bytes / runs[0] / 1e9, out[0]);
  return 0;
}
