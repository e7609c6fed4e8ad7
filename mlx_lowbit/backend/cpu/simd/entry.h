// Copyright © 2026 mlx-lowbit contributors.
//
// The entry points of the ISA file's KernelTable.
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

template <class XT, class ST>
void group_sums(const XT* x, int M, int K, int gs, ST* sums) {
  const int G = K / gs;
  for (int m = 0; m < M; ++m) {
    for (int g = 0; g < G; ++g) {
      ST s = 0;
      const XT* p = x + size_t(m) * K + size_t(g) * gs;
      for (int k = 0; k < gs; ++k) {
        s += p[k];
      }
      sums[size_t(m) * G + g] = s;
    }
  }
}

bool matmul_nt(const MatmulArgs& a) {
  WeightRows wr(a.w);
  const int G = wr.G;
  Buffer xsum(sizeof(float) * size_t(a.M) * G);
  if (!xsum.p || !wr.ok) {
    return false;
  }
  group_sums(a.x, a.M, a.w.K, a.w.group_size, xsum.as<float>());
  if (a.M <= kGemvMaxM) {
    GemvF32 k{wr, a.x, xsum.as<float>(), a.M, a.out};
    bool ok = true;
    auto body = [&](int b, int e) { ok = k.run(b, e) && ok; };
    parallel(a, a.w.N, body);
    return ok;
  }
  return GemmNT<false>{wr, a.x, xsum.as<float>(), nullptr, a.M, a.out}.run(a);
}

bool matmul_nt_int8(const MatmulArgs& a) {
  WeightRows wr(a.w);
  const int G = wr.G, K = a.w.K;
  Buffer isum(sizeof(int32_t) * size_t(a.M) * G);
  if (!isum.p || !wr.ok) {
    return false;
  }
  group_sums(a.xq, a.M, K, a.w.group_size, isum.as<int32_t>());
  if (a.M <= kGemvMaxM && a.w.group_size % kStep8 == 0) {
    const int8_t* x = a.xq;
    Buffer permuted(size_t(a.M) * K);
    if (!permuted.p) {
      return false;
    }
    if (wr.format() == Format::Ternary) {
      for (int m = 0; m < a.M; ++m) {
        permute_ternary_x(a.xq + size_t(m) * K, K, permuted.as<int8_t>() + size_t(m) * K);
      }
      x = permuted.as<int8_t>();
    }
    GemvI8 k{wr, x, isum.as<int32_t>(), a.xscale, a.M, a.out};
    bool ok = true;
    auto body = [&](int b, int e) { ok = k.run(b, e) && ok; };
    parallel(a, a.w.N, body);
    return ok;
  }
  Buffer fsum(sizeof(float) * size_t(a.M) * G);
  if (!fsum.p) {
    return false;
  }
  for (size_t i = 0; i < size_t(a.M) * G; ++i) {
    fsum.as<float>()[i] = float(isum.as<int32_t>()[i]);
  }
  return GemmNT<true>{wr, a.xq, fsum.as<float>(), a.xscale, a.M, a.out}.run(a);
}

bool matmul_nn(const MatmulArgs& a) {
  WeightRows wr(a.w);
  return wr.ok && GemmNN{wr, a.x, a.M, a.out}.run(a);
}

// activation_quant.h's quantize_row_int8 in the same fp32 arithmetic, so
// bit for bit the same q and scale: the same absmax (the max of |x|'s bits,
// which is order-free and sees NaN and Inf), the same products
// x * (127 / amax), rounded to nearest even and clamped; 0 for a row that is
// not quantized.
typedef int8_t vs8 __attribute__((vector_size(W)));

float quantize_int8(const float* x, int K, int8_t* q) {
  vi m{}; // bits below 2^31: the signed order is the unsigned one
  int k = 0;
  for (; k + W <= K; k += W) {
    const vi a = load<vi>(x + k) & 0x7FFFFFFF;
    m = a > m ? a : m;
  }
  uint32_t bits = 0;
  for (int i = 0; i < W; ++i) {
    bits = bits < uint32_t(m[i]) ? uint32_t(m[i]) : bits;
  }
  for (int t = k; t < K; ++t) {
    uint32_t a;
    std::memcpy(&a, x + t, 4);
    a &= 0x7FFFFFFFu;
    bits = bits < a ? a : bits;
  }
  if (!mlx_lowbit::cpu::absmax_quantizable(bits)) {
    std::memset(q, 0, size_t(K > 0 ? K : 0));
    return 0.0f;
  }
  float amax;
  std::memcpy(&amax, &bits, 4);
  const float inv = 127.0f / amax;
  for (k = 0; k + W <= K; k += W) {
    vi r = round_even(load<vf>(x + k) * inv);
    r = r < -127 ? -127 : r;
    r = r > 127 ? 127 : r;
    store(q + k, __builtin_convertvector(r, vs8));
  }
  for (; k < K; ++k) {
    const float r = __builtin_nearbyintf(x[k] * inv);
    q[k] = int8_t(r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r);
  }
  return amax / 127.0f;
}

// MLX's bfloat16: round to nearest even, NaN -> 0x7FC0.
void half_to_float(const uint16_t* src, mlx_lowbit::cpu::Half16 type, float* dst, size_t n) {
  size_t i = 0;
  if (type == mlx_lowbit::cpu::Half16::Float16) {
    for (; i + W <= n; i += W) {
      half_to_float_w(src + i, dst + i);
    }
    for (; i < n; ++i) {
      dst[i] = half_to_float1(src[i]);
    }
    return;
  }
  for (; i < n; ++i) {
    uint32_t bits = uint32_t(src[i]) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

void float_to_half(const float* src, mlx_lowbit::cpu::Half16 type, uint16_t* dst, size_t n) {
  size_t i = 0;
  if (type == mlx_lowbit::cpu::Half16::Float16) {
    for (; i + W <= n; i += W) {
      float_to_half_w(src + i, dst + i);
    }
    alignas(64) float tail[W] = {};
    alignas(64) uint16_t tail_out[W];
    if (i < n) {
      std::memcpy(tail, src + i, sizeof(float) * (n - i));
      float_to_half_w(tail, tail_out);
      std::memcpy(dst + i, tail_out, sizeof(uint16_t) * (n - i));
    }
    return;
  }
  for (; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
      dst[i] = 0x7FC0;
    } else {
      dst[i] = uint16_t((u + ((u >> 16) & 1u) + 0x7FFFu) >> 16);
    }
  }
}
