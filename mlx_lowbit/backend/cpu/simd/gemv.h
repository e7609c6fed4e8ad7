// Copyright © 2026 mlx-lowbit contributors.
//
// GEMV with float activations (M <= kGemvMaxM).
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

// Small M: no weight reuse to exploit across rows of x, so each weight chunk
// goes from its packed bits straight into registers: binary sign bits into
// masked adds of x, ternary codes (shift + table permute, or shift + mask +
// convert) into an FMA, codebook fields into a table load whose pattern is
// the mask of the add. R rows of W at once keep enough independent
// accumulators in flight and let each x load serve R rows.

constexpr int kGemvMaxM = 4;
// Rows of W per pass for MB rows of x: enough independent accumulator chains
// to cover the FMA / dot-product latency, each x load serving several rows
// (x of 4 rows no longer fits L1 at K = 4096), and the per-group work
// spread over enough weights, within the registers. Measured on Zen 5:
// AVX-512 one row of x takes 8 rows of W, except int8 ternary and binary
// (4 are faster there).
constexpr int gemv_rows(bool int8, Format f, int mb) {
#if LOWBIT_SIMD_BYTES == 64
  return mb == 1 ? (int8 && f != Format::Codebook ? 4 : 8) : mb == 2 ? 4 : 2;
#else
  (void)int8;
  (void)f;
  return mb == 1 ? 4 : mb == 2 ? 2 : 1;
#endif
}
constexpr int kGemvMaxRows = 8;
constexpr int kChunksPerVec = 32 / W; // vectors per 32-weight chunk

// The format switch of a GEMV kernel, with its scratch: per row of a block
// of up to kGemvMaxRows, 2 G coefficients. Codebook weights whose field
// pairs are whole bytes get kernels with constant offsets. Returns false if
// the scratch could not be allocated.
template <class Gemv>
bool run_gemv(const Gemv& gemv, int n0, int n1) {
  const WeightRows& wr = gemv.wr;
  Buffer scratch(sizeof(float) * kGemvMaxRows * 2 * wr.G);
  if (!scratch.p) {
    return false;
  }
  float* p = scratch.as<float>();
  switch (wr.format()) {
    case Format::Ternary:
      gemv.template run_format<Format::Ternary, 0>(n0, n1, p);
      break;
    case Format::Binary:
      gemv.template run_format<Format::Binary, 0>(n0, n1, p);
      break;
    case Format::Codebook:
      switch (wr.fields.bits) {
        case 8:
          gemv.template run_format<Format::Codebook, 8>(n0, n1, p);
          break;
        case 12:
          gemv.template run_format<Format::Codebook, 12>(n0, n1, p);
          break;
        case 16:
          gemv.template run_format<Format::Codebook, 16>(n0, n1, p);
          break;
        default:
          gemv.template run_format<Format::Codebook, 0>(n0, n1, p);
          break;
      }
      break;
  }
  return true;
}

// What every GEMV pass over R rows of W needs: the rows' words (codebook:
// bytes), their per-group coefficients in `scratch`.
template <Format F, int R>
struct GemvRows {
  const uint32_t* r[R];
  const uint8_t* rb[R]; // codebook
  const float *cc[R], *sc[R];

  GemvRows(const WeightRows& wr, int n0, float* scratch) {
    LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
      float* mine = scratch + i * 2 * wr.G;
      cc[i] = mine;
      sc[i] = mine + wr.G;
      wr.row_coefs(n0 + i, mine, mine + wr.G);
      r[i] = wr.row(n0 + i);
      rb[i] = F == Format::Codebook ? wr.fields.row_bytes(n0 + i) : nullptr;
    }
  }
};

struct GemvF32 {
  static constexpr bool kInt8 = false;
  const WeightRows& wr;
  const float* x;    // (M, K)
  const float* xsum; // (M, G)
  int M;
  float* out; // (M, N)

  // Codebook: two accumulators per row, the pair's two fields in separate
  // chains (a masked add's latency is longer than its issue interval).
  template <Format F>
  static constexpr int kChains = F == Format::Codebook ? 2 : 1;

  template <Format F, int R, int MB, int FB>
  void rows(int n0, int m0, float* scratch) const {
    constexpr int C = kChains<F>;
    const int K = wr.w.K, G = wr.G, chunks_per_group = wr.w.group_size / 32;
    const GemvRows<F, R> rw(wr, n0, scratch);
    const FieldPairs<FB> pairs(wr.fields);
    vf F_[R][MB] = {};
    for (int g = 0; g < G; ++g) {
      vf A[R][MB][C] = {};
      for (int cg = 0; cg < chunks_per_group; ++cg) {
        const int ch = g * chunks_per_group + cg;
        vf xv[MB][kChunksPerVec];
        LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
          LOWBIT_UNROLL for (int v = 0; v < kChunksPerVec; ++v) {
            xv[m][v] = load<vf>(x + size_t(m0 + m) * K + ch * 32 + v * W);
          }
        }
        int byte = 0, shift = 0;
        if constexpr (F == Format::Codebook) {
          pairs.window(ch, byte, shift);
        }
        LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
          if constexpr (F == Format::Ternary) {
            LOWBIT_UNROLL for (int v = 0; v < kChunksPerVec; ++v) {
              vf code = ternary_codes(splatu(rw.r[i][2 * ch + (v * W) / 16]), v);
              LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
                A[i][m][0] += code * xv[m][v];
              }
            }
          } else if constexpr (F == Format::Binary) {
            vu sign = splatu(rw.r[i][ch]);
            LOWBIT_UNROLL for (int v = 0; v < kChunksPerVec; ++v) {
              LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
                A[i][m][0] = add_if(A[i][m][0], sign, bit_select(v), xv[m][v]);
              }
            }
          } else {
            // A shift and a mask per field and a table load, then one
            // masked add per 16 weights. On AVX-512 the second field's
            // pattern becomes 0/1 codes for an FMA instead: mask registers
            // take one write per cycle, which would bound the loop.
            const uint64_t win = load_u64(rw.rb[i] + byte) >> shift;
            const uint16_t* pat[2] = {pairs.first_at(win), pairs.second_at(win)};
            LOWBIT_UNROLL for (int v = 0; v < kChunksPerVec; ++v) {
              const int half = v / (kChunksPerVec / 2), sub = v % (kChunksPerVec / 2);
#if LOWBIT_SIMD_PATTERN_MASK
              if (half == 1) {
                const vf code = pattern_codes16(pat[1], sub);
                LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
                  A[i][m][1] += code * xv[m][v];
                }
                continue;
              }
#endif
              LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
                A[i][m][half] = add_pattern16(A[i][m][half], pat[half], sub, xv[m][v]);
              }
            }
          }
        }
      }
      LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
        const float c = rw.cc[i][g];
        LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
          vf a = A[i][m][0];
          LOWBIT_UNROLL for (int j = 1; j < C; ++j) {
            a += A[i][m][j];
          }
          F_[i][m] += a * c;
        }
      }
    }
    LOWBIT_UNROLL for (int i = 0; i < R; ++i) {
      LOWBIT_UNROLL for (int m = 0; m < MB; ++m) {
        out[size_t(m0 + m) * wr.w.N + n0 + i] =
            hsum(F_[i][m]) + dot(rw.sc[i], xsum + size_t(m0 + m) * G, G);
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

  // Passes of at most 2 rows of x: float rows of 3 or 4 no longer fit L1
  // next to the weights (K = 4096: 16 KB each), and two passes are faster.
  template <Format F, int FB>
  void run_format(int n0, int n1, float* scratch) const {
    for (int m0 = 0; m0 < M; m0 += 2) {
      if (M - m0 == 1) {
        row_block<F, 1, FB>(n0, n1, m0, scratch);
      } else {
        row_block<F, 2, FB>(n0, n1, m0, scratch);
      }
    }
  }

  // Returns false if the scratch could not be allocated.
  bool run(int n0, int n1) const {
    return run_gemv(*this, n0, n1);
  }
};
