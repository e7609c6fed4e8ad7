// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/schedule.h"

#include "mlx_lowbit/enum_names.h"
#include "mlx_lowbit/errors.h"

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

constexpr EnumNames<FixUp, 1> kFixUps = {{
    {FixUp::Deterministic, "deterministic"},
}};

} // namespace

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
  if (name == "atomic") {
    throw_invalid(
        tag, "streamk_fixup='atomic' was removed: it ran three passes (zero fill, atomic adds, ",
        "convert) where 'deterministic' runs two, and was not reproducible. Use 'deterministic'.");
  }
  return parse_enum(kFixUps, name, "streamk_fixup", tag);
}
const char* fixup_name(FixUp fixup) {
  return enum_name(kFixUps, fixup);
}

} // namespace mlx_lowbit
