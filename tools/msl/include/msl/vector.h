// MSL vector types as clang ext_vector_type (swizzles, element-wise arithmetic, no implicit
// conversions under -flax-vector-conversions=none) plus MSL's vector constructors.
#pragma once
#include "type_traits.h"

#define __MSL_VECTORS(T, name)                           \
  typedef T name##2 __attribute__((ext_vector_type(2))); \
  typedef T name##3 __attribute__((ext_vector_type(3))); \
  typedef T name##4 __attribute__((ext_vector_type(4))); \
  namespace metal {                                      \
  using ::name##2;                                       \
  using ::name##3;                                       \
  using ::name##4;                                       \
  }
__MSL_VECTORS(float, float)
__MSL_VECTORS(half, half)
__MSL_VECTORS(bfloat, bfloat)
__MSL_VECTORS(char, char)
__MSL_VECTORS(uchar, uchar)
__MSL_VECTORS(short, short)
__MSL_VECTORS(ushort, ushort)
__MSL_VECTORS(int, int)
__MSL_VECTORS(uint, uint)
__MSL_VECTORS(long, long)
__MSL_VECTORS(ulong, ulong)
#undef __MSL_VECTORS

namespace metal {
template <class T, int N>
using vec = T __attribute__((ext_vector_type(N)));
} // namespace metal

// `float4(a, b.xy)`: the rewrite turns a call of a vector type name (or vec<T, N>) into a call of
// this function, which counts components at compile time as Apple's compiler does.
template <class V, class A>
constexpr void __msl_vec_put(V& r, int& i, A a) {
  if constexpr (__msl_is_vec<A>) {
    for (int k = 0; k < __msl_ncomp<A>; ++k)
      r[i++] = a[k];
  } else {
    r[i++] = static_cast<__msl_elem_t<V>>(a);
  }
}

template <class A>
constexpr A __msl_first(A a) {
  return a;
}

template <class V, class... A>
constexpr V __msl_vec_ctor(A... a) {
  static_assert(__msl_is_vec<V>, "__msl_vec_ctor: not a vector type");
  typedef __msl_elem_t<V> E;
  constexpr int N = __msl_ncomp<V>;
  if constexpr (sizeof...(A) == 0) {
    return V(E(0));
  } else if constexpr (sizeof...(A) == 1 && !(__msl_is_vec<A> || ...)) {
    static_assert(
        (metal::is_arithmetic_v<A> && ...),
        "vector constructor: argument is not a scalar or vector");
    return V(static_cast<E>(__msl_first(a...)));
  } else if constexpr (sizeof...(A) == 1) {
    static_assert(
        ((__msl_ncomp<A> == N) && ...),
        "vector constructor: converting a vector needs the same number of components");
    return __builtin_convertvector(__msl_first(a...), V);
  } else {
    static_assert(
        (__msl_ncomp<A> + ...) == N,
        "vector constructor: the arguments do not supply exactly as many components as the vector "
        "has");
    static_assert(
        ((!__msl_is_vec<A> || metal::is_same_v<__msl_elem_t<A>, E>) && ...),
        "vector constructor: a vector argument's element type differs from the vector's");
    static_assert(
        ((__msl_is_vec<A> || metal::is_arithmetic_v<A>) && ...),
        "vector constructor: argument is not a scalar or vector");
    V r = V(E(0));
    int i = 0;
    (__msl_vec_put(r, i, a), ...);
    return r;
  }
}
// `T(a, ...)` where T may be a vector (a template parameter, a typedef): the rewrite calls this.
template <class T, class... A>
constexpr T __msl_construct(A... a) {
  // By value: MSL constructor arguments are values, and a vector element
  // (v[i], v.y) cannot bind to a reference.
  if constexpr (__msl_is_vec<T>) {
    return __msl_vec_ctor<T>(a...);
  } else {
    return T(static_cast<A&&>(a)...);
  }
}
namespace metal {
using ::__msl_construct;
using ::__msl_vec_ctor;
} // namespace metal

// bool vectors: a struct, because clang's bool ext vectors have no swizzles. Comparisons of
// vectors yield int-mask vectors in clang; bool vectors accept them.
template <int N>
struct __msl_boolvec;
#define __MSL_BOOLVEC_COMMON(N)                                                           \
  __msl_boolvec() = default;                                                              \
  template <class V, metal::enable_if_t<__msl_is_vec<V> && __msl_ncomp<V> == N, int> = 0> \
  constexpr __msl_boolvec(V v) {                                                          \
    for (int i = 0; i < N; ++i)                                                           \
      (*this)[i] = v[i] != 0;                                                             \
  }                                                                                       \
  constexpr bool& operator[](int i) {                                                     \
    return (&x)[i];                                                                       \
  }                                                                                       \
  constexpr bool operator[](int i) const {                                                \
    return (&x)[i];                                                                       \
  }                                                                                       \
  constexpr __msl_boolvec operator!() const {                                             \
    __msl_boolvec r = *this;                                                              \
    for (int i = 0; i < N; ++i)                                                           \
      r[i] = !r[i];                                                                       \
    return r;                                                                             \
  }                                                                                       \
  friend constexpr __msl_boolvec operator&&(__msl_boolvec a, __msl_boolvec b) {           \
    for (int i = 0; i < N; ++i)                                                           \
      a[i] = a[i] && b[i];                                                                \
    return a;                                                                             \
  }                                                                                       \
  friend constexpr __msl_boolvec operator||(__msl_boolvec a, __msl_boolvec b) {           \
    for (int i = 0; i < N; ++i)                                                           \
      a[i] = a[i] || b[i];                                                                \
    return a;                                                                             \
  }
template <>
struct __msl_boolvec<2> {
  bool x, y;
  constexpr __msl_boolvec(bool a) : x(a), y(a) {}
  constexpr __msl_boolvec(bool a, bool b) : x(a), y(b) {}
  __MSL_BOOLVEC_COMMON(2)
};
template <>
struct __msl_boolvec<3> {
  bool x, y, z;
  constexpr __msl_boolvec(bool a) : x(a), y(a), z(a) {}
  constexpr __msl_boolvec(bool a, bool b, bool c) : x(a), y(b), z(c) {}
  __MSL_BOOLVEC_COMMON(3)
};
template <>
struct __msl_boolvec<4> {
  bool x, y, z, w;
  constexpr __msl_boolvec(bool a) : x(a), y(a), z(a), w(a) {}
  constexpr __msl_boolvec(bool a, bool b, bool c, bool d) : x(a), y(b), z(c), w(d) {}
  __MSL_BOOLVEC_COMMON(4)
};
#undef __MSL_BOOLVEC_COMMON
typedef __msl_boolvec<2> bool2;
typedef __msl_boolvec<3> bool3;
typedef __msl_boolvec<4> bool4;
namespace metal {
using ::bool2;
using ::bool3;
using ::bool4;
} // namespace metal

// Column-major matrices (floatCxR / halfCxR): storage, column access and constructors.
namespace metal {
template <class T, int C, int R>
struct matrix {
  vec<T, R> columns[C];
  matrix() = default;
  constexpr explicit matrix(T diagonal) {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r)
        columns[c][r] = c == r ? diagonal : T(0);
  }
  template <class... V, enable_if_t<sizeof...(V) == C && (is_same_v<V, vec<T, R>> && ...), int> = 0>
  constexpr matrix(V... cols) : columns{cols...} {}
  template <class U>
  constexpr explicit matrix(const matrix<U, C, R>& m) {
    for (int c = 0; c < C; ++c)
      columns[c] = __builtin_convertvector(m.columns[c], vec<T, R>);
  }
  constexpr vec<T, R>& operator[](int c) {
    return columns[c];
  }
  constexpr const vec<T, R>& operator[](int c) const {
    return columns[c];
  }
};
} // namespace metal
#define __MSL_MATRICES(T)                \
  typedef metal::matrix<T, 2, 2> T##2x2; \
  typedef metal::matrix<T, 2, 3> T##2x3; \
  typedef metal::matrix<T, 2, 4> T##2x4; \
  typedef metal::matrix<T, 3, 2> T##3x2; \
  typedef metal::matrix<T, 3, 3> T##3x3; \
  typedef metal::matrix<T, 3, 4> T##3x4; \
  typedef metal::matrix<T, 4, 2> T##4x2; \
  typedef metal::matrix<T, 4, 3> T##4x3; \
  typedef metal::matrix<T, 4, 4> T##4x4;
__MSL_MATRICES(float)
__MSL_MATRICES(half)
#undef __MSL_MATRICES

// metal::array<T, N>
namespace metal {
template <class T, size_t N>
struct array {
  T __elems[N > 0 ? N : 1];
  constexpr T& operator[](size_t i) {
    return __elems[i];
  }
  constexpr const T& operator[](size_t i) const {
    return __elems[i];
  }
  static constexpr size_t size() {
    return N;
  }
  constexpr T* begin() {
    return __elems;
  }
  constexpr T* end() {
    return __elems + N;
  }
  constexpr const T* begin() const {
    return __elems;
  }
  constexpr const T* end() const {
    return __elems + N;
  }
};
} // namespace metal
