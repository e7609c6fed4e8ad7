// Binding of [[kernel]] parameters to what the host set for a launch. The rewrite emits, per host
// name, a thunk that calls the kernel with __msl_bind_* of each parameter (by index, using the
// function's type) and registers it with the runtime. The static_asserts are the attribute/type
// rules Apple's compiler enforces on kernel signatures.
#pragma once
#include "vector.h"

template <class F>
struct __msl_fn;
template <class R, class... P>
struct __msl_fn<R(P...)> {
  typedef R result;
  static constexpr unsigned arity = sizeof...(P);
  template <unsigned I>
  using param = __type_pack_element<I, P...>;
};

template <class T>
struct __msl_address_space {
  static constexpr int value = 0;
};
template <class T>
struct __msl_address_space<__msl_device T> {
  static constexpr int value = 1;
};
template <class T>
struct __msl_address_space<__msl_threadgroup T> {
  static constexpr int value = 2;
};
template <class T>
constexpr bool __msl_is_device_or_constant =
    __msl_address_space<T>::value == 1 ||
    (__msl_address_space<T>::value == 0 && metal::is_const_v<T>);

inline void* __msl_buffer(
    const __msl_invocation* inv, int slot, const char* param, unsigned long need, bool optional) {
  const __msl_bindings* b = inv->bindings;
  if (!b->buffer_bound[slot]) {
    if (optional)
      return nullptr; // guarded by a function constant
    __msl_rt_fail(nullptr, "[[buffer(%d)]] parameter '%s' is not bound", slot, param);
  }
  if (b->buffer_sizes[slot] < need)
    __msl_rt_fail(
        nullptr,
        "[[buffer(%d)]] parameter '%s' is bound to %lu bytes, fewer than the %lu bytes of its type",
        slot, param, b->buffer_sizes[slot], need);
  return b->buffers[slot];
}

template <class P>
P __msl_bind_buffer(const __msl_invocation* inv, int slot, const char* param, bool optional) {
  if constexpr (metal::is_pointer_v<P>) {
    static_assert(
        __msl_is_device_or_constant<metal::remove_pointer_t<P>>,
        "a [[buffer(i)]] parameter must be a device pointer or a constant pointer");
    return (P)__msl_buffer(inv, slot, param, 0, optional);
  } else {
    static_assert(
        metal::is_reference_v<P>, "a [[buffer(i)]] parameter must be a pointer or a reference");
    typedef metal::remove_reference_t<P> E;
    static_assert(
        __msl_is_device_or_constant<E>,
        "a [[buffer(i)]] reference must refer to device or constant memory");
    return *(E*)__msl_buffer(inv, slot, param, sizeof(E), false);
  }
}

template <class P>
P __msl_bind_threadgroup(const __msl_invocation* inv, int slot, const char* param) {
  static_assert(
      metal::is_pointer_v<P> && __msl_address_space<metal::remove_pointer_t<P>>::value == 2,
      "a [[threadgroup(i)]] parameter must be a threadgroup pointer");
  if (!inv->bindings->threadgroup_sizes[slot])
    __msl_rt_fail(
        nullptr,
        "[[threadgroup(%d)]] parameter '%s' has no memory (give threadgroup_buffers={%d: bytes})",
        slot, param, slot);
  return (P)inv->threadgroup_buffers[slot];
}

template <class P, int Kind, bool ScalarOnly>
P __msl_bind_position(const __msl_invocation* inv) {
  typedef metal::remove_cv_t<P> V;
  constexpr bool scalar = metal::is_same_v<V, uint> || metal::is_same_v<V, ushort>;
  constexpr bool vector = metal::is_same_v<V, uint2> || metal::is_same_v<V, uint3> ||
                          metal::is_same_v<V, ushort2> || metal::is_same_v<V, ushort3>;
  static_assert(
      !ScalarOnly || scalar, "this position attribute's parameter must be uint or ushort");
  static_assert(
      ScalarOnly || scalar || vector,
      "this position attribute's parameter must be uint, ushort, or a 2- or 3-vector of them");
  const unsigned* p = inv->position[Kind];
  if constexpr (scalar) {
    return V(p[0]);
  } else {
    V v;
    for (int i = 0; i < __msl_ncomp<V>; ++i)
      v[i] = __msl_elem_t<V>(p[i]);
    return v;
  }
}

struct __msl_registrar {
  __msl_registrar(
      const char* host_name,
      __msl_thunk thunk,
      const char* function,
      const char* file,
      unsigned line) {
    __msl_rt_register_kernel(host_name, thunk, function, file, line);
  }
};
