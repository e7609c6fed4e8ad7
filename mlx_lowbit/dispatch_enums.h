// Copyright © 2026 mlx-lowbit contributors.
//
// The schedule and fix-up enums: one definition for the request (planner.h
// ScheduleRequest), the planner and the kernels, which read
// MatmulParams::schedule and ::fixup as these values; schedule.h names them.
// Valid C++ and MSL (formats/common.h rules).
#pragma once

namespace lowbit {

// How a product is split into work. The first three have a GEMM kernel each
// and are the only values MatmulParams::schedule holds; Hybrid runs the
// stream-K kernel with data-parallel tiles after the stream-K ones, Gemv its
// own kernel, and Auto is a request the planner resolves.
enum class Schedule : int {
  DataParallel = 0,
  SplitK = 1,
  StreamK = 2,
  Hybrid = 3,
  Gemv = 4,
  Auto = 5,
};

// How tiles split between threadgroups are summed: a second pass over fp32
// partials in a fixed order (bitwise reproducible). An atomic mode (zero
// fill, atomic adds, convert pass) was removed: it took three passes where
// this takes two, so it could not be faster, and its last bits varied.
enum class FixUp : int { Deterministic = 0 };

} // namespace lowbit
