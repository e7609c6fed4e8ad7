// Device and threadgroup atomics: every thread updates shared counters.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void atomics(
    device atomic_uint* u [[buffer(0)]],
    device atomic_int* s [[buffer(1)]],
    device atomic<float>* f [[buffer(2)]],
    device uint* per_group [[buffer(3)]],
    uint gid [[thread_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]],
    uint group [[threadgroup_position_in_grid]]) {
  threadgroup atomic_uint in_group;
  threadgroup atomic_int tg_max;
  if (tid == 0) {
    atomic_store_explicit(&in_group, 0u, memory_order_relaxed);
    atomic_store_explicit(&tg_max, -1, memory_order_relaxed);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&u[0], 1u, memory_order_relaxed);
  atomic_fetch_max_explicit(&u[1], gid, memory_order_relaxed);
  atomic_fetch_or_explicit(&u[2], 1u << (gid % 32), memory_order_relaxed);
  uint expected = 0;
  atomic_compare_exchange_weak_explicit(&u[3], &expected, gid + 1, memory_order_relaxed, memory_order_relaxed);
  atomic_exchange_explicit(&u[4], gid, memory_order_relaxed);
  atomic_fetch_min_explicit(&s[0], -int(gid), memory_order_relaxed);
  atomic_fetch_sub_explicit(&s[1], 2, memory_order_relaxed);
  atomic_fetch_add_explicit(&f[0], 0.5f, memory_order_relaxed);
  atomic_fetch_sub_explicit(&f[1], 0.25f, memory_order_relaxed);
  atomic_fetch_add_explicit(&in_group, 1u, memory_order_relaxed);
  atomic_fetch_max_explicit(&tg_max, int(tid), memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    per_group[group * 2 + 0] = atomic_load_explicit(&in_group, memory_order_relaxed);
    per_group[group * 2 + 1] = uint(atomic_load_explicit(&tg_max, memory_order_relaxed));
  }
}
