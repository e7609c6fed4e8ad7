// simdgroup_matrix<T, 8, 8> in Apple's lane layout: lane l owns row fm(l), columns fn(l) and
// fn(l)+1 (the layout MLX's BaseMMAFrag::get_coord encodes). Loads, stores and products are
// collectives that need all 32 lanes; products accumulate in fp32.
#pragma once
#include "simd.h"

namespace metal {

struct __msl_frag_coord {
  ushort row, col;
};
constexpr __msl_frag_coord __msl_frag_coord_of(uint lane) {
  uint qid = lane / 4;
  return {ushort((qid & 4) + (lane / 2) % 4), ushort((qid & 2) * 2 + (lane % 2) * 2)};
}

template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "simdgroup_matrix: only 8x8 matrices exist");
  static_assert(
      is_same_v<T, float> || is_same_v<T, half> || is_same_v<T, bfloat>,
      "simdgroup_matrix: the element type must be float, half or bfloat");
  vec<T, 2> __e;

  simdgroup_matrix() = default;
  // MSL: a matrix with `diagonal` on its diagonal and zeros elsewhere.
  simdgroup_matrix(T diagonal) {
    __msl_frag_coord c = __msl_frag_coord_of(__msl_rt_lane());
    __e[0] = c.col == c.row ? diagonal : T(0);
    __e[1] = c.col + 1 == c.row ? diagonal : T(0);
  }
  vec<T, 2>& thread_elements() {
    return __e;
  }
  const vec<T, 2>& thread_elements() const {
    return __e;
  }
};

typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <class T, int Cols, int Rows>
inline simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(const T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.__e = vec<T, 2>(value);
  return m;
}

// Runs the collective and insists that every lane takes part.
inline __msl_gathered __msl_matrix_collective(
    const void* payload, uint size, const __msl_site& site) {
  __msl_gathered g;
  g.data = static_cast<const unsigned char*>(
      __msl_rt_simd_collective(payload, size, &site, &g.mask, &g.lane));
  if (g.mask != 0xffffffffu)
    __msl_rt_fail(
        &site,
        "%s needs all 32 lanes of the simdgroup, but the active lanes are 0x%08x "
        "(some returned or were not launched)",
        site.op, g.mask);
  return g;
}

// Element (r, c) of the matrix read from `elements_per_row`-strided memory at `origin`
// (x = column, y = row); with `transpose`, element (r, c) comes from source row c, column r.
inline ulong __msl_matrix_offset(
    uint r, uint c, ulong elements_per_row, ulong2 origin, bool transpose) {
  ulong rr = transpose ? c : r, cc = transpose ? r : c;
  return (origin.y + rr) * elements_per_row + origin.x + cc;
}

#define __MSL_SIMDGROUP_LOAD_STORE(AS)                                                      \
  template <class T, int C, int R>                                                          \
  inline void simdgroup_load(                                                               \
      simdgroup_matrix<T, C, R>& d, const AS T* src, ulong elements_per_row = 8,            \
      ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false,                      \
      __msl_site site = __msl_here("simdgroup_load")) {                                     \
    __msl_gathered g = __msl_matrix_collective(nullptr, 0, site);                           \
    __msl_frag_coord f = __msl_frag_coord_of(g.lane);                                       \
    for (uint j = 0; j < 2; ++j)                                                            \
      d.__e[j] = src[__msl_matrix_offset(                                                   \
          f.row, f.col + j, elements_per_row, matrix_origin, transpose_matrix)];            \
  }                                                                                         \
  template <class T, int C, int R>                                                          \
  inline void simdgroup_store(                                                              \
      const simdgroup_matrix<T, C, R>& a, AS T* dst, ulong elements_per_row = 8,            \
      ulong2 matrix_origin = ulong2(0), bool transpose_matrix = false,                      \
      __msl_site site = __msl_here("simdgroup_store")) {                                    \
    __msl_gathered g = __msl_matrix_collective(nullptr, 0, site);                           \
    __msl_frag_coord f = __msl_frag_coord_of(g.lane);                                       \
    for (uint j = 0; j < 2; ++j)                                                            \
      dst[__msl_matrix_offset(                                                              \
          f.row, f.col + j, elements_per_row, matrix_origin, transpose_matrix)] = a.__e[j]; \
  }
__MSL_SIMDGROUP_LOAD_STORE(__msl_device)
__MSL_SIMDGROUP_LOAD_STORE(__msl_threadgroup)
#undef __MSL_SIMDGROUP_LOAD_STORE

// Lane and element holding entry (r, c) of a fragment.
struct __msl_frag_owner {
  uchar lane[8][8], elem[8][8];
  constexpr __msl_frag_owner() : lane{}, elem{} {
    for (uint l = 0; l < 32; ++l) {
      __msl_frag_coord f = __msl_frag_coord_of(l);
      for (uint j = 0; j < 2; ++j) {
        lane[f.row][f.col + j] = uchar(l);
        elem[f.row][f.col + j] = uchar(j);
      }
    }
  }
};
constexpr __msl_frag_owner __msl_frag_owners{};

// d = a * b + c, products and sums in fp32, rounded once to d's element type.
template <class TD, class TA, class TB, class TC>
inline void simdgroup_multiply_accumulate(
    simdgroup_matrix<TD, 8, 8>& d,
    const simdgroup_matrix<TA, 8, 8>& a,
    const simdgroup_matrix<TB, 8, 8>& b,
    const simdgroup_matrix<TC, 8, 8>& c,
    __msl_site site = __msl_here("simdgroup_multiply_accumulate")) {
  struct operands {
    vec<TA, 2> a;
    vec<TB, 2> b;
  } mine = {a.__e, b.__e};
  __msl_gathered g = __msl_matrix_collective(&mine, sizeof(mine), site);
  __msl_frag_coord f = __msl_frag_coord_of(g.lane);
  float acc[2];
  for (uint j = 0; j < 2; ++j) {
    uint r = f.row, col = f.col + j;
    float s = float(c.__e[j]);
    for (uint k = 0; k < 8; ++k) {
      operands pa = g.at<operands>(__msl_frag_owners.lane[r][k]);
      operands pb = g.at<operands>(__msl_frag_owners.lane[k][col]);
      s += float(pa.a[__msl_frag_owners.elem[r][k]]) * float(pb.b[__msl_frag_owners.elem[k][col]]);
    }
    acc[j] = s;
  }
  d.__e[0] = TD(acc[0]);
  d.__e[1] = TD(acc[1]);
}

template <class TD, class TA, class TB>
inline void simdgroup_multiply(
    simdgroup_matrix<TD, 8, 8>& d,
    const simdgroup_matrix<TA, 8, 8>& a,
    const simdgroup_matrix<TB, 8, 8>& b,
    __msl_site site = __msl_here("simdgroup_multiply")) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<TD, 8, 8>(TD(0)), site);
}

} // namespace metal
