// Copyright © 2026 mlx-lowbit contributors.
//
// How a product is split into work: the caller's request. The GPU backend
// turns it into a dispatch plan; the CPU backend ignores it (eval_cpu picks
// its kernel path from the ISA alone).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mlx_lowbit/dispatch_enums.h"

namespace mlx_lowbit {

using lowbit::FixUp;
using lowbit::Schedule;

struct ScheduleRequest {
  Schedule schedule = Schedule::Auto;
  FixUp fixup = FixUp::Deterministic;
  int split_k = 0; // 0: chosen by the planner
  // GPU tile overrides for ablations (0: the planner's choice).
  int bm = 0;
  int bn = 0;
  int bk = 0;

  bool operator==(const ScheduleRequest&) const = default;
};

// Checks what no backend accepts (negative split or tile sizes).
void validate_schedule_request(const ScheduleRequest& request, std::string_view tag);

// A request from the names and numbers the Python API takes, checked.
ScheduleRequest make_schedule_request(
    std::string_view schedule,
    std::string_view streamk_fixup,
    int split_k,
    int bm,
    int bn,
    int bk,
    std::string_view tag);

Schedule parse_schedule(std::string_view name, std::string_view tag);
const char* schedule_name(Schedule schedule);
// Every schedule's name, in the table's order ("auto" first).
std::vector<std::string> schedule_names();
FixUp parse_fixup(std::string_view name, std::string_view tag);
const char* fixup_name(FixUp fixup);

} // namespace mlx_lowbit
