// metal:: integer functions (bit counting and bit fields) for scalars and vectors.
#pragma once
#include "vector.h"

namespace metal {

template <class T>
constexpr bool __msl_int_type = is_integral_v<__msl_elem_t<T>> && !is_same_v<__msl_elem_t<T>, bool>;

#define __MSL_INT_ELEMENTWISE(name)          \
  if constexpr (__msl_is_vec<T>) {           \
    for (int i = 0; i < __msl_ncomp<T>; ++i) \
      x[i] = name(x[i]);                     \
    return x;                                \
  } else

template <class T, enable_if_t<__msl_int_type<T>, int> = 0>
constexpr T popcount(T x) {
  __MSL_INT_ELEMENTWISE(popcount) {
    return T(__builtin_popcountll(static_cast<ulong>(static_cast<make_unsigned_t<T>>(x))));
  }
}
template <class T, enable_if_t<__msl_int_type<T>, int> = 0>
constexpr T clz(T x) { // clz(0) is the bit width
  __MSL_INT_ELEMENTWISE(clz) {
    ulong u = static_cast<make_unsigned_t<T>>(x);
    return T(u == 0 ? int(sizeof(T) * 8) : __builtin_clzll(u) - int(64 - sizeof(T) * 8));
  }
}
template <class T, enable_if_t<__msl_int_type<T>, int> = 0>
constexpr T ctz(T x) { // ctz(0) is the bit width
  __MSL_INT_ELEMENTWISE(ctz) {
    ulong u = static_cast<make_unsigned_t<T>>(x);
    return T(u == 0 ? int(sizeof(T) * 8) : __builtin_ctzll(u));
  }
}
template <class T, enable_if_t<__msl_int_type<T>, int> = 0>
constexpr T reverse_bits(T x) {
  __MSL_INT_ELEMENTWISE(reverse_bits) {
    make_unsigned_t<T> u = static_cast<make_unsigned_t<T>>(x), r = 0;
    for (int i = 0; i < int(sizeof(T) * 8); ++i)
      r = (r << 1) | ((u >> i) & 1);
    return T(r);
  }
}
#undef __MSL_INT_ELEMENTWISE

// extract_bits(x, offset, bits): `bits` bits starting at `offset`, sign-extended for signed T.
template <class T, enable_if_t<__msl_int_type<T> && !__msl_is_vec<T>, int> = 0>
constexpr T extract_bits(T x, uint offset, uint bits) {
  constexpr uint W = sizeof(T) * 8;
  if (bits == 0)
    return T(0);
  make_unsigned_t<T> u = static_cast<make_unsigned_t<T>>(x) >> offset;
  make_unsigned_t<T> mask = bits >= W ? make_unsigned_t<T>(~make_unsigned_t<T>(0))
                                      : make_unsigned_t<T>((make_unsigned_t<T>(1) << bits) - 1);
  u &= mask;
  if constexpr (is_signed_v<T>) {
    if (bits < W && ((u >> (bits - 1)) & 1))
      u |= make_unsigned_t<T>(~mask);
  }
  return T(u);
}
template <class T, enable_if_t<__msl_int_type<T> && __msl_is_vec<T>, int> = 0>
constexpr T extract_bits(T x, uint offset, uint bits) {
  for (int i = 0; i < __msl_ncomp<T>; ++i)
    x[i] = extract_bits(x[i], offset, bits);
  return x;
}
template <class T, enable_if_t<__msl_int_type<T> && !__msl_is_vec<T>, int> = 0>
constexpr T insert_bits(T base, T insert, uint offset, uint bits) {
  constexpr uint W = sizeof(T) * 8;
  if (bits == 0)
    return base;
  make_unsigned_t<T> mask = bits >= W ? make_unsigned_t<T>(~make_unsigned_t<T>(0))
                                      : make_unsigned_t<T>((make_unsigned_t<T>(1) << bits) - 1);
  mask = make_unsigned_t<T>(mask << offset);
  return T(
      (static_cast<make_unsigned_t<T>>(base) & ~mask) |
      ((static_cast<make_unsigned_t<T>>(insert) << offset) & mask));
}
template <class T, enable_if_t<__msl_int_type<T> && __msl_is_vec<T>, int> = 0>
constexpr T insert_bits(T base, T insert, uint offset, uint bits) {
  for (int i = 0; i < __msl_ncomp<T>; ++i)
    base[i] = insert_bits(base[i], insert[i], offset, bits);
  return base;
}
template <class T, enable_if_t<__msl_int_type<T> && !__msl_is_vec<T>, int> = 0>
constexpr T rotate(T v, T i) {
  constexpr uint W = sizeof(T) * 8;
  make_unsigned_t<T> u = static_cast<make_unsigned_t<T>>(v);
  uint s = uint(i) % W;
  return s == 0 ? v : T(make_unsigned_t<T>(u << s) | make_unsigned_t<T>(u >> (W - s)));
}
template <class T, enable_if_t<__msl_int_type<T> && !__msl_is_vec<T>, int> = 0>
constexpr T mulhi(T a, T b) {
  if constexpr (sizeof(T) == 8) {
    if constexpr (is_signed_v<T>)
      return T((__int128(a) * __int128(b)) >> 64);
    else
      return T((unsigned __int128)(a) * (unsigned __int128)(b) >> 64);
  } else {
    return T((long(a) * long(b)) >> (sizeof(T) * 8));
  }
}
template <class T, enable_if_t<__msl_int_type<T> && !__msl_is_vec<T>, int> = 0>
constexpr make_unsigned_t<T> absdiff(T a, T b) {
  return a > b ? make_unsigned_t<T>(a - b) : make_unsigned_t<T>(b - a);
}

} // namespace metal
