// threadgroup_barrier / simdgroup_barrier. The runtime checks that every thread (lane) arrives at
// the same call site and that none has returned; both order all memory regardless of mem_flags.
#pragma once
#include "prelude.h"

namespace metal {

enum class mem_flags : uint {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) {
  return mem_flags(uint(a) | uint(b));
}
constexpr mem_flags operator&(mem_flags a, mem_flags b) {
  return mem_flags(uint(a) & uint(b));
}

inline void threadgroup_barrier(
    mem_flags flags, __msl_site site = __msl_here("threadgroup_barrier")) {
  __msl_rt_threadgroup_barrier(uint(flags), &site);
}
inline void simdgroup_barrier(mem_flags flags, __msl_site site = __msl_here("simdgroup_barrier")) {
  uint mask, lane;
  __msl_rt_simd_collective(nullptr, 0, &site, &mask, &lane);
  (void)flags;
}

} // namespace metal
