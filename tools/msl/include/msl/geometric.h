// metal:: dot/length/distance/normalize/cross for float and half vectors.
#pragma once
#include "math.h"

namespace metal {

template <class V, __msl_enable_float_vec<V> = 0>
inline __msl_elem_t<V> dot(V a, V b) {
  float s = 0.0f;
  for (int i = 0; i < __msl_ncomp<V>; ++i)
    s += float(a[i]) * float(b[i]);
  return __msl_elem_t<V>(s);
}
template <class V, __msl_enable_float_vec<V> = 0>
inline __msl_elem_t<V> length(V a) {
  return __msl_elem_t<V>(__builtin_sqrtf(float(dot(a, a))));
}
template <class V, __msl_enable_float_vec<V> = 0>
inline __msl_elem_t<V> distance(V a, V b) {
  return length(a - b);
}
template <class V, __msl_enable_float_vec<V> = 0>
inline V normalize(V a) {
  return a * (__msl_elem_t<V>(1) / length(a));
}
template <
    class V,
    enable_if_t<__msl_is_vec<V> && __msl_is_float_like<V> && __msl_ncomp<V> == 3, int> = 0>
inline V cross(V a, V b) {
  return a.yzx * b.zxy - a.zxy * b.yzx;
}

} // namespace metal
