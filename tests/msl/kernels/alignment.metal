// A 64-bit vector load and a scalar store: the alignment check's subject.
#include <metal_stdlib>
using namespace metal;

[[kernel]] void load_uint2(
    device const uint* words [[buffer(0)]],
    device uint* out [[buffer(1)]],
    uint i [[thread_position_in_grid]]) {
  uint2 w = *(device const uint2*)(words + 2 * i);
  out[i] = w.x + w.y;
}
