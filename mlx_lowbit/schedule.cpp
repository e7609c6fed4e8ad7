// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/schedule.h"

#include "mlx_lowbit/enum_names.h"

namespace mlx_lowbit {

namespace {

constexpr EnumNames<Schedule, 6> kSchedules = {{
    {Schedule::Auto, "auto"},
    {Schedule::Gemv, "gemv"},
    {Schedule::DataParallel, "dataparallel"},
    {Schedule::SplitK, "splitk"},
    {Schedule::StreamK, "streamk"},
    {Schedule::Hybrid, "hybrid"},
}};

constexpr EnumNames<FixUp, 2> kFixUps = {{
    {FixUp::Atomic, "atomic"},
    {FixUp::Deterministic, "deterministic"},
}};

} // namespace

void validate_schedule_request(const ScheduleRequest& r, std::string_view tag) {
  if (r.split_k < 0) {
    throw_invalid(tag, "split_k must be >= 0 (0 lets the planner choose), got ", r.split_k, ".");
  }
  if (r.bm < 0 || r.bn < 0 || r.bk < 0) {
    throw_invalid(
        tag, "Tile overrides bm, bn, bk must be >= 0 (0 lets the planner choose), got ",
        r.bm, ", ", r.bn, ", ", r.bk, ".");
  }
}

ScheduleRequest make_schedule_request(
    std::string_view schedule,
    std::string_view streamk_fixup,
    int split_k,
    int bm,
    int bn,
    int bk,
    std::string_view tag) {
  ScheduleRequest r{
      parse_schedule(schedule, tag), parse_fixup(streamk_fixup, tag), split_k, bm, bn, bk};
  validate_schedule_request(r, tag);
  return r;
}

Schedule parse_schedule(std::string_view name, std::string_view tag) {
  return parse_enum(kSchedules, name, "schedule", tag);
}
const char* schedule_name(Schedule schedule) {
  return enum_name(kSchedules, schedule);
}
std::vector<std::string> schedule_names() {
  std::vector<std::string> names;
  for (auto& [value, text] : kSchedules) {
    names.emplace_back(text);
  }
  return names;
}
FixUp parse_fixup(std::string_view name, std::string_view tag) {
  return parse_enum(kFixUps, name, "streamk_fixup", tag);
}
const char* fixup_name(FixUp fixup) {
  return enum_name(kFixUps, fixup);
}

} // namespace mlx_lowbit
