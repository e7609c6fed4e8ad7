// Reference reduction: the sum of `n` values into out[0] and the count of values into count[0].
// Each thread sums a strided slice, simd_sum reduces each simdgroup, the simdgroup sums meet in
// threadgroup memory, simdgroup 0 reduces them and lane 0 adds the threadgroup's total to out[0]
// with a float atomic. Tests mutate this file; keep the mutated lines unique.
#include <metal_stdlib>
using namespace metal;

#define instantiate_kernel(name, func, ...) \
  template [[host_name(name)]] [[kernel]] decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;

struct ReduceParams {
  uint n;
};

template <typename T>
[[kernel]] void reduce_sum(
    device const T* in [[buffer(0)]],
    device atomic<float>* out [[buffer(1)]],
    device atomic_uint* count [[buffer(2)]],
    constant ReduceParams& params [[buffer(3)]],
    uint group [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint threads [[threads_per_threadgroup]],
    uint groups [[threadgroups_per_grid]],
    ushort lane [[thread_index_in_simdgroup]],
    ushort sg [[simdgroup_index_in_threadgroup]],
    ushort sg_count [[simdgroups_per_threadgroup]]) {
  threadgroup float partial[32];
  float acc = 0.0f;
  uint seen = 0;
  for (uint i = group * threads + tid; i < params.n; i += groups * threads) {
    acc += float(in[i]);
    seen += 1;
  }
  atomic_fetch_add_explicit(count, seen, memory_order_relaxed);
  acc = simd_sum(acc);
  if (lane == 0) {
    partial[sg] = acc;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    float total = simd_sum(lane < sg_count ? partial[lane] : 0.0f);
    if (lane == 0) {
      atomic_fetch_add_explicit(out, total, memory_order_relaxed);
    }
  }
}

instantiate_kernel("reduce_sum_float32", reduce_sum, float)
instantiate_kernel("reduce_sum_float16", reduce_sum, half)
