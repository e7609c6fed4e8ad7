// Copyright © 2026 mlx-lowbit contributors.
//
// The SIMD kernels, written once with GCC/Clang vector extensions and
// compiled once per ISA: kernels_avx512.cpp, kernels_avx2.cpp and
// kernels_neon.cpp each define, inside an anonymous namespace and before
// including this file,
//   LOWBIT_SIMD_BYTES          vector width in bytes (64, 32, 16), then
//                              include simd_types.h for W, vf, vi, vu, vq, vb
//   LOWBIT_SIMD_MR             rows of x per GEMM micro-tile
//   LOWBIT_SIMD_PERMUTE_CODES  1 with vf permute_codes(vu idx): lane i =
//                              {0,1,2,0}[idx_i & 3] by a table permute
//   LOWBIT_SIMD_PATTERN_MASK   1 with vf add_pattern16(vf acc, const
//                              uint16_t* pattern, int sub, vf x): acc + x in
//                              the lanes i where bit sub*W + i of the 16-bit
//                              pattern is set (the pattern is the lane
//                              mask), and vf pattern_codes16(const uint16_t*
//                              pattern, int sub): those bits as 0.0 / 1.0
//                              (may load 2 bytes past the pattern);
//                              otherwise add_if serves
//   vi dot4(vi acc, vi a, vi b)  acc + the sum of the 4 byte products in each
//                                32-bit lane; a holds small non-negative codes
//                                (0..2), b int8 activations
//   vb bits_to_bytes(uint64_t)   the low 4*W bits as 0/1 bytes, bit i -> byte i
//   vi broadcast128(const void*) 16 bytes loaded into every 128-bit lane
//   vf add_if(vf acc, vu word, vu bit, vf x)  acc + x in the lanes where
//                                (word & bit) != 0 (a masked add)
//   vi round_even(vf)            to the nearest integer, ties to even
//   float half_to_float1(uint16_t); void half_to_float_w(const uint16_t*, float*);
//   void float_to_half_w(const float*, uint16_t*)   (W values, IEEE float16)
// Everything here has internal linkage (see kernel_abi.h for why).
//
// Identity used by every kernel: with c the stored code of a weight (ternary
// c in {0, 1, 2}, t = c - 1; binary / codebook sign bit c in {0, 1},
// s = 2c - 1), the sum over one group g of a row is
//   sum_k w_k x_k = mult * scale_g * sum_k c_k x_k + (bias_g - scale_g) * sum_k x_k
// (mult = 1 ternary, 2 binary / codebook; bias 0 unless binary has biases).
// So the inner loops only add x where a code bit is set (a masked add, or an
// integer dot product with the codes), the scale is applied once per group
// and per lane, and sum_k x_k per group is computed once per row of x.

// The including file has already included, at global scope, <cstdint>,
// <cstdlib>, <cstring>, <type_traits>, kernel_abi.h and formats.h.
#pragma once

// ---------------------------------------------------------------- helpers

// Loops over register arrays must be unrolled, or the arrays live in memory.
#if defined(__clang__)
#define LOWBIT_UNROLL _Pragma("unroll")
#else
#define LOWBIT_UNROLL _Pragma("GCC unroll 16")
#endif

template <class V, class T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}
inline vu splatu(uint32_t s) {
  return vu{} + s;
}
inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < W; ++i) {
    s += v[i];
  }
  return s;
}
inline int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}
inline int imin(int a, int b) {
  return a < b ? a : b;
}
template <class T>
inline float dot(const float* a, const T* b, int n) {
  vf acc{};
  int i = 0;
  for (; i + W <= n; i += W) {
    vf bv;
    if constexpr (std::is_same<T, float>::value) {
      bv = load<vf>(b + i);
    } else {
      bv = __builtin_convertvector(load<vi>(b + i), vf);
    }
    acc += load<vf>(a + i) * bv;
  }
  float s = hsum(acc);
  for (; i < n; ++i) {
    s += a[i] * float(b[i]);
  }
  return s;
}

template <class F>
void trampoline(void* ctx, int begin, int end) {
  (*static_cast<F*>(ctx))(begin, end);
}
template <class F>
void parallel(const mlx_lowbit::cpu::MatmulArgs& a, int n, F& body) {
  a.parallel(n, &trampoline<F>, &body);
}

// Scratch that every path frees on every exit.
struct Buffer {
  void* p = nullptr;
  Buffer() = default;
  explicit Buffer(size_t bytes) : p(std::malloc(bytes ? bytes : 1)) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    std::free(p);
  }
  // Replaces the memory; false if it could not be allocated.
  bool allocate(size_t bytes) {
    std::free(p);
    p = std::malloc(bytes ? bytes : 1);
    return p != nullptr;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

using mlx_lowbit::cpu::MatmulArgs;
using mlx_lowbit::cpu::PackedWeight;
using Format = lowbit::Format;

// ---------------------------------------------------------------- weights

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// A codebook row read 16 weights at a time. A field is the c-bit index of
// one v = 16 run, or the two adjacent c-bit indices (2c bits, the first in
// the low bits) of two v = 8 runs; a table of 2^bits 16-bit patterns gives
// its 16 sign bits, bit i = weight i: the codebook itself for v = 16, for
// v = 8 a table of index pairs built once per product. Fields go in pairs
// (32 weights) read with one unaligned 64-bit load, so each 16 weights cost
// a shift, a mask and one table load. These are the bits of codebook.h's
// index_from_words: little-endian words make each row a little-endian byte
// stream, in which index j is bits [j c, j c + c).
struct CodebookFields {
  const uint16_t* table = nullptr; // 2^bits patterns, then 2 zero bytes
  int bits = 0; // field width: c (v = 16) or 2c (v = 8)
  const PackedWeight* w = nullptr;
  // The last row and 8 zero bytes: a window of a row's last pair may read
  // up to 7 bytes past the row, which for the other rows is the next row.
  Buffer last_row;
  // The table, with 2 bytes of padding so that a 32-bit load of any entry
  // stays inside (AVX-512 broadcasts entries that way).
  Buffer patterns;

  bool init(const PackedWeight& pw) {
    w = &pw;
    bits = pw.vector_size == 16 ? pw.index_bits : 2 * pw.index_bits;
    const size_t row_size = sizeof(uint32_t) * size_t(pw.words_per_row);
    const size_t entries = size_t(1) << bits;
    if (!last_row.allocate(row_size + 8) || !patterns.allocate(sizeof(uint16_t) * (entries + 1))) {
      return false;
    }
    std::memcpy(last_row.p, pw.packed + size_t(pw.N - 1) * pw.words_per_row, row_size);
    std::memset(last_row.as<char>() + row_size, 0, 8);
    uint16_t* t = patterns.as<uint16_t>();
    t[entries] = 0;
    table = t;
    if (pw.vector_size == 16) {
      std::memcpy(t, pw.codebook, sizeof(uint16_t) * entries);
      return true;
    }
    // v = 8 (c <= 8): entry (hi << c) | lo = pattern lo, then pattern hi.
    const int c = pw.index_bits, n = 1 << c;
    const uint8_t* cb = static_cast<const uint8_t*>(pw.codebook);
    for (int hi = 0; hi < n; ++hi) {
      const uint16_t high = uint16_t(cb[hi] << 8);
      for (int lo = 0; lo < n; ++lo) {
        t[(hi << c) | lo] = uint16_t(high | cb[lo]);
      }
    }
    return true;
  }

  // Row n's bytes, safe to read 8 bytes past its end.
  const uint8_t* row_bytes(int n) const {
    if (n == w->N - 1) {
      return last_row.as<const uint8_t>();
    }
    return reinterpret_cast<const uint8_t*>(w->packed + size_t(n) * w->words_per_row);
  }
};

// Field pair p of a codebook row: FB = the field width when a pair is whole
// bytes (8, 12 or 16 bits: the window needs no shift and every offset is a
// constant), FB = 0 for any width.
template <int FB>
struct FieldPairs {
  const uint16_t* table;
  int bits;

  explicit FieldPairs(const CodebookFields& cf) : table(cf.table), bits(FB ? FB : cf.bits) {}
  // The byte offset of pair p's 64-bit window and the shift that brings
  // field 2p to bit 0 (the same for every row).
  void window(int p, int& byte, int& shift) const {
    if constexpr (FB != 0) {
      byte = p * (FB / 4);
      shift = 0;
    } else {
      const int pos = 2 * p * bits;
      byte = pos >> 3;
      shift = pos & 7;
    }
  }
  uint64_t field_mask() const {
    return (uint64_t(1) << (FB ? FB : bits)) - 1;
  }
  // The patterns of the pair's two fields, from its window's bits.
  const uint16_t* first_at(uint64_t win) const {
    return table + (win & field_mask());
  }
  const uint16_t* second_at(uint64_t win) const {
    return table + ((win >> (FB ? FB : bits)) & field_mask());
  }
  uint32_t first(uint64_t win) const {
    return *first_at(win);
  }
  uint32_t second(uint64_t win) const {
    return *second_at(win);
  }
  uint32_t pair_bits(const uint8_t* row, int p) const {
    int byte, shift;
    window(p, byte, shift);
    const uint64_t win = load_u64(row + byte) >> shift;
    return first(win) | (second(win) << 16);
  }
};

struct WeightRows {
  const PackedWeight& w;
  int G; // groups per row
  CodebookFields fields; // codebook only
  bool ok = true; // false if scratch could not be allocated

  explicit WeightRows(const PackedWeight& w) : w(w), G(w.K / w.group_size) {
    if (w.format == int(Format::Codebook)) {
      ok = fields.init(w);
    }
  }

  Format format() const {
    return Format(w.format);
  }
  const uint32_t* row(int n) const {
    return w.packed + size_t(n) * w.words_per_row;
  }
  float scale(int n, int g) const {
    size_t i = size_t(n) * G + g;
    return w.scales_f32 ? static_cast<const float*>(w.scales)[i]
                        : half_to_float1(static_cast<const uint16_t*>(w.scales)[i]);
  }
  float bias(int n, int g) const {
    if (!w.biases) {
      return 0.0f;
    }
    size_t i = size_t(n) * G + g;
    return w.scales_f32 ? static_cast<const float*>(w.biases)[i]
                        : half_to_float1(static_cast<const uint16_t*>(w.biases)[i]);
  }
  // code_coef and sum_coef of every group of row n (G floats each).
  void row_coefs(int n, float* cc, float* sc) const {
    const size_t first = size_t(n) * G;
    const float mult = format() == Format::Ternary ? 1.0f : 2.0f;
    if (w.scales_f32) {
      std::memcpy(sc, static_cast<const float*>(w.scales) + first, sizeof(float) * G);
    } else {
      half_to_float_n(static_cast<const uint16_t*>(w.scales) + first, sc, G);
    }
    for (int g = 0; g < G; ++g) {
      cc[g] = mult * sc[g];
      sc[g] = -sc[g];
    }
    if (w.biases) {
      for (int g = 0; g < G; ++g) {
        sc[g] += bias(n, g);
      }
    }
  }
  static void half_to_float_n(const uint16_t* src, float* dst, int n) {
    int i = 0;
    for (; i + W <= n; i += W) {
      half_to_float_w(src + i, dst + i);
    }
    for (; i < n; ++i) {
      dst[i] = half_to_float1(src[i]);
    }
  }

  // The multiplier of sum c x and of sum x in the identity above.
  float code_coef(int n, int g) const {
    return format() == Format::Ternary ? scale(n, g) : 2.0f * scale(n, g);
  }
  float sum_coef(int n, int g) const {
    return bias(n, g) - scale(n, g);
  }
  // Codebook: the sign bits of chunks [ch0, ch0 + count) of row n (chunk =
  // 32 weights = one field pair, bit i = weight 32 ch + i) into dst.
  void codebook_bits_run(int n, int ch0, int count, uint32_t* dst) const {
    const FieldPairs<0> pairs(fields);
    const uint8_t* rb = fields.row_bytes(n);
    for (int i = 0; i < count; ++i) {
      dst[i] = pairs.pair_bits(rb, ch0 + i);
    }
  }

  // Binary / codebook: sign bits of chunk ch (32 weights) of row n.
  uint32_t sign_bits(int n, int ch) const {
    if (format() == Format::Binary) {
      return row(n)[ch];
    }
    uint32_t bits;
    codebook_bits_run(n, ch, 1, &bits);
    return bits;
  }
};

// Per-lane constants that vectorize formats/ternary.h's code_at and the
// binary bit order: lane i of vector v of a chunk covers weight v*W + i.
template <class V, class F>
inline V make_vec(F f) {
  V v;
  for (int i = 0; i < int(sizeof(V) / sizeof(v[0])); ++i) {
    v[i] = f(i);
  }
  return v;
}
// Ternary: the shift that brings weight (v*W + i) % 16 of its word down.
inline vu ternary_shift(int v) {
  return make_vec<vu>([v](int i) {
    return uint32_t(lowbit::ternary::kBits * ((v * W + i) % lowbit::ternary::kPerWord));
  });
}
// Ternary: code bit b (0 or 1) of weight (v*W + i) % 16 of its word.
inline vu ternary_bit(int v, int b) {
  return make_vec<vu>([v, b](int i) {
    return uint32_t(1) << (lowbit::ternary::kBits * ((v * W + i) % lowbit::ternary::kPerWord) + b);
  });
}
// Ternary codes (0, 1, 2) of vector v of a word, as floats.
inline vf ternary_codes(vu word, int v) {
#if LOWBIT_SIMD_PERMUTE_CODES
  // vpermps reads only the low index bits: the next code above the two we
  // want picks among copies of {0, 1, 2, 0}, so no mask is needed.
  return permute_codes(word >> ternary_shift(v));
#else
  return __builtin_convertvector((vi)((word >> ternary_shift(v)) & lowbit::ternary::kCodeMask), vf);
#endif
}
// Binary: the bit of weight v*W + i in the chunk's 32-bit word.
inline vu bit_select(int v) {
  return make_vec<vu>([v](int i) { return uint32_t(1) << ((v * W + i) % 32); });
}
#if !LOWBIT_SIMD_PATTERN_MASK
// Codebook: acc + x where bit sub*W + i of a 16-weight pattern is set.
inline vf add_pattern16(vf acc, const uint16_t* pattern, int sub, vf x) {
  return add_if(acc, splatu(*pattern), bit_select(sub), x);
}
#endif

// ---------------------------------------------------------------- GEMV (float)
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
  const float* x; // (M, K)
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

// ---------------------------------------------------------------- GEMV (int8)
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

// Shift of the 64-bit lanes of vector h: 2L for 128-bit lane L.
inline vq ternary_lane_shift(int h) {
  return make_vec<vq>([h](int i) { return uint64_t(2 * (h * (W / 4) + i / 2)); });
}

struct GemvI8 {
  static constexpr bool kInt8 = true;
  const WeightRows& wr;
  const int8_t* x; // (M, K), permuted for ternary
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
    const vb three = vb{} + uint8_t(3);
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
            vq rep = (vq)broadcast128(rw.r[i] + 4 * s);
            LOWBIT_UNROLL for (int h = 0; h < kVecsPerStep; ++h) {
              codes[h] = (vb)(rep >> ternary_lane_shift(h)) & three;
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
        out[size_t(m0 + m) * wr.w.N + n0 + i] = xscale[m0 + m] *
            (hsum(F_[i][m]) + dot(rw.sc[i], xsum + size_t(m0 + m) * G, G));
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

// ---------------------------------------------------------------- GEMM
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
  static void tile(const Elem* panel, int len, const XElem* x, size_t ldx, const float* coef, float* C) {
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
  static void rows(int rows_left, const Elem* panel, int len, const XElem* x, size_t ldx, const float* coef, float* C) {
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

  static void run(int M, const Elem* panel, int len, const XElem* x, size_t ldx, const float* coef, float* C) {
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
  const XElem* x; // (M, K)
  const float* xsum; // (M, G)
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
          vu shift = ternary_shift(0) + uint32_t(lowbit::ternary::kBits * (k % lowbit::ternary::kPerWord));
          value = (__builtin_convertvector((vi)((word >> shift) & 3u), vf) - 1.0f) * s;
        } else {
          vu bits = splatu(wr.sign_bits(n, k / 32));
          vu shift = make_vec<vu>([](int i) { return uint32_t(i); }) + uint32_t(k % 32);
          value = (__builtin_convertvector((vi)((bits >> shift) & 1u), vf) * 2.0f - 1.0f) * s + bias;
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

// ---------------------------------------------------------------- entry points

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
// bit for bit the same q and scale: the same absmax (max ignores order), the
// same products x * (127 / amax), rounded to nearest even and clamped.
typedef int8_t vs8 __attribute__((vector_size(W)));

float quantize_int8(const float* x, int K, int8_t* q) {
  vf m{};
  int k = 0;
  for (; k + W <= K; k += W) {
    const vf a = (vf)((vi)load<vf>(x + k) & 0x7FFFFFFF);
    m = a > m ? a : m; // std::max(m, a): a NaN is skipped
  }
  float amax = 0.0f;
  for (int i = 0; i < W; ++i) {
    amax = amax < m[i] ? m[i] : amax;
  }
  for (int t = k; t < K; ++t) {
    const float a = __builtin_fabsf(x[t]);
    amax = amax < a ? a : amax;
  }
  if (amax == 0.0f) {
    std::memset(q, 0, size_t(K > 0 ? K : 0));
    return 0.0f;
  }
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
