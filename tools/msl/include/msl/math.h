// metal:: floating-point math for float, half and their vectors (half computed in float and
// rounded, so results can differ from Apple's half-precision units in the last ulp).
// metal::precise:: and metal::fast:: name the same functions: the CPU has no fast-math mode.
#pragma once
#include "vector.h"

namespace metal {

template <class V>
using __msl_enable_float_vec = enable_if_t<__msl_is_vec<V> && __msl_is_float_like<V>, int>;

inline float __msl_smoothstep(float e0, float e1, float x) {
  float t = __builtin_fminf(__builtin_fmaxf((x - e0) / (e1 - e0), 0.0f), 1.0f);
  return t * t * (3.0f - 2.0f * t);
}

#define __MSL_F1(name, expr)                        \
  inline float name(float x) {                      \
    return expr;                                    \
  }                                                 \
  inline half name(half h) {                        \
    float x = float(h);                             \
    return half(expr);                              \
  }                                                 \
  template <class V, __msl_enable_float_vec<V> = 0> \
  inline V name(V v) {                              \
    for (int i = 0; i < __msl_ncomp<V>; ++i)        \
      v[i] = name(v[i]);                            \
    return v;                                       \
  }

#define __MSL_F2(name, expr)                        \
  inline float name(float x, float y) {             \
    return expr;                                    \
  }                                                 \
  inline half name(half hx, half hy) {              \
    float x = float(hx), y = float(hy);             \
    return half(expr);                              \
  }                                                 \
  template <class V, __msl_enable_float_vec<V> = 0> \
  inline V name(V a, V b) {                         \
    for (int i = 0; i < __msl_ncomp<V>; ++i)        \
      a[i] = name(a[i], b[i]);                      \
    return a;                                       \
  }

#define __MSL_F3(name, expr)                           \
  inline float name(float x, float y, float z) {       \
    return expr;                                       \
  }                                                    \
  inline half name(half hx, half hy, half hz) {        \
    float x = float(hx), y = float(hy), z = float(hz); \
    return half(expr);                                 \
  }                                                    \
  template <class V, __msl_enable_float_vec<V> = 0>    \
  inline V name(V a, V b, V c) {                       \
    for (int i = 0; i < __msl_ncomp<V>; ++i)           \
      a[i] = name(a[i], b[i], c[i]);                   \
    return a;                                          \
  }

__MSL_F1(acos, __builtin_acosf(x))
__MSL_F1(acosh, __builtin_acoshf(x))
__MSL_F1(asin, __builtin_asinf(x))
__MSL_F1(asinh, __builtin_asinhf(x))
__MSL_F1(atan, __builtin_atanf(x))
__MSL_F1(atanh, __builtin_atanhf(x))
__MSL_F1(ceil, __builtin_ceilf(x))
__MSL_F1(cos, __builtin_cosf(x))
__MSL_F1(cosh, __builtin_coshf(x))
__MSL_F1(cospi, __builtin_cosf(x * 3.14159265358979323846f))
__MSL_F1(exp, __builtin_expf(x))
__MSL_F1(exp2, __builtin_exp2f(x))
__MSL_F1(exp10, __builtin_powf(10.0f, x))
__MSL_F1(fabs, __builtin_fabsf(x))
__MSL_F1(floor, __builtin_floorf(x))
__MSL_F1(fract, __builtin_fminf(x - __builtin_floorf(x), 0x1.fffffep-1f))
__MSL_F1(log, __builtin_logf(x))
__MSL_F1(log2, __builtin_log2f(x))
__MSL_F1(log10, __builtin_log10f(x))
__MSL_F1(rint, __builtin_rintf(x))
__MSL_F1(round, __builtin_roundf(x))
__MSL_F1(rsqrt, 1.0f / __builtin_sqrtf(x))
__MSL_F1(sin, __builtin_sinf(x))
__MSL_F1(sinh, __builtin_sinhf(x))
__MSL_F1(sinpi, __builtin_sinf(x * 3.14159265358979323846f))
__MSL_F1(sqrt, __builtin_sqrtf(x))
__MSL_F1(tan, __builtin_tanf(x))
__MSL_F1(tanh, __builtin_tanhf(x))
__MSL_F1(trunc, __builtin_truncf(x))
__MSL_F1(saturate, __builtin_fminf(__builtin_fmaxf(x, 0.0f), 1.0f))
__MSL_F1(sign, x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : (x != x ? 0.0f : x)))
__MSL_F2(atan2, __builtin_atan2f(x, y))
__MSL_F2(copysign, __builtin_copysignf(x, y))
__MSL_F2(divide, x / y)
__MSL_F2(fdim, __builtin_fdimf(x, y))
__MSL_F2(fmax, __builtin_fmaxf(x, y))
__MSL_F2(fmin, __builtin_fminf(x, y))
__MSL_F2(fmod, __builtin_fmodf(x, y))
__MSL_F2(pow, __builtin_powf(x, y))
__MSL_F2(powr, __builtin_powf(x, y))
__MSL_F2(step, y < x ? 0.0f : 1.0f)
__MSL_F3(fma, __builtin_fmaf(x, y, z))
__MSL_F3(mix, x + (y - x) * z)
__MSL_F3(smoothstep, __msl_smoothstep(x, y, z))

#undef __MSL_F1
#undef __MSL_F2
#undef __MSL_F3

template <class T, enable_if_t<is_floating_point_v<T>, int> = 0>
inline bool isnan(T x) {
  return __builtin_isnan(x);
}
template <class T, enable_if_t<is_floating_point_v<T>, int> = 0>
inline bool isinf(T x) {
  return __builtin_isinf(x);
}
template <class T, enable_if_t<is_floating_point_v<T>, int> = 0>
inline bool isfinite(T x) {
  return __builtin_isfinite(x);
}
template <class T, enable_if_t<is_floating_point_v<T>, int> = 0>
inline bool signbit(T x) {
  return __builtin_signbit(float(x));
}

namespace precise {
using metal::acos, metal::acosh, metal::asin, metal::asinh, metal::atan, metal::atan2, metal::atanh,
    metal::ceil, metal::copysign, metal::cos, metal::cosh, metal::cospi, metal::divide, metal::exp,
    metal::exp10, metal::exp2, metal::fabs, metal::fdim, metal::floor, metal::fma, metal::fmax,
    metal::fmin, metal::fmod, metal::fract, metal::log, metal::log10, metal::log2, metal::pow,
    metal::powr, metal::rint, metal::round, metal::rsqrt, metal::saturate, metal::sin, metal::sinh,
    metal::sinpi, metal::sqrt, metal::tan, metal::tanh, metal::trunc;
} // namespace precise
namespace fast {
using namespace precise;
} // namespace fast

} // namespace metal
