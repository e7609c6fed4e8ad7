// Copyright © 2026 mlx-lowbit contributors.
//
// GEMM (larger M): decoded panels and the MR x NR micro-kernel.
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

// Larger M: a block of NR = 2W output columns and KC reduction steps is
// decoded once into a panel (codes as floats, or as bytes for int8; lanes
// run over the columns) and reused by every row of x. The micro-kernel keeps
// an MR x NR tile of accumulators in registers, broadcasts one x per row and
// step, and at each group boundary adds code_coef * acc into the fp32 tile
// C in L1. The sum_coef * sum(x) terms are added once per group at the end.
// transpose=False (x @ W, the gradient) uses the same micro-kernel with the
// panel holding whole weights along K and a coefficient of 1.

constexpr int NR = 2 * W;
constexpr int MR = LOWBIT_SIMD_MR;
constexpr int kMChunk = 512; // rows of x per work item (bounds the C tile)

template <bool kInt8>
struct Micro {
  using Elem = typename std::conditional<kInt8, int32_t, float>::type;
  using XElem = typename std::conditional<kInt8, int8_t, float>::type;
  using Acc = typename std::conditional<kInt8, vi, vf>::type;
  static constexpr int kStep = kInt8 ? 4 : 1; // reduction steps per panel row

  // C[m][0:NR] += coef * sum_{k < len} x[m][k] * panel[k][0:NR], m < ROWS.
  template <int ROWS>
  static void tile(
      const Elem* panel, int len, const XElem* x, size_t ldx, const float* coef, float* C) {
    Acc acc[ROWS][2] = {};
    for (int k = 0; k < len; k += kStep) {
      const Elem* p = panel + (k / kStep) * NR;
      Acc b0 = load<Acc>(p), b1 = load<Acc>(p + W);
      for (int m = 0; m < ROWS; ++m) {
        if constexpr (kInt8) {
          int32_t x4;
          std::memcpy(&x4, x + m * ldx + k, 4);
          vi xb = vi{} + x4;
          acc[m][0] = dot4(acc[m][0], b0, xb);
          acc[m][1] = dot4(acc[m][1], b1, xb);
        } else {
          float xs = x[m * ldx + k];
          acc[m][0] += b0 * xs;
          acc[m][1] += b1 * xs;
        }
      }
    }
    vf c0 = load<vf>(coef), c1 = load<vf>(coef + W);
    for (int m = 0; m < ROWS; ++m) {
      vf a0, a1;
      if constexpr (kInt8) {
        a0 = __builtin_convertvector(acc[m][0], vf);
        a1 = __builtin_convertvector(acc[m][1], vf);
      } else {
        a0 = acc[m][0];
        a1 = acc[m][1];
      }
      store(C + m * NR, load<vf>(C + m * NR) + a0 * c0);
      store(C + m * NR + W, load<vf>(C + m * NR + W) + a1 * c1);
    }
  }

  template <int ROWS = MR>
  static void rows(
      int rows_left,
      const Elem* panel,
      int len,
      const XElem* x,
      size_t ldx,
      const float* coef,
      float* C) {
    if constexpr (ROWS == 1) {
      tile<1>(panel, len, x, ldx, coef, C);
    } else {
      if (rows_left == ROWS) {
        tile<ROWS>(panel, len, x, ldx, coef, C);
      } else {
        rows<ROWS - 1>(rows_left, panel, len, x, ldx, coef, C);
      }
    }
  }

  static void run(
      int M, const Elem* panel, int len, const XElem* x, size_t ldx, const float* coef, float* C) {
    for (int m0 = 0; m0 < M; m0 += MR) {
      rows(imin(MR, M - m0), panel, len, x + m0 * ldx, ldx, coef, C + m0 * NR);
    }
  }
};

// x @ W.T: columns are rows n of W, the reduction runs over K.
template <bool kInt8>
struct GemmNT {
  using M_ = Micro<kInt8>;
  using Elem = typename M_::Elem;
  using XElem = typename M_::XElem;
  static constexpr int KC = kInt8 ? 1024 : 256;

  const WeightRows& wr;
  const XElem* x;      // (M, K)
  const float* xsum;   // (M, G)
  const float* xscale; // int8 only
  int M;
  float* out;

  // Words of chunk ch for the W rows starting at n (0 past N). Codebook
  // rows come from `bits`, their sign bits for the block's chunks.
  void gather(int n, int ch, int ch0, const uint32_t* bits, uint32_t* lo, uint32_t* hi) const {
    const Format f = wr.format();
    for (int i = 0; i < W; ++i) {
      if (n + i >= wr.w.N) {
        lo[i] = hi[i] = 0;
      } else if (f == Format::Ternary) {
        lo[i] = wr.row(n + i)[2 * ch];
        hi[i] = wr.row(n + i)[2 * ch + 1];
      } else if (f == Format::Binary) {
        lo[i] = wr.row(n + i)[ch];
      } else {
        lo[i] = bits[(n + i) % NR * (KC / 32) + ch - ch0];
      }
    }
  }

  // panel[k - k0][j] = code of weight k of row n0 + j, k in [k0, k1).
  void decode(int n0, int k0, int k1, Elem* panel) const {
    const bool ternary = wr.format() == Format::Ternary;
    alignas(64) uint32_t lo[W], hi[W];
    uint32_t bits[NR * (KC / 32)]; // codebook only
    if (wr.format() == Format::Codebook) {
      for (int j = 0; j < NR && n0 + j < wr.w.N; ++j) {
        wr.codebook_bits_run(n0 + j, k0 / 32, (k1 - k0) / 32, bits + j * (KC / 32));
      }
    }
    for (int ch = k0 / 32; ch < k1 / 32; ++ch) {
      for (int half = 0; half < 2; ++half) {
        gather(n0 + half * W, ch, k0 / 32, bits, lo, hi);
        vu vlo = load<vu>(lo), vhi = load<vu>(hi);
        Elem* dst = panel + size_t(ch * 32 - k0) / M_::kStep * NR + half * W;
        if constexpr (kInt8) {
          // 4 consecutive codes of a row -> the 4 bytes of its lane.
          for (int q = 0; q < 8; ++q) {
            vu e;
            if (ternary) {
              vu t = ((q < 4 ? vlo : vhi) >> (8 * (q % 4))) & 0xFFu;
              e = (t | (t << 6) | (t << 12) | (t << 18)) & 0x03030303u;
            } else {
              vu t = (vlo >> (4 * q)) & 0xFu;
              e = (t | (t << 7) | (t << 14) | (t << 21)) & 0x01010101u;
            }
            store(dst + q * NR, (vi)e);
          }
        } else {
          for (int i = 0; i < 32; ++i) {
            vu c = ternary ? ((i < 16 ? vlo : vhi) >> (2 * (i % 16))) & 3u : (vlo >> i) & 1u;
            store(dst + i * NR, __builtin_convertvector((vi)c, vf));
          }
        }
      }
    }
  }

  void coefs(int n0, int g, float* coef) const {
    for (int j = 0; j < NR; ++j) {
      coef[j] = n0 + j < wr.w.N ? wr.code_coef(n0 + j, g) : 0.0f;
    }
  }

  void block(int jb, int m0, int rows, Elem* panel, float* C) const {
    const int K = wr.w.K, gs = wr.w.group_size, n0 = jb * NR;
    const int kc = gs <= KC ? (KC / gs) * gs : KC;
    alignas(64) float coef[NR];
    std::memset(C, 0, sizeof(float) * rows * NR);
    const XElem* xm = x + size_t(m0) * K;
    for (int k0 = 0; k0 < K; k0 += kc) {
      const int k1 = imin(K, k0 + kc);
      decode(n0, k0, k1, panel);
      for (int s = k0; s < k1;) {
        const int g = s / gs, e = imin(k1, (g + 1) * gs);
        coefs(n0, g, coef);
        M_::run(rows, panel + (s - k0) / M_::kStep * NR, e - s, xm + s, K, coef, C);
        s = e;
      }
    }
    // The sum_coef * sum(x) terms, then the output (scaled back for int8).
    for (int g = 0; g < wr.G; ++g) {
      for (int j = 0; j < NR; ++j) {
        coef[j] = n0 + j < wr.w.N ? wr.sum_coef(n0 + j, g) : 0.0f;
      }
      vf c0 = load<vf>(coef), c1 = load<vf>(coef + W);
      for (int m = 0; m < rows; ++m) {
        float xs = xsum[size_t(m0 + m) * wr.G + g];
        store(C + m * NR, load<vf>(C + m * NR) + c0 * xs);
        store(C + m * NR + W, load<vf>(C + m * NR + W) + c1 * xs);
      }
    }
    const int cols = imin(NR, wr.w.N - n0);
    for (int m = 0; m < rows; ++m) {
      float* o = out + size_t(m0 + m) * wr.w.N + n0;
      const float f = kInt8 ? xscale[m0 + m] : 1.0f;
      for (int j = 0; j < cols; ++j) {
        o[j] = C[m * NR + j] * f;
      }
    }
  }

  bool run(const MatmulArgs& a) const {
    const int col_blocks = ceil_div(wr.w.N, NR), m_chunks = ceil_div(M, kMChunk);
    bool ok = true;
    auto body = [&](int b, int e) {
      Buffer panel(sizeof(Elem) * (KC / M_::kStep) * NR + 64);
      Buffer C(sizeof(float) * imin(M, kMChunk) * NR);
      if (!panel.p || !C.p) {
        ok = false;
        return;
      }
      for (int item = b; item < e; ++item) {
        int jb = item % col_blocks, mc = item / col_blocks;
        int m0 = mc * kMChunk;
        block(jb, m0, imin(kMChunk, M - m0), panel.as<Elem>(), C.as<float>());
      }
    };
    parallel(a, col_blocks * m_chunks, body);
    return ok;
  }
};

// x @ W: columns are K, the reduction runs over N (whole weights, scale and
// bias applied while decoding, since they vary along the output here).
struct GemmNN {
  using M_ = Micro<false>;
  static constexpr int KC = 256;

  const WeightRows& wr;
  const float* x; // (M, N)
  int M;
  float* out; // (M, K)

  void decode(int k0, int n0, int n1, float* panel) const {
    const bool ternary = wr.format() == Format::Ternary;
    const int gs = wr.w.group_size;
    for (int n = n0; n < n1; ++n) {
      const uint32_t* r = wr.row(n);
      for (int v = 0; v < NR / W; ++v) {
        const int k = k0 + v * W, g = k / gs;
        const float s = wr.scale(n, g), bias = wr.bias(n, g);
        vf value;
        if (ternary) {
          vu word = splatu(r[k / lowbit::ternary::kPerWord]);
          vu shift =
              ternary_shift(0) + uint32_t(lowbit::ternary::kBits * (k % lowbit::ternary::kPerWord));
          value = (__builtin_convertvector((vi)((word >> shift) & 3u), vf) - 1.0f) * s;
        } else {
          vu bits = splatu(wr.sign_bits(n, k / 32));
          vu shift = make_vec<vu>([](int i) { return uint32_t(i); }) + uint32_t(k % 32);
          value =
              (__builtin_convertvector((vi)((bits >> shift) & 1u), vf) * 2.0f - 1.0f) * s + bias;
        }
        store(panel + (n - n0) * NR + v * W, value);
      }
    }
  }

  bool run(const MatmulArgs& a) const {
    const int K = wr.w.K, N = wr.w.N;
    const int col_blocks = K / NR, m_chunks = ceil_div(M, kMChunk);
    bool ok = true;
    auto body = [&](int b, int e) {
      Buffer panel(sizeof(float) * KC * NR);
      Buffer C(sizeof(float) * imin(M, kMChunk) * NR);
      if (!panel.p || !C.p) {
        ok = false;
        return;
      }
      alignas(64) float ones[NR];
      for (int j = 0; j < NR; ++j) {
        ones[j] = 1.0f;
      }
      for (int item = b; item < e; ++item) {
        const int jb = item % col_blocks, m0 = (item / col_blocks) * kMChunk;
        const int rows = imin(kMChunk, M - m0), k0 = jb * NR;
        float* Cp = C.as<float>();
        std::memset(Cp, 0, sizeof(float) * rows * NR);
        for (int n0 = 0; n0 < N; n0 += KC) {
          const int n1 = imin(N, n0 + KC);
          decode(k0, n0, n1, panel.as<float>());
          M_::run(rows, panel.as<float>(), n1 - n0, x + size_t(m0) * N + n0, N, ones, Cp);
        }
        for (int m = 0; m < rows; ++m) {
          std::memcpy(out + size_t(m0 + m) * K + k0, Cp + m * NR, sizeof(float) * NR);
        }
      }
    };
    parallel(a, col_blocks * m_chunks, body);
    return ok;
  }
};
