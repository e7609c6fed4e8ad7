// simdgroup_matrix load/store/multiply in isolation, and the lane layout of thread_elements().
#include <metal_stdlib>
using namespace metal;

// Lane l writes its two thread_elements() of an 8x8 matrix loaded from `in` (ld 16) at `origin`,
// plainly and transposed, for each element type.
template <typename T>
[[kernel]] void fragment_layout(
    device const T* in [[buffer(0)]],
    device T* out [[buffer(1)]],
    constant uint2& origin [[buffer(2)]],
    ushort lane [[thread_index_in_simdgroup]]) {
  simdgroup_matrix<T, 8, 8> m;
  simdgroup_load(m, in, 16, ulong2(origin), false);
  out[lane * 2 + 0] = m.thread_elements()[0];
  out[lane * 2 + 1] = m.thread_elements()[1];
  simdgroup_load(m, in, 16, ulong2(origin), true);
  out[64 + lane * 2 + 0] = m.thread_elements()[0];
  out[64 + lane * 2 + 1] = m.thread_elements()[1];
}
template [[host_name("fragment_layout_float32")]] [[kernel]] decltype(fragment_layout<float>) fragment_layout<float>;
template [[host_name("fragment_layout_float16")]] [[kernel]] decltype(fragment_layout<half>) fragment_layout<half>;
template [[host_name("fragment_layout_bfloat16")]] [[kernel]] decltype(fragment_layout<bfloat>) fragment_layout<bfloat>;

// out (16x16) = store of 2*I at (0, 0), of a * b + c at (8, 0) and of (a * b)^T at (0, 8) through
// threadgroup memory; a, b, c are 8x8 from `in` (float, consecutive).
[[kernel]] void store_and_multiply(
    device const float* in [[buffer(0)]],
    device float* out [[buffer(1)]],
    ushort lane [[thread_index_in_simdgroup]]) {
  threadgroup float staged[256];
  simdgroup_float8x8 diagonal = simdgroup_float8x8(2.0f);
  simdgroup_float8x8 a, b, c, d;
  simdgroup_load(a, in);
  simdgroup_load(b, in + 64);
  simdgroup_load(c, in + 128);
  simdgroup_multiply_accumulate(d, a, b, c);
  simdgroup_store(diagonal, staged, 16);
  simdgroup_store(d, staged, 16, ulong2(8, 0));
  simdgroup_multiply(d, a, b);
  simdgroup_store(d, staged, 16, ulong2(0, 8), true);
  simdgroup_float8x8 filled = make_filled_simdgroup_matrix<float, 8, 8>(-1.0f);
  simdgroup_store(filled, staged + 8 * 16 + 8, 16);
  simdgroup_barrier(mem_flags::mem_threadgroup);
  for (uint i = lane; i < 256; i += 32) {
    out[i] = staged[i];
  }
}

// half and bfloat products accumulate in fp32 and round once.
template <typename T>
[[kernel]] void multiply_low_precision(device const T* in [[buffer(0)]], device float* out [[buffer(1)]]) {
  simdgroup_matrix<T, 8, 8> a, b;
  simdgroup_float8x8 d = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  simdgroup_load(a, in);
  simdgroup_load(b, in + 64);
  simdgroup_multiply_accumulate(d, a, b, d);
  simdgroup_store(d, out);
}
template [[host_name("multiply_float16")]] [[kernel]] decltype(multiply_low_precision<half>) multiply_low_precision<half>;
template [[host_name("multiply_bfloat16")]] [[kernel]] decltype(multiply_low_precision<bfloat>) multiply_low_precision<bfloat>;
