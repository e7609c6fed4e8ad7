// Valid MSL in the style of MLX's kernels that the shim must accept (and run): layered headers
// idioms, STEEL-style constants, a BaseMMAFrag-like fragment type, namespaces, function-like
// vector constructors, half literals, precise/fast math, type traits and old-style `kernel`.
#include <metal_stdlib>
#include <metal_simdgroup>
#include <metal_simdgroup_matrix>
using namespace metal;

#ifndef __METAL_VERSION__
#error "__METAL_VERSION__ must be defined"
#endif
#if __METAL_VERSION__ < 310
#error "expected MSL 3.1"
#endif
#if defined(__HAVE_BFLOAT__)
typedef bfloat bfloat16_t;
#endif
#if defined(__x86_64__) || defined(__linux__)
#error "host macros must not leak into MSL"
#endif

#define METAL_FUNC inline __attribute__((always_inline))
#define STEEL_CONST static constant constexpr const
#define STEEL_PRAGMA_UNROLL _Pragma("clang loop unroll(full)")
#define MLX_MTL_CONST static constant constexpr const
MLX_MTL_CONST int SIMD_SIZE = 32;

namespace lowbit {

template <typename T>
struct Frag {
  STEEL_CONST int kElemsPerFrag = 2;
  typedef metal::simdgroup_matrix<T, 8, 8> mat_type;
  typedef metal::vec<T, kElemsPerFrag> frag_type;

  METAL_FUNC static constexpr short2 get_coord(ushort lane) {
    const short qid = lane / 4;
    const short fm = (qid & 4) + ((lane / 2) % 4);
    const short fn = (qid & 2) * 2 + (lane % 2) * 2;
    return short2{fn, fm};
  }

  METAL_FUNC static void mma(thread frag_type& D, thread frag_type& A, thread frag_type& B, thread frag_type& C) {
    mat_type D_mat, A_mat, B_mat, C_mat;
    reinterpret_cast<thread frag_type&>(A_mat.thread_elements()) = A;
    reinterpret_cast<thread frag_type&>(B_mat.thread_elements()) = B;
    reinterpret_cast<thread frag_type&>(C_mat.thread_elements()) = C;
    simdgroup_multiply_accumulate(D_mat, A_mat, B_mat, C_mat);
    D = reinterpret_cast<thread frag_type&>(D_mat.thread_elements());
  }
};

template <typename T, typename U = float, enable_if_t<is_floating_point_v<T>, bool> = true>
METAL_FUNC U softplus(T x) {
  if constexpr (is_same_v<T, half>) {
    return U(log(1.0h + exp(x)));
  } else {
    return U(metal::precise::log(1.0f + metal::fast::exp(float(x))));
  }
}

// out[i] = identity(8x8) * in, through fragments, plus checks of assorted idioms.
template <typename T, int N>
[[kernel, max_total_threads_per_threadgroup(32)]] void frag_identity(
    const device T* in [[buffer(0)]],
    device float* out [[buffer(1)]],
    ushort lane [[thread_index_in_simdgroup]]) {
  using F = Frag<T>;
  threadgroup T tile[8][8 + 16 / sizeof(T)];  // padded like MLX's tiles
  const short2 c = F::get_coord(lane);
  STEEL_PRAGMA_UNROLL
  for (short j = 0; j < 2; j++) {
    tile[c.y][c.x + j] = in[c.y * 8 + c.x + j];
  }
  simdgroup_barrier(mem_flags::mem_threadgroup);
  typename F::frag_type a = {tile[c.y][c.x], tile[c.y][c.x + 1]};
  typename F::frag_type eye = typename F::frag_type(T(c.x == c.y), T(c.x + 1 == c.y));
  typename F::frag_type zero = typename F::frag_type(T(0));
  typename F::frag_type d;
  F::mma(d, eye, a, zero);
  thread const auto& e = d;
  out[c.y * 8 + c.x] = float(e[0]) + softplus(T(0)) * 0.0f;
  out[c.y * 8 + c.x + 1] = float(e[1]) + float(N - N) + float(SIMD_SIZE - 32);
}

#define instantiate_kernel(name, func, ...) \
  template [[host_name(name)]] [[kernel]] decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;
#define instantiate_identity(tname, type) instantiate_kernel("frag_identity_" #tname, frag_identity, type, 4)

instantiate_identity(float32, float)
instantiate_identity(float16, half)
instantiate_identity(bfloat16, bfloat16_t)

}  // namespace lowbit

// Old-style `kernel` keyword, uint3 positions and vector conversions.
kernel void convert(device const half4* in [[buffer(0)]], device float4* out [[buffer(1)]],
                    uint3 gid [[thread_position_in_grid]]) {
  const float4 f = float4(in[gid.x]);
  const int4 n = static_cast<int4>(f);
  out[gid.x] = float4(f.xy, float2(n.zw)) * metal::numeric_limits<float>::epsilon() / FLT_EPSILON + float4(0.0h);
}
