// metal:: type traits (the subset MLX-style templates use) and the shim's vector traits.
#pragma once
#include "prelude.h"

namespace metal {

template <class T, T v>
struct integral_constant {
  static constexpr T value = v;
  typedef T value_type;
  typedef integral_constant type;
  constexpr operator value_type() const {
    return value;
  }
  constexpr value_type operator()() const {
    return value;
  }
};
template <bool B>
using bool_constant = integral_constant<bool, B>;
typedef bool_constant<true> true_type;
typedef bool_constant<false> false_type;

template <bool B, class T = void>
struct enable_if {};
template <class T>
struct enable_if<true, T> {
  typedef T type;
};
template <bool B, class T = void>
using enable_if_t = typename enable_if<B, T>::type;

template <bool B, class T, class F>
struct conditional {
  typedef T type;
};
template <class T, class F>
struct conditional<false, T, F> {
  typedef F type;
};
template <bool B, class T, class F>
using conditional_t = typename conditional<B, T, F>::type;

template <class T, class U>
struct is_same : false_type {};
template <class T>
struct is_same<T, T> : true_type {};
template <class T, class U>
constexpr bool is_same_v = is_same<T, U>::value;

template <class T>
struct remove_const {
  typedef T type;
};
template <class T>
struct remove_const<const T> {
  typedef T type;
};
template <class T>
struct remove_volatile {
  typedef T type;
};
template <class T>
struct remove_volatile<volatile T> {
  typedef T type;
};
template <class T>
struct remove_cv {
  typedef typename remove_volatile<typename remove_const<T>::type>::type type;
};
template <class T>
struct remove_reference {
  typedef T type;
};
template <class T>
struct remove_reference<T&> {
  typedef T type;
};
template <class T>
struct remove_reference<T&&> {
  typedef T type;
};
template <class T>
struct remove_pointer {
  typedef T type;
};
template <class T>
struct remove_pointer<T*> {
  typedef T type;
};
template <class T>
struct remove_pointer<T* const> {
  typedef T type;
};
template <class T>
struct remove_address_space {
  typedef T type;
};
template <class T>
struct remove_address_space<__msl_device T> {
  typedef T type;
};
template <class T>
struct remove_address_space<__msl_threadgroup T> {
  typedef T type;
};
template <class T>
struct remove_cvref {
  typedef typename remove_cv<typename remove_reference<T>::type>::type type;
};
template <class T>
using remove_const_t = typename remove_const<T>::type;
template <class T>
using remove_cv_t = typename remove_cv<T>::type;
template <class T>
using remove_reference_t = typename remove_reference<T>::type;
template <class T>
using remove_pointer_t = typename remove_pointer<T>::type;
template <class T>
using remove_cvref_t = typename remove_cvref<T>::type;
template <class T>
using remove_address_space_t = typename remove_address_space<T>::type;

template <class... T>
using void_t = void;
template <class T>
T&& declval();

template <class T>
struct is_pointer : false_type {};
template <class T>
struct is_pointer<T*> : true_type {};
template <class T>
struct is_pointer<T* const> : true_type {};
template <class T>
constexpr bool is_pointer_v = is_pointer<T>::value;
template <class T>
struct is_reference : false_type {};
template <class T>
struct is_reference<T&> : true_type {};
template <class T>
struct is_reference<T&&> : true_type {};
template <class T>
constexpr bool is_reference_v = is_reference<T>::value;
template <class T>
struct is_const : false_type {};
template <class T>
struct is_const<const T> : true_type {};
template <class T>
constexpr bool is_const_v = is_const<T>::value;

namespace __msl_detail {
template <class T>
struct is_integral : false_type {};
template <>
struct is_integral<bool> : true_type {};
template <>
struct is_integral<char> : true_type {};
template <>
struct is_integral<signed char> : true_type {};
template <>
struct is_integral<unsigned char> : true_type {};
template <>
struct is_integral<short> : true_type {};
template <>
struct is_integral<unsigned short> : true_type {};
template <>
struct is_integral<int> : true_type {};
template <>
struct is_integral<unsigned int> : true_type {};
template <>
struct is_integral<long> : true_type {};
template <>
struct is_integral<unsigned long> : true_type {};
template <>
struct is_integral<long long> : true_type {};
template <>
struct is_integral<unsigned long long> : true_type {};
template <class T>
struct is_floating_point : false_type {};
template <>
struct is_floating_point<float> : true_type {};
template <>
struct is_floating_point<half> : true_type {};
template <>
struct is_floating_point<bfloat> : true_type {};
} // namespace __msl_detail

template <class T>
struct is_integral : __msl_detail::is_integral<remove_cv_t<T>> {};
template <class T>
constexpr bool is_integral_v = is_integral<T>::value;
template <class T>
struct is_floating_point : __msl_detail::is_floating_point<remove_cv_t<T>> {};
template <class T>
constexpr bool is_floating_point_v = is_floating_point<T>::value;
template <class T>
struct is_arithmetic : bool_constant<is_integral_v<T> || is_floating_point_v<T>> {};
template <class T>
constexpr bool is_arithmetic_v = is_arithmetic<T>::value;
template <class T>
struct is_signed : bool_constant<is_arithmetic_v<T> && (T(-1) < T(0))> {};
template <class T>
constexpr bool is_signed_v = is_signed<T>::value;
template <class T>
struct is_unsigned : bool_constant<is_integral_v<T> && !(T(-1) < T(0))> {};
template <class T>
constexpr bool is_unsigned_v = is_unsigned<T>::value;
template <class T>
struct is_void : is_same<remove_cv_t<T>, void> {};
template <class T>
constexpr bool is_void_v = is_void<T>::value;

template <class T>
struct make_unsigned;
template <>
struct make_unsigned<char> {
  typedef uchar type;
};
template <>
struct make_unsigned<signed char> {
  typedef uchar type;
};
template <>
struct make_unsigned<uchar> {
  typedef uchar type;
};
template <>
struct make_unsigned<short> {
  typedef ushort type;
};
template <>
struct make_unsigned<ushort> {
  typedef ushort type;
};
template <>
struct make_unsigned<int> {
  typedef uint type;
};
template <>
struct make_unsigned<uint> {
  typedef uint type;
};
template <>
struct make_unsigned<long> {
  typedef ulong type;
};
template <>
struct make_unsigned<ulong> {
  typedef ulong type;
};
template <class T>
using make_unsigned_t = typename make_unsigned<T>::type;
template <class T>
struct make_signed;
template <>
struct make_signed<char> {
  typedef char type;
};
template <>
struct make_signed<signed char> {
  typedef signed char type;
};
template <>
struct make_signed<uchar> {
  typedef signed char type;
};
template <>
struct make_signed<short> {
  typedef short type;
};
template <>
struct make_signed<ushort> {
  typedef short type;
};
template <>
struct make_signed<int> {
  typedef int type;
};
template <>
struct make_signed<uint> {
  typedef int type;
};
template <>
struct make_signed<long> {
  typedef long type;
};
template <>
struct make_signed<ulong> {
  typedef long type;
};
template <class T>
using make_signed_t = typename make_signed<T>::type;

// Vectors: clang ext_vector_type(N) of a scalar.
template <class T>
struct vec_traits {
  static constexpr bool is_vector = false;
  static constexpr int size = 1;
  typedef T element_type;
};
template <class T, int N>
struct vec_traits<T __attribute__((ext_vector_type(N)))> {
  static constexpr bool is_vector = true;
  static constexpr int size = N;
  typedef T element_type;
};
template <class T>
struct vec_traits<const T> : vec_traits<T> {};
template <class T>
struct is_vector : bool_constant<vec_traits<T>::is_vector> {};
template <class T>
constexpr bool is_vector_v = is_vector<T>::value;
template <class T>
struct is_scalar : bool_constant<is_arithmetic_v<T>> {};
template <class T>
constexpr bool is_scalar_v = is_scalar<T>::value;

} // namespace metal

// Shorthands the shim uses.
template <class T>
using __msl_elem_t = typename metal::vec_traits<T>::element_type;
template <class T>
constexpr int __msl_ncomp = metal::vec_traits<T>::size;
template <class T>
constexpr bool __msl_is_vec = metal::vec_traits<T>::is_vector;
template <class T>
constexpr bool __msl_is_float_like =
    metal::is_floating_point_v<__msl_elem_t<T>> && !metal::is_same_v<__msl_elem_t<T>, bfloat>;
template <class T>
struct __msl_identity {
  typedef T type;
};
template <class T>
using __msl_identity_t = typename __msl_identity<T>::type;
