// Kernels that write what MSL builtins return, for comparison with numpy.
#include <metal_stdlib>
using namespace metal;

// half arithmetic rounds after every operation: 2048 + 1 + 1 is 2048 in half, 2050 in float.
[[kernel]] void half_arithmetic(
    device const half* in [[buffer(0)]],
    device half* out_half [[buffer(1)]],
    device float* out_float [[buffer(2)]]) {
  half big = in[0], one = in[1];
  out_half[0] = big + one + one;
  half h = 2048.0h;
  h += 1.0h;
  h += 1.0h;
  out_half[1] = h;
  out_half[2] = in[2] * in[2];  // 300 * 300 overflows half
  out_half[3] = half(float(big) + float(one) + float(one));
  out_float[0] = float(big) + float(one) + float(one);
  out_float[1] = big + one + one;
}

// bfloat conversion rounds to nearest even.
[[kernel]] void bfloat_rounding(device const float* in [[buffer(0)]], device bfloat* out [[buffer(1)]],
                                uint i [[thread_position_in_grid]]) {
  out[i] = bfloat(in[i]);
}

// bfloat arithmetic rounds after every operation: 256 + 1 + 1 is 256 in bfloat.
[[kernel]] void bfloat_arithmetic(device const bfloat* in [[buffer(0)]], device bfloat* out [[buffer(1)]]) {
  out[0] = in[0] + in[1] + in[1];
  out[1] = bfloat(float(in[0]) + float(in[1]) + float(in[1]));
}

// Per lane: the simd_* collectives of the lane's value.
[[kernel]] void simd_functions(
    device const float* in [[buffer(0)]],
    device float* out [[buffer(1)]],
    uint gid [[thread_position_in_grid]],
    ushort lane [[thread_index_in_simdgroup]]) {
  const float x = in[gid];
  device float* o = out + gid * 13;
  o[0] = simd_sum(x);
  o[1] = simd_max(x);
  o[2] = simd_min(x);
  o[3] = simd_prefix_exclusive_sum(x);
  o[4] = simd_prefix_inclusive_sum(x);
  o[5] = simd_shuffle(x, (lane + 5) % 32);
  o[6] = simd_shuffle_down(x, 3);
  o[7] = simd_shuffle_up(x, 3);
  o[8] = simd_shuffle_xor(x, 6);
  o[9] = simd_broadcast(x, 7);
  o[10] = float(ulong(simd_ballot(x > 0.0f)) & 0xffffff);
  o[11] = simd_is_first() ? 1.0f : 0.0f;
  o[12] = simd_all(x > -100.0f) && simd_any(x > 10.0f) ? 1.0f : 0.0f;
}

// simd_sum over the lanes still running after some returned: returned lanes do not take part.
[[kernel]] void simd_sum_after_return(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  if (lane >= 20) {
    return;
  }
  out[lane] = simd_sum(1.0f);
}

// Integer, common and math functions of one input per thread.
[[kernel]] void scalar_functions(
    device const uint* in_u [[buffer(0)]],
    device const float* in_f [[buffer(1)]],
    device uint* out_u [[buffer(2)]],
    device float* out_f [[buffer(3)]],
    uint i [[thread_position_in_grid]]) {
  const uint u = in_u[i];
  const float f = in_f[i];
  device uint* ou = out_u + i * 10;
  ou[0] = popcount(u);
  ou[1] = clz(u);
  ou[2] = ctz(u);
  ou[3] = extract_bits(u, 4u, 8u);
  ou[4] = as_type<uint>(f);
  ou[5] = select(1u, 2u, f > 0.0f);
  ou[6] = clamp(u, 10u, 1000u);
  ou[7] = uint(extract_bits(int(u), 0u, 4u) + 8);  // sign-extended 4-bit field, biased
  ou[8] = max(u, 7u) - min(u, 7u);
  ou[9] = uint(abs(int(u % 1000u) - 100));
  device float* of = out_f + i * 12;
  of[0] = exp(f);
  of[1] = precise::exp(f);
  of[2] = fast::exp(f);
  of[3] = log(abs(f) + 1.0f);
  of[4] = sqrt(abs(f));
  of[5] = rsqrt(abs(f) + 1.0f);
  of[6] = fma(f, 2.0f, 1.0f);
  of[7] = clamp(f, -0.5f, 0.5f);
  of[8] = select(f, -f, f < 0.0f);
  of[9] = metal::numeric_limits<float>::max();
  of[10] = float(metal::numeric_limits<half>::max());
  of[11] = tanh(f) + float(exp(half(f)));
}

// Vector constructors, swizzles and element-wise conversions.
[[kernel]] void vectors(device const float4* in [[buffer(0)]], device float4* out [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  const float4 v = in[i];
  const half4 h = half4(v);                 // element-wise conversion
  const int4 n = static_cast<int4>(v);      // element-wise conversion, not a bit cast
  float4 w = float4(v.xy, float2(h.zw));
  w.x += float(n.x);
  out[i * 3 + 0] = w;
  out[i * 3 + 1] = float4(v.wzyx.xy, 1.0f, 2.0f) + float4(3.0f);
  out[i * 3 + 2] = select(v, float4(0.0f), v < float4(0.0f)) + dot(v, v) * float4(0.0f, 0.0f, 0.0f, 1.0f);
}
