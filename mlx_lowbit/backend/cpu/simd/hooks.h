// Copyright © 2026 mlx-lowbit contributors.
//
// The hooks each ISA file defines before including simd_kernels.h, and the
// helpers every kernel uses.
//
// One piece of simd_kernels.h, which includes the pieces in order, once per
// ISA file and inside its anonymous namespace. So no include guard and no
// includes here: every definition must stay internal to that ISA's object
// file (see kernel_abi.h for why).
#ifndef LOWBIT_SIMD_KERNELS_PIECE
#error "include mlx_lowbit/backend/cpu/simd_kernels.h from an ISA file instead"
#endif

// The contract: kernels_avx512.cpp, kernels_avx2.cpp and kernels_neon.cpp
// each define, inside an anonymous namespace and before including
// simd_kernels.h,
//   LOWBIT_SIMD_BYTES          vector width in bytes (64, 32, 16), then
//                              include simd_types.h for W, vf, vi, vu, vq, vb
//   LOWBIT_SIMD_MR             rows of x per GEMM micro-tile
//   LOWBIT_SIMD_PERMUTE_CODES  1 with vf permute_codes(vu idx): lane i =
//                              {0,1,2,0}[idx_i & 3] by a table permute
//   LOWBIT_SIMD_PATTERN_MASK   1 with vf add_pattern16(vf acc, const
//                              uint16_t* pattern, int sub, vf x): acc + x in
//                              the lanes i where bit sub*W + i of the 16-bit
//                              pattern is set (the pattern is the lane
//                              mask), and vf pattern_codes16(const uint16_t*
//                              pattern, int sub): those bits as 0.0 / 1.0
//                              (may load 2 bytes past the pattern);
//                              otherwise add_if serves
//   LOWBIT_SIMD_WIDE_CODES     1 if dot4 takes codes up to 128 (u8 x s8
//                              products without overflow), else 0
//   vi dot4(vi acc, vi a, vi b)  acc + the sum of the 4 byte products in each
//                                32-bit lane; a holds non-negative codes
//                                (0..2, or 0..128 with WIDE_CODES), b int8
//                                activations
//   vb bits_to_bytes(uint64_t)   the low 4*W bits as 0/1 bytes, bit i -> byte i
//   vi broadcast128(const void*) 16 bytes loaded into every 128-bit lane
//   vf add_if(vf acc, vu word, vu bit, vf x)  acc + x in the lanes where
//                                (word & bit) != 0 (a masked add)
//   vi round_even(vf)            to the nearest integer, ties to even
//   float half_to_float1(uint16_t); void half_to_float_w(const uint16_t*, float*);
//   void float_to_half_w(const float*, uint16_t*)   (W values, IEEE float16)

// Loops over register arrays must be unrolled, or the arrays live in memory.
#if defined(__clang__)
#define LOWBIT_UNROLL _Pragma("unroll")
#else
#define LOWBIT_UNROLL _Pragma("GCC unroll 16")
#endif

template <class V, class T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V, class T>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}
inline vu splatu(uint32_t s) {
  return vu{} + s;
}
inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < W; ++i) {
    s += v[i];
  }
  return s;
}
inline int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}
inline int imin(int a, int b) {
  return a < b ? a : b;
}
template <class T>
inline float dot(const float* a, const T* b, int n) {
  vf acc{};
  int i = 0;
  for (; i + W <= n; i += W) {
    vf bv;
    if constexpr (std::is_same<T, float>::value) {
      bv = load<vf>(b + i);
    } else {
      bv = __builtin_convertvector(load<vi>(b + i), vf);
    }
    acc += load<vf>(a + i) * bv;
  }
  float s = hsum(acc);
  for (; i < n; ++i) {
    s += a[i] * float(b[i]);
  }
  return s;
}

template <class F>
void trampoline(void* ctx, int begin, int end) {
  (*static_cast<F*>(ctx))(begin, end);
}
template <class F>
void parallel(const mlx_lowbit::cpu::MatmulArgs& a, int n, F& body) {
  a.parallel(n, &trampoline<F>, &body);
}

// Scratch that every path frees on every exit.
struct Buffer {
  void* p = nullptr;
  Buffer() = default;
  explicit Buffer(size_t bytes) : p(std::malloc(bytes ? bytes : 1)) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    std::free(p);
  }
  // Replaces the memory; false if it could not be allocated.
  bool allocate(size_t bytes) {
    std::free(p);
    p = std::malloc(bytes ? bytes : 1);
    return p != nullptr;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

using mlx_lowbit::cpu::MatmulArgs;
using mlx_lowbit::cpu::PackedWeight;
using Format = lowbit::Format;
