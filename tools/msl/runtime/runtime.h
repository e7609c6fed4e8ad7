// Internal declarations of the CPU runtime that executes shim-compiled kernels: one OS thread per
// GPU thread, threadgroups one after another (executor.cpp), barriers and simd collectives with
// their convergence checks (sync.cpp), [[function_constant]] values (function_constants.cpp), the
// command-line driver (driver.cpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "msl/abi.h"

namespace mslrt {

constexpr unsigned kSimdWidth = __MSL_SIMD_WIDTH;
constexpr unsigned kMaxThreadsPerThreadgroup = 1024;
constexpr unsigned long kThreadgroupMemoryLimit = 32768;
constexpr int kExitRuntimeError = 3;

enum class Wait : uint8_t { none, simd, barrier };

struct Simdgroup {
  std::mutex m;
  std::condition_variable cv;
  unsigned index = 0;
  uint32_t launched = 0; // lanes that exist (a partial last simdgroup has fewer than 32)
  uint32_t exited = 0;   // lanes whose kernel function returned
  uint32_t waiting = 0;  // lanes blocked in the current simd collective
  Wait wait[kSimdWidth] = {};
  const __msl_site* site[kSimdWidth] = {};
  uint64_t barrier_generation[kSimdWidth] = {};
  uint64_t epoch = 0;
  // Double-buffered deposits: a lane can only reach collective k+2 after every lane has left k.
  uint32_t result_mask[2] = {};
  alignas(64) unsigned char scratch[2][kSimdWidth][__MSL_SIMD_PAYLOAD];
};

struct Threadgroup {
  std::mutex m;
  std::condition_variable cv;
  unsigned id[3] = {};
  unsigned threads = 0;
  unsigned arrived = 0;
  unsigned exited = 0;
  unsigned first_exited = 0;
  unsigned first_arrived = 0;
  const __msl_site* barrier_site = nullptr; // where the current barrier's first thread waits
  std::atomic<uint64_t> generation{0};      // completed threadgroup barriers
  std::vector<std::unique_ptr<Simdgroup>> simdgroups;
};

// The GPU thread an OS thread is running (set by the executor around the kernel call).
struct Lane {
  Threadgroup* tg;
  Simdgroup* sg;
  unsigned lane;
  unsigned index;
  unsigned local[3];
  // Simd collectives and threadgroup barriers this lane has passed: the
  // lanes of a simdgroup run the same code between two of them, which the
  // cost model needs to tell one simdgroup access from the next.
  unsigned long long syncs = 0;
};
extern thread_local Lane* t_lane;

// executor.cpp
[[noreturn]] void fail(const __msl_site* site, const char* format, ...)
    __attribute__((format(printf, 2, 3)));
[[noreturn]] void fail_threadgroup(const Threadgroup& tg, const std::string& message);
std::string site_text(const __msl_site* site);

// sync.cpp
void lane_exit();
std::string threadgroup_state(Threadgroup& tg);

} // namespace mslrt
