// The cost model's measurements (`sanitizer="profile"` runs): the kernel is
// compiled with ThreadSanitizer's instrumentation but linked with these
// callbacks instead of its runtime, so every load and store of the kernel
// reports its address, size and call site. Per threadgroup, the accesses of
// one simdgroup are grouped by site and by how often each lane reached it
// since its last simd collective or barrier (the k-th execution of a load by
// every lane between the same two synchronisations is one simdgroup access;
// counting from the last one keeps lanes that skipped a load in a branch in
// step with the others), then
// measured: device accesses as bytes requested vs distinct 64-byte lines
// touched, per buffer slot; threadgroup accesses as wavefronts (the most
// distinct 4-byte words one of the 32 banks must serve) vs the ideal.
#include "profile.h"

#include <pthread.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "runtime.h"

namespace mslrt {

#if defined(MSLRT_PROFILE)

namespace {

struct Access {
  const void* site;
  uintptr_t addr;
  unsigned size;
  unsigned long long syncs; // Lane::syncs when it ran
};

std::vector<std::vector<Access>> g_logs; // by thread index in the threadgroup
thread_local uintptr_t t_stack_lo = 0, t_stack_hi = 0;

struct Range {
  uintptr_t lo, hi;
  int slot;         // device buffer slot, or -1 for threadgroup memory
  std::string name; // threadgroup memory: the allocation's
};

struct TgStats {
  unsigned long long accesses = 0, wavefronts = 0, ideal = 0;
};

struct SlotStats {
  unsigned long long requested = 0, useful = 0, lines = 0, accesses = 0;
};

struct LaunchStats {
  std::string kernel;
  unsigned long long threadgroups = 0, barriers = 0;
  std::map<int, SlotStats> device;
  unsigned long long tg_accesses = 0, tg_wavefronts = 0, tg_ideal = 0;
  std::map<std::string, TgStats> tg; // by allocation
};

std::vector<LaunchStats> g_stats;
std::vector<Range> g_device;

void stack_bounds() {
  pthread_attr_t attr;
  void* base;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &base, &size);
    t_stack_lo = uintptr_t(base);
    t_stack_hi = uintptr_t(base) + size;
    pthread_attr_destroy(&attr);
  }
  if (t_stack_hi == 0)
    t_stack_hi = 1;
}

inline void record(const void* addr, unsigned size, const void* site) {
  Lane* lane = t_lane;
  if (!lane)
    return;
  if (!t_stack_hi)
    stack_bounds();
  uintptr_t a = uintptr_t(addr);
  if (a >= t_stack_lo && a < t_stack_hi)
    return; // thread-private (registers on a GPU)
  if (lane->index < g_logs.size())
    g_logs[lane->index].push_back({site, a, size, lane->syncs});
}

const Range* find(const std::vector<Range>& ranges, uintptr_t a) {
  for (const Range& r : ranges)
    if (a >= r.lo && a < r.hi)
      return &r;
  return nullptr;
}

} // namespace

void profile_begin_launch(const std::string& kernel, const __msl_bindings& b) {
  g_stats.push_back({});
  g_stats.back().kernel = kernel;
  g_device.clear();
  for (int slot = 0; slot < __MSL_MAX_BINDINGS; ++slot)
    if (b.buffer_bound[slot] && b.buffers[slot])
      g_device.push_back(
          {uintptr_t(b.buffers[slot]), uintptr_t(b.buffers[slot]) + b.buffer_sizes[slot], slot,
           ""});
}

void profile_begin_threadgroup(unsigned threads) {
  g_logs.assign(threads, {});
}

void profile_end_threadgroup(const Threadgroup& tg, const std::vector<TgMemory>& tg_memory) {
  LaunchStats& st = g_stats.back();
  st.threadgroups += 1;
  st.barriers += tg.generation.load();
  std::vector<Range> shared;
  for (auto& m : tg_memory)
    shared.push_back({uintptr_t(m.start), uintptr_t(m.start) + m.bytes, -1, m.name});
  for (unsigned s = 0; s * kSimdWidth < g_logs.size(); ++s) {
    // (site, syncs, k) -> the k-th access of every lane at that site after
    // the same number of synchronisations.
    std::map<std::tuple<const void*, unsigned long long, unsigned>, std::vector<Access>> groups;
    for (unsigned l = s * kSimdWidth; l < std::min<size_t>(g_logs.size(), (s + 1) * kSimdWidth);
         ++l) {
      std::map<std::pair<const void*, unsigned long long>, unsigned> seen;
      for (const Access& a : g_logs[l])
        groups[{a.site, a.syncs, seen[{a.site, a.syncs}]++}].push_back(a);
    }
    for (auto& [key, accesses] : groups) {
      if (const Range* r = find(g_device, accesses[0].addr)) {
        SlotStats& ss = st.device[r->slot];
        std::set<uintptr_t> bytes, lines;
        for (const Access& a : accesses) {
          ss.requested += a.size;
          for (unsigned i = 0; i < a.size; ++i) {
            bytes.insert(a.addr + i);
            lines.insert((a.addr + i) >> 6);
          }
        }
        ss.useful += bytes.size();
        ss.lines += lines.size();
        ss.accesses += 1;
      } else if (const Range* r = find(shared, accesses[0].addr)) {
        std::set<uintptr_t> words;
        for (const Access& a : accesses)
          for (unsigned i = 0; i < a.size; i += 4)
            words.insert((a.addr + i) >> 2);
        unsigned per_bank[32] = {};
        for (uintptr_t w : words)
          per_bank[w % 32] += 1;
        unsigned wavefronts = *std::max_element(per_bank, per_bank + 32);
        unsigned ideal = unsigned((words.size() + 31) / 32);
        st.tg_accesses += 1;
        st.tg_wavefronts += wavefronts;
        st.tg_ideal += ideal;
        TgStats& ts = st.tg[r->name];
        ts.accesses += 1;
        ts.wavefronts += wavefronts;
        ts.ideal += ideal;
      }
    }
  }
  g_logs.clear();
}

void profile_write(const char* path) {
  std::FILE* f = std::fopen(path, "w");
  if (!f)
    return;
  std::fprintf(f, "[");
  for (size_t i = 0; i < g_stats.size(); ++i) {
    const LaunchStats& st = g_stats[i];
    std::fprintf(
        f,
        "%s\n {\"kernel\": \"%s\", \"threadgroups\": %llu, \"barriers\": %llu, "
        "\"tg_accesses\": %llu, \"tg_wavefronts\": %llu, \"tg_ideal\": %llu, \"device\": {",
        i ? "," : "", st.kernel.c_str(), st.threadgroups, st.barriers, st.tg_accesses,
        st.tg_wavefronts, st.tg_ideal);
    bool first = true;
    for (auto& [slot, ss] : st.device) {
      std::fprintf(
          f,
          "%s\"%d\": {\"requested\": %llu, \"useful\": %llu, \"lines\": %llu, \"accesses\": %llu}",
          first ? "" : ", ", slot, ss.requested, ss.useful, ss.lines, ss.accesses);
      first = false;
    }
    std::fprintf(f, "}, \"threadgroup\": {");
    first = true;
    for (auto& [name, ts] : st.tg) {
      std::fprintf(
          f, "%s\"%s\": {\"accesses\": %llu, \"wavefronts\": %llu, \"ideal\": %llu}",
          first ? "" : ", ", name.c_str(), ts.accesses, ts.wavefronts, ts.ideal);
      first = false;
    }
    std::fprintf(f, "}}");
  }
  std::fprintf(f, "\n]\n");
  std::fclose(f);
}

#else

void profile_begin_launch(const std::string&, const __msl_bindings&) {}
void profile_begin_threadgroup(unsigned) {}
void profile_end_threadgroup(const Threadgroup&, const std::vector<TgMemory>&) {}
void profile_write(const char*) {}

#endif

} // namespace mslrt

#if defined(MSLRT_PROFILE)
// ThreadSanitizer's instrumentation ABI, as the kernel object calls it.
#define MSLRT_ACCESS(kind, n)                           \
  extern "C" void __tsan_##kind##n(void* p) {           \
    mslrt::record(p, n, __builtin_return_address(0));   \
  }                                                     \
  extern "C" void __tsan_unaligned_##kind##n(void* p) { \
    mslrt::record(p, n, __builtin_return_address(0));   \
  }
MSLRT_ACCESS(read, 1)
MSLRT_ACCESS(read, 2)
MSLRT_ACCESS(read, 4)
MSLRT_ACCESS(read, 8)
MSLRT_ACCESS(read, 16)
MSLRT_ACCESS(write, 1)
MSLRT_ACCESS(write, 2)
MSLRT_ACCESS(write, 4)
MSLRT_ACCESS(write, 8)
MSLRT_ACCESS(write, 16)
extern "C" void __tsan_read_range(void* p, unsigned long n) {
  mslrt::record(p, unsigned(n), __builtin_return_address(0));
}
extern "C" void __tsan_write_range(void* p, unsigned long n) {
  mslrt::record(p, unsigned(n), __builtin_return_address(0));
}
// Calls clang emits for struct copies and fills.
extern "C" void* __tsan_memcpy(void* dst, const void* src, unsigned long n) {
  mslrt::record(src, unsigned(n), __builtin_return_address(0));
  mslrt::record(dst, unsigned(n), __builtin_return_address(0));
  return std::memcpy(dst, src, n);
}
extern "C" void* __tsan_memmove(void* dst, const void* src, unsigned long n) {
  mslrt::record(src, unsigned(n), __builtin_return_address(0));
  mslrt::record(dst, unsigned(n), __builtin_return_address(0));
  return std::memmove(dst, src, n);
}
extern "C" void* __tsan_memset(void* dst, int c, unsigned long n) {
  mslrt::record(dst, unsigned(n), __builtin_return_address(0));
  return std::memset(dst, c, n);
}
extern "C" void __tsan_func_entry(void*) {}
extern "C" void __tsan_func_exit() {}
extern "C" void __tsan_init() {}
extern "C" void __tsan_vptr_update(void**, void*) {}
extern "C" void __tsan_vptr_read(void**) {}
#endif
