// Copyright © 2026 mlx-lowbit contributors.
//
// Weight decode: scales, biases, codes and sign bits of packed rows, and the
// per-lane constants that vectorize formats/*.h.
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

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
  int bits = 0;                    // field width: c (v = 16) or 2c (v = 8)
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
  int G;                 // groups per row
  CodebookFields fields; // codebook only
  bool ok = true;        // false if scratch could not be allocated

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
