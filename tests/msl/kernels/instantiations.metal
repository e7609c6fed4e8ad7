// The explicit-instantiation forms that register a host name: decltype (MLX's instantiate_kernel),
// a full signature with attributes, qualified and inside the kernel's namespace.
#include <metal_stdlib>
using namespace metal;
namespace lb {
template <typename T>
[[kernel]] void k(device T* a [[buffer(0)]], uint i [[thread_position_in_grid]]) { a[i] = T(i); }
}  // namespace lb
template [[host_name("k_float")]] [[kernel]] void lb::k<float>(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]);
template [[host_name("k_half")]] [[kernel]] decltype(lb::k<half>) lb::k<half>;
namespace lb {
template [[host_name("k_int")]] [[kernel]] decltype(k<int>) k<int>;
}
