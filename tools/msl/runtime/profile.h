// The cost model's hooks (profile.cpp): no-ops unless built with MSLRT_PROFILE.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "runtime.h"

namespace mslrt {

void profile_begin_launch(const std::string& kernel, const __msl_bindings& bindings);
void profile_begin_threadgroup(unsigned threads);
// tg_memory: (start, bytes) of every threadgroup allocation of the threadgroup.
void profile_end_threadgroup(
    const Threadgroup& tg, const std::vector<std::pair<const void*, unsigned long>>& tg_memory);
void profile_write(const char* path);

} // namespace mslrt
