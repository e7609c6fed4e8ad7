// Copyright © 2026 mlx-lowbit contributors.
//
// The names of the schedules and fix-up modes (dispatch_enums.h), as the
// Python API and the kernel host names spell them: one table each.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mlx_lowbit/dispatch_enums.h"

namespace mlx_lowbit {

using lowbit::FixUp;
using lowbit::Schedule;

Schedule parse_schedule(std::string_view name, std::string_view tag);
const char* schedule_name(Schedule schedule);
// Every schedule's name, in the table's order ("auto" first).
std::vector<std::string> schedule_names();
FixUp parse_fixup(std::string_view name, std::string_view tag);
const char* fixup_name(FixUp fixup);

} // namespace mlx_lowbit
