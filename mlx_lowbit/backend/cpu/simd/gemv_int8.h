// Copyright © 2026 mlx-lowbit contributors.
//
// GEMV with int8 activations.
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

// 64 weights per step: the codes become bytes and meet the int8 activations
// in an integer dot product (VNNI vpdpbusd, vpmaddubsw, NEON sdot).
// Ternary bytes come out of one broadcast 16-byte load shifted by 2L in
// 128-bit lane L, so byte 16L + b holds weight 4b + L of the step; x is
// permuted to that order once per row of x. Binary and codebook bits expand
// in order (codebook: the patterns of 4 fields make the step's 64 bits).
// Needs group_size % 64 == 0; otherwise the GEMM path runs.

constexpr int kStep8 = 64; // weights per int8 step
constexpr int kVecsPerStep = kStep8 / (4 * W);

inline void permute_ternary_x(const int8_t* x, int K, int8_t* xp) {
  for (int s = 0; s < K; s += kStep8) {
    for (int L = 0; L < 4; ++L) {
      for (int b = 0; b < 16; ++b) {
        xp[s + 16 * L + b] = x[s + 4 * b + L];
      }
    }
  }
}

#if LOWBIT_SIMD_WIDE_CODES
// The codes of 128-bit lane l left in place, at 4^l times their value: byte
// mask 3 << 2l. The dot product takes codes up to 2 << 6 (dot4's contract
// with LOWBIT_SIMD_WIDE_CODES), and the lane's sums are scaled back by 4^-l
// once per row (ternary_lane_scale). Vector h > 0 is first shifted by a
// constant so that its lanes are scaled as those of vector 0.
inline vb ternary_lane_mask() {
  return make_vec<vb>([](int i) { return uint8_t(3u << (2 * (i / 16))); });
}
inline vf ternary_lane_scale() {
  return make_vec<vf>([](int i) { return 1.0f / float(1 << (2 * (i / 4))); });
}
#endif

// Shift of the 64-bit lanes of vector h: 2L for 128-bit lane L.
inline vq ternary_lane_shift(int h) {
  return make_vec<vq>([h](int i) { return uint64_t(2 * (h * (W / 4) + i / 2)); });
}

struct GemvI8 {
  static constexpr bool kInt8 = true;
  const WeightRows& wr;
  const int8_t* x;     // (M, K), permuted for ternary
  const int32_t* xsum; // (M, G)
  const float* xscale; // (M,)
  int M;
  float* out;

  // scratch: as for GemvF32.
  template <Format F, int R, int MB, int FB>
  void rows(int n0, int m0, float* scratch) const {
    const int K = wr.w.K, G = wr.G, steps_per_group = wr.w.group_size / kStep8;
    const GemvRows<F, R> rw(wr, n0, scratch);
    const FieldPairs<FB> pairs(wr.fields);
#if !LOWBIT_SIMD_WIDE_CODES
    const vb three = vb{} + uint8_t(3);
#endif
    vf F_[R][MB] = {};
    for (int g = 0; g < G; ++g) {
      vi acc[R][MB] = {};
      for (int sg = 0; sg < steps_per_group; ++sg) {
        const int s = g * steps_per_group + sg;
        vi xs[MB][kVecsPerStep];
        LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
          LOWBIT_UNROLL for (int h = 0; h < kVecsPerStep; ++h) {
            xs[m][h] = load<vi>(x + size_t(m0 + m) * K + s * kStep8 + h * 4 * W);
          }
        }
        int byte[2] = {}, shift[2] = {};
        if constexpr (F == Format::Codebook) {
          pairs.window(2 * s, byte[0], shift[0]);
          pairs.window(2 * s + 1, byte[1], shift[1]);
        }
        LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
          vb codes[kVecsPerStep];
          if constexpr (F == Format::Ternary) {
            const vb rep = (vb)broadcast128(rw.r[i] + 4 * s);
            LOWBIT_UNROLL for (int h = 0; h < kVecsPerStep; ++h) {
#if LOWBIT_SIMD_WIDE_CODES
              codes[h] = (vb)((vq)rep >> (2 * h * (W / 4))) & ternary_lane_mask();
#else
              codes[h] = (vb)((vq)rep >> ternary_lane_shift(h)) & three;
#endif
            }
          } else {
            uint64_t sign;
            if constexpr (F == Format::Codebook) {
              const uint64_t w0 = load_u64(rw.rb[i] + byte[0]) >> shift[0];
              const uint64_t w1 = load_u64(rw.rb[i] + byte[1]) >> shift[1];
              sign = uint64_t(pairs.first(w0) | (pairs.second(w0) << 16)) |
                     (uint64_t(pairs.first(w1) | (pairs.second(w1) << 16)) << 32);
            } else {
              sign = uint64_t(rw.r[i][2 * s]) | (uint64_t(rw.r[i][2 * s + 1]) << 32);
            }
            LOWBIT_UNROLL for (int h = 0; h < kVecsPerStep; ++h) {
              codes[h] = bits_to_bytes(sign >> (h * 4 * W));
            }
          }
          LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
            LOWBIT_UNROLL for (int h = 0; h < kVecsPerStep; ++h) {
              acc[i][m] = dot4(acc[i][m], (vi)codes[h], xs[m][h]);
            }
          }
        }
      }
      LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
        const float c = rw.cc[i][g];
        LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
          F_[i][m] += __builtin_convertvector(acc[i][m], vf) * c;
        }
      }
    }
    LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
      LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
#if LOWBIT_SIMD_WIDE_CODES
        if constexpr (F == Format::Ternary) {
          F_[i][m] *= ternary_lane_scale();
        }
#endif
        out[size_t(m0 + m) * wr.w.N + n0 + i] =
            xscale[m0 + m] * (hsum(F_[i][m]) + dot(rw.sc[i], xsum + size_t(m0 + m) * G, G));
      }
    }
  }

  template <Format F, int MB, int FB>
  void row_block(int n0, int n1, int m0, float* scratch) const {
    constexpr int R = gemv_rows(kInt8, F, MB);
    int n = n0;
    for (; n + R <= n1; n += R) {
      rows<F, R, MB, FB>(n, m0, scratch);
    }
    for (; n < n1; ++n) {
      rows<F, 1, MB, FB>(n, m0, scratch);
    }
  }

  template <Format F, int FB>
  void run_format(int n0, int n1, float* scratch) const {
    for (int m0 = 0; m0 < M; m0 += kGemvMaxM) {
      switch (imin(kGemvMaxM, M - m0)) {
        case 1:
          row_block<F, 1, FB>(n0, n1, m0, scratch);
          break;
        case 2:
          row_block<F, 2, FB>(n0, n1, m0, scratch);
          break;
        case 3:
          row_block<F, 3, FB>(n0, n1, m0, scratch);
          break;
        default:
          row_block<F, 4, FB>(n0, n1, m0, scratch);
          break;
      }
    }
  }

  // Returns false if the scratch could not be allocated.
  bool run(int n0, int n1) const {
    return run_gemv(*this, n0, n1);
  }
};
