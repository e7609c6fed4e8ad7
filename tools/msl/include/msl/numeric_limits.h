// metal::numeric_limits for the scalar types.
#pragma once
#include "type_traits.h"

namespace metal {

template <class T>
struct numeric_limits {
  static constexpr bool is_specialized = false;
};

#define __MSL_INT_LIMITS(T, LO, HI, SIGNED, DIGITS) \
  template <>                                       \
  struct numeric_limits<T> {                        \
    static constexpr bool is_specialized = true;    \
    static constexpr bool is_signed = SIGNED;       \
    static constexpr bool is_integer = true;        \
    static constexpr int digits = DIGITS;           \
    static constexpr T min() {                      \
      return LO;                                    \
    }                                               \
    static constexpr T lowest() {                   \
      return LO;                                    \
    }                                               \
    static constexpr T max() {                      \
      return HI;                                    \
    }                                               \
    static constexpr T epsilon() {                  \
      return 0;                                     \
    }                                               \
  };
__MSL_INT_LIMITS(bool, false, true, false, 1)
__MSL_INT_LIMITS(char, -128, 127, true, 7)
__MSL_INT_LIMITS(signed char, -128, 127, true, 7)
__MSL_INT_LIMITS(uchar, 0, 255, false, 8)
__MSL_INT_LIMITS(short, -32768, 32767, true, 15)
__MSL_INT_LIMITS(ushort, 0, 65535, false, 16)
__MSL_INT_LIMITS(int, -2147483647 - 1, 2147483647, true, 31)
__MSL_INT_LIMITS(uint, 0u, 0xffffffffu, false, 32)
__MSL_INT_LIMITS(long, -0x7fffffffffffffffL - 1, 0x7fffffffffffffffL, true, 63)
__MSL_INT_LIMITS(ulong, 0ul, 0xfffffffffffffffful, false, 64)
#undef __MSL_INT_LIMITS

#define __MSL_FLOAT_LIMITS(T, BITS, MIN, MAX, EPS, INF, QNAN, DIGITS) \
  template <>                                                         \
  struct numeric_limits<T> {                                          \
    static constexpr bool is_specialized = true;                      \
    static constexpr bool is_signed = true;                           \
    static constexpr bool is_integer = false;                         \
    static constexpr bool has_infinity = true;                        \
    static constexpr bool has_quiet_NaN = true;                       \
    static constexpr int digits = DIGITS;                             \
    static constexpr T min() {                                        \
      return __builtin_bit_cast(T, (BITS)MIN);                        \
    }                                                                 \
    static constexpr T lowest() {                                     \
      return -__builtin_bit_cast(T, (BITS)MAX);                       \
    }                                                                 \
    static constexpr T max() {                                        \
      return __builtin_bit_cast(T, (BITS)MAX);                        \
    }                                                                 \
    static constexpr T epsilon() {                                    \
      return __builtin_bit_cast(T, (BITS)EPS);                        \
    }                                                                 \
    static constexpr T infinity() {                                   \
      return __builtin_bit_cast(T, (BITS)INF);                        \
    }                                                                 \
    static constexpr T quiet_NaN() {                                  \
      return __builtin_bit_cast(T, (BITS)QNAN);                       \
    }                                                                 \
    static constexpr T denorm_min() {                                 \
      return __builtin_bit_cast(T, (BITS)1);                          \
    }                                                                 \
  };
__MSL_FLOAT_LIMITS(float, uint, 0x00800000u, 0x7f7fffffu, 0x34000000u, 0x7f800000u, 0x7fc00000u, 24)
__MSL_FLOAT_LIMITS(half, ushort, 0x0400u, 0x7bffu, 0x1400u, 0x7c00u, 0x7e00u, 11)
__MSL_FLOAT_LIMITS(bfloat, ushort, 0x0080u, 0x7f7fu, 0x3c00u, 0x7f80u, 0x7fc0u, 8)
#undef __MSL_FLOAT_LIMITS

} // namespace metal
