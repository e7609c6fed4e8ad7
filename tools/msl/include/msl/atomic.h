// metal::atomic<T> in device and threadgroup memory. The operations are real CPU atomics
// (relaxed, so ThreadSanitizer still sees data published through them as unordered).
#pragma once
#include "type_traits.h"

namespace metal {

enum memory_order { memory_order_relaxed = __ATOMIC_RELAXED };

template <class T>
struct atomic {
  static_assert(
      is_same_v<T, int> || is_same_v<T, uint> || is_same_v<T, float> || is_same_v<T, bool> ||
          is_same_v<T, ulong> || is_same_v<T, long>,
      "atomic<T>: T must be int, uint, float, bool, long or ulong");
  T __value;
};
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<float> atomic_float;
typedef atomic<bool> atomic_bool;

template <class T>
constexpr bool __msl_atomic_int = is_integral_v<T> && !is_same_v<T, bool>;

// float read-modify-write through a compare-exchange loop on the bit pattern.
template <class F>
inline float __msl_atomic_float_rmw(float* p, F f) {
  uint* u = reinterpret_cast<uint*>(p);
  uint old = __atomic_load_n(u, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(
      u, &old, __builtin_bit_cast(uint, f(__builtin_bit_cast(float, old))), true, __ATOMIC_RELAXED,
      __ATOMIC_RELAXED)) {
  }
  return __builtin_bit_cast(float, old);
}

// Compare-exchange loop for max/min: ThreadSanitizer instruments it (it skips atomicrmw max/min).
template <class T, class F>
inline T __msl_atomic_int_rmw(T* p, F f) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, f(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}

#define __MSL_ATOMIC_FUNCTIONS(AS)                                                          \
  template <class T>                                                                        \
  inline void atomic_store_explicit(                                                        \
      volatile AS atomic<T>* obj, __msl_identity_t<T> desired, memory_order) {              \
    __atomic_store_n((T*)&obj->__value, desired, __ATOMIC_RELAXED);                         \
  }                                                                                         \
  template <class T>                                                                        \
  inline T atomic_load_explicit(const volatile AS atomic<T>* obj, memory_order) {           \
    return __atomic_load_n((T*)&obj->__value, __ATOMIC_RELAXED);                            \
  }                                                                                         \
  template <class T>                                                                        \
  inline T atomic_exchange_explicit(                                                        \
      volatile AS atomic<T>* obj, __msl_identity_t<T> desired, memory_order) {              \
    return __atomic_exchange_n((T*)&obj->__value, desired, __ATOMIC_RELAXED);               \
  }                                                                                         \
  template <class T>                                                                        \
  inline bool atomic_compare_exchange_weak_explicit(                                        \
      volatile AS atomic<T>* obj, T* expected, __msl_identity_t<T> desired, memory_order,   \
      memory_order) {                                                                       \
    return __atomic_compare_exchange_n(                                                     \
        (T*)&obj->__value, expected, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED);    \
  }                                                                                         \
  template <class T>                                                                        \
  inline T atomic_fetch_add_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    if constexpr (is_same_v<T, float>)                                                      \
      return __msl_atomic_float_rmw((float*)&obj->__value, [v](float x) { return x + v; }); \
    else                                                                                    \
      return __atomic_fetch_add((T*)&obj->__value, v, __ATOMIC_RELAXED);                    \
  }                                                                                         \
  template <class T>                                                                        \
  inline T atomic_fetch_sub_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    if constexpr (is_same_v<T, float>)                                                      \
      return __msl_atomic_float_rmw((float*)&obj->__value, [v](float x) { return x - v; }); \
    else                                                                                    \
      return __atomic_fetch_sub((T*)&obj->__value, v, __ATOMIC_RELAXED);                    \
  }                                                                                         \
  template <class T, enable_if_t<__msl_atomic_int<T>, int> = 0>                             \
  inline T atomic_fetch_and_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    return __atomic_fetch_and((T*)&obj->__value, v, __ATOMIC_RELAXED);                      \
  }                                                                                         \
  template <class T, enable_if_t<__msl_atomic_int<T>, int> = 0>                             \
  inline T atomic_fetch_or_explicit(                                                        \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    return __atomic_fetch_or((T*)&obj->__value, v, __ATOMIC_RELAXED);                       \
  }                                                                                         \
  template <class T, enable_if_t<__msl_atomic_int<T>, int> = 0>                             \
  inline T atomic_fetch_xor_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    return __atomic_fetch_xor((T*)&obj->__value, v, __ATOMIC_RELAXED);                      \
  }                                                                                         \
  template <class T, enable_if_t<__msl_atomic_int<T>, int> = 0>                             \
  inline T atomic_fetch_max_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    return __msl_atomic_int_rmw((T*)&obj->__value, [v](T x) { return x < v ? v : x; });     \
  }                                                                                         \
  template <class T, enable_if_t<__msl_atomic_int<T>, int> = 0>                             \
  inline T atomic_fetch_min_explicit(                                                       \
      volatile AS atomic<T>* obj, __msl_identity_t<T> v, memory_order) {                    \
    return __msl_atomic_int_rmw((T*)&obj->__value, [v](T x) { return v < x ? v : x; });     \
  }
__MSL_ATOMIC_FUNCTIONS(__msl_device)
__MSL_ATOMIC_FUNCTIONS(__msl_threadgroup)
#undef __MSL_ATOMIC_FUNCTIONS

} // namespace metal
