// The cost model's hooks (profile.cpp): no-ops unless built with MSLRT_PROFILE.
#pragma once

#include <string>
#include <vector>

#include "runtime.h"

namespace mslrt {

void profile_begin_launch(const std::string& kernel, const __msl_bindings& bindings);
void profile_begin_threadgroup(unsigned threads);
// One threadgroup allocation: a kernel-scope array (its name) or a
// [[threadgroup(i)]] buffer.
struct TgMemory {
  const void* start;
  unsigned long bytes;
  std::string name;
};
void profile_end_threadgroup(const Threadgroup& tg, const std::vector<TgMemory>& tg_memory);
void profile_write(const char* path);

} // namespace mslrt
