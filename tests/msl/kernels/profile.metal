// Access patterns with known costs, for the cost model's own test.
#include <metal_stdlib>
using namespace metal;

// Lane i reads word i * stride: stride 1 uses every byte of the two lines a
// simdgroup touches; stride 16 touches 32 lines, 4 bytes of each.
[[kernel]] void strided(
    device const uint* in [[buffer(0)]],
    device uint* out [[buffer(1)]],
    constant uint& stride [[buffer(2)]],
    uint i [[thread_position_in_grid]]) {
  out[i] = in[i * stride];
}

// Lane i writes and reads word i * stride of threadgroup memory: stride 1 is
// conflict-free, stride 32 puts all 32 lanes on one bank.
[[kernel]] void banks(
    device uint* out [[buffer(0)]],
    constant uint& stride [[buffer(1)]],
    uint i [[thread_index_in_threadgroup]]) {
  threadgroup uint tile[32 * 32];
  tile[i * stride] = i;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[i] = tile[i * stride];
}
