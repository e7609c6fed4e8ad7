// Kernels that report their positions and threadgroup memory, for the dispatch tests.
#include <metal_stdlib>
using namespace metal;

// Every position attribute of every thread, 20 uints per thread at its linear grid position
// (in the various uint/ushort/vector forms).
[[kernel]] void positions(
    device uint* out [[buffer(0)]],
    uint3 tpig [[thread_position_in_grid]],
    ushort3 tpitg [[thread_position_in_threadgroup]],
    uint2 tgpig [[threadgroup_position_in_grid]],
    ushort3 tptg [[threads_per_threadgroup]],
    uint3 tgpg [[threadgroups_per_grid]],
    uint3 tpg [[threads_per_grid]],
    uint tiitg [[thread_index_in_threadgroup]],
    ushort tiisg [[thread_index_in_simdgroup]],
    ushort sgitg [[simdgroup_index_in_threadgroup]],
    uint sgptg [[simdgroups_per_threadgroup]],
    uint tpsg [[threads_per_simdgroup]]) {
  device uint* o = out + ((tpig.z * tpg.y + tpig.y) * tpg.x + tpig.x) * 20;
  o[0] = tpig.x; o[1] = tpig.y; o[2] = tpig.z;
  o[3] = tpitg.x; o[4] = tpitg.y; o[5] = tpitg.z;
  o[6] = tgpig.x; o[7] = tgpig.y;
  o[8] = tptg.x; o[9] = tptg.y; o[10] = tptg.z;
  o[11] = tgpg.x; o[12] = tgpg.y; o[13] = tgpg.z;
  o[14] = tpg.x; o[15] = tpg.y;
  o[16] = tiitg; o[17] = tiisg; o[18] = sgitg * 100 + sgptg; o[19] = tpsg;
}

// The x components through the scalar forms.
[[kernel]] void positions_scalar(
    device uint* out [[buffer(0)]],
    uint gid [[thread_position_in_grid]],
    ushort lid [[thread_position_in_threadgroup]],
    uint group [[threadgroup_position_in_grid]],
    ushort size [[threads_per_threadgroup]]) {
  out[gid * 4 + 0] = gid;
  out[gid * 4 + 1] = lid;
  out[gid * 4 + 2] = group;
  out[gid * 4 + 3] = size;
}

// Order in which threadgroups ran.
[[kernel]] void threadgroup_order(device atomic_uint* next [[buffer(0)]], device uint* order [[buffer(1)]],
                                  uint group [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid == 0) {
    order[atomic_fetch_add_explicit(next, 1u, memory_order_relaxed)] = group;
  }
}

// Reads threadgroup memory before writing it: the runtime's poison shows through.
[[kernel]] void read_before_write(
    device uint* out_static [[buffer(0)]],
    device ushort* out_dynamic [[buffer(1)]],
    threadgroup half* dynamic_tg [[threadgroup(0)]],
    uint tid [[thread_index_in_threadgroup]],
    uint gid [[thread_position_in_grid]]) {
  threadgroup float static_tg[64];
  out_static[gid] = as_type<uint>(static_tg[tid]);
  out_dynamic[gid] = as_type<ushort>(dynamic_tg[tid]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  static_tg[tid] = 1.0f;
  dynamic_tg[tid] = 1.0h;
}

// 16 KiB of static threadgroup memory plus whatever [[threadgroup(0)]] the host gives.
[[kernel]] void static_and_dynamic(
    device float* out [[buffer(0)]],
    threadgroup float* dynamic_tg [[threadgroup(0)]],
    uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float static_tg[4096];
  static_tg[tid] = 1.0f;
  dynamic_tg[tid] = float(tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = static_tg[(tid + 1) % 32] + dynamic_tg[(tid + 1) % 32];
}

// 32 KiB + 4 bytes of static threadgroup memory: over Apple's limit.
[[kernel]] void too_much_threadgroup_memory(device float* out [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  threadgroup float a[4096];
  threadgroup float b[4097];
  a[tid] = 1.0f;
  b[tid] = 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = a[tid] + b[tid];
}

struct Scale {
  float factor;
  uint n;
};

// Two passes over shared buffers, for run_sequence.
[[kernel]] void scale(device float* x [[buffer(0)]], constant Scale& s [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  if (i < s.n) {
    x[i] *= s.factor;
  }
}
[[kernel]] void sum_into(device const float* x [[buffer(0)]], device atomic<float>* total [[buffer(1)]],
                         constant Scale& s [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i < s.n) {
    atomic_fetch_add_explicit(total, x[i], memory_order_relaxed);
  }
}
