// metal:: min/max/clamp/abs/select/as_type/all/any for scalars and vectors.
#pragma once
#include "vector.h"

namespace metal {

// Scalars min/max/clamp/abs accept; bfloat is left out as in MSL (its overloads are ambiguous there).
template <class T>
constexpr bool __msl_minmax_scalar =
    is_arithmetic_v<T> && !is_same_v<T, bfloat> && !is_same_v<T, bool>;
template <class T>
constexpr bool __msl_minmax_type = __msl_minmax_scalar<__msl_elem_t<T>>;

template <class T>
constexpr T __msl_max1(T a, T b) {
  if constexpr (is_floating_point_v<T>)
    return T(__builtin_fmaxf(float(a), float(b)));
  else
    return a < b ? b : a;
}
template <class T>
constexpr T __msl_min1(T a, T b) {
  if constexpr (is_floating_point_v<T>)
    return T(__builtin_fminf(float(a), float(b)));
  else
    return b < a ? b : a;
}

template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T max(T a, T b) {
  if constexpr (__msl_is_vec<T>) {
    for (int i = 0; i < __msl_ncomp<T>; ++i)
      a[i] = __msl_max1(a[i], b[i]);
    return a;
  } else {
    return __msl_max1(a, b);
  }
}
template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T min(T a, T b) {
  if constexpr (__msl_is_vec<T>) {
    for (int i = 0; i < __msl_ncomp<T>; ++i)
      a[i] = __msl_min1(a[i], b[i]);
    return a;
  } else {
    return __msl_min1(a, b);
  }
}
template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T max3(T a, T b, T c) {
  return max(max(a, b), c);
}
template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T min3(T a, T b, T c) {
  return min(min(a, b), c);
}
template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T clamp(T x, T lo, T hi) {
  return min(max(x, lo), hi);
}

template <class T, enable_if_t<__msl_minmax_type<T>, int> = 0>
constexpr T abs(T x) {
  if constexpr (__msl_is_vec<T>) {
    for (int i = 0; i < __msl_ncomp<T>; ++i)
      x[i] = abs(x[i]);
    return x;
  } else if constexpr (is_floating_point_v<T>) {
    return T(__builtin_fabsf(float(x)));
  } else if constexpr (is_signed_v<T>) {
    return x < 0 ? T(-x) : x;
  } else {
    return x;
  }
}

// select(a, b, c): c ? b : a, element-wise for vectors; c may be a bool vector or the int-mask
// vector a clang vector comparison yields.
template <class T, enable_if_t<!__msl_is_vec<T>, int> = 0>
constexpr T select(T a, T b, bool c) {
  return c ? b : a;
}
template <class T, int N, enable_if_t<__msl_is_vec<T> && __msl_ncomp<T> == N, int> = 0>
constexpr T select(T a, T b, __msl_boolvec<N> c) {
  for (int i = 0; i < N; ++i)
    a[i] = c[i] ? b[i] : a[i];
  return a;
}
template <
    class T,
    class M,
    enable_if_t<
        __msl_is_vec<T> && __msl_is_vec<M> && __msl_ncomp<T> == __msl_ncomp<M> &&
            is_integral_v<__msl_elem_t<M>>,
        int> = 0>
constexpr T select(T a, T b, M c) {
  for (int i = 0; i < __msl_ncomp<T>; ++i)
    a[i] = c[i] ? b[i] : a[i];
  return a;
}

template <int N>
constexpr bool all(__msl_boolvec<N> v) {
  for (int i = 0; i < N; ++i)
    if (!v[i])
      return false;
  return true;
}
template <int N>
constexpr bool any(__msl_boolvec<N> v) {
  for (int i = 0; i < N; ++i)
    if (v[i])
      return true;
  return false;
}
template <class M, enable_if_t<__msl_is_vec<M> && is_integral_v<__msl_elem_t<M>>, int> = 0>
constexpr bool all(M v) {
  return all(__msl_boolvec<__msl_ncomp<M>>(v));
}
template <class M, enable_if_t<__msl_is_vec<M> && is_integral_v<__msl_elem_t<M>>, int> = 0>
constexpr bool any(M v) {
  return any(__msl_boolvec<__msl_ncomp<M>>(v));
}
constexpr bool all(bool v) {
  return v;
}
constexpr bool any(bool v) {
  return v;
}

template <class To, class From>
constexpr To as_type(From x) {
  static_assert(
      sizeof(To) == sizeof(From), "as_type: the source and destination types differ in size");
  return __builtin_bit_cast(To, x);
}

} // namespace metal
