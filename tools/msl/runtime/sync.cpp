// Threadgroup barriers and simd collectives, with the checks that turn GPU undefined behaviour
// into errors: barriers after returns, lanes of one simdgroup waiting at different places.
#include <cstring>

#include "runtime.h"

namespace mslrt {
namespace {

bool same_site(const __msl_site* a, const __msl_site* b) {
  return a->line == b->line && a->column == b->column && std::strcmp(a->file, b->file) == 0 &&
         std::strcmp(a->op, b->op) == 0;
}

bool blocked(const Simdgroup& s, const Threadgroup& tg, unsigned l) {
  if (s.wait[l] == Wait::simd)
    return true;
  // A lane released from a barrier may not have cleared its state yet.
  return s.wait[l] == Wait::barrier &&
         s.barrier_generation[l] == tg.generation.load(std::memory_order_relaxed);
}

std::string lane_ranges(const std::vector<unsigned>& lanes) {
  std::string out;
  for (size_t i = 0; i < lanes.size();) {
    size_t j = i;
    while (j + 1 < lanes.size() && lanes[j + 1] == lanes[j] + 1)
      ++j;
    if (!out.empty())
      out += ",";
    out += std::to_string(lanes[i]);
    if (j > i)
      out += "-" + std::to_string(lanes[j]);
    i = j + 1;
  }
  return out;
}

// "lanes 0-15 wait at simd_shuffle_down (k.metal:12:9); lanes 16-31 wait at ..." for the
// blocked lanes of `s`, grouped by where they wait.
std::string where_lanes_wait(const Simdgroup& s) {
  std::vector<std::pair<const __msl_site*, std::vector<unsigned>>> groups;
  for (unsigned l = 0; l < kSimdWidth; ++l) {
    if (s.wait[l] == Wait::none || !((s.launched & ~s.exited) >> l & 1u))
      continue;
    auto it = groups.begin();
    while (it != groups.end() && !same_site(it->first, s.site[l]))
      ++it;
    if (it == groups.end())
      groups.push_back({s.site[l], {l}});
    else
      it->second.push_back(l);
  }
  std::string out;
  for (auto& g : groups) {
    if (!out.empty())
      out += "; ";
    out += (g.second.size() == 1 ? "lane " : "lanes ") + lane_ranges(g.second) + " wait at " +
           site_text(g.first);
  }
  return out;
}

// With s.m held, after a lane of `s` blocked or returned: complete the pending collective when
// every live lane has joined it, and report lanes that can never meet again.
void settle(Simdgroup& s, Threadgroup& tg, const __msl_site* site) {
  uint32_t live = s.launched & ~s.exited;
  if (s.waiting != 0 && s.waiting == live) {
    const __msl_site* first = nullptr;
    for (unsigned l = 0; l < kSimdWidth; ++l) {
      if (!(s.waiting >> l & 1u))
        continue;
      if (!first)
        first = s.site[l];
      else if (!same_site(first, s.site[l]))
        fail(
            site, "divergent simd collective in simdgroup %u: %s", s.index,
            where_lanes_wait(s).c_str());
    }
    s.result_mask[s.epoch & 1] = s.waiting;
    for (unsigned l = 0; l < kSimdWidth; ++l)
      if (s.waiting >> l & 1u)
        s.wait[l] = Wait::none;
    s.waiting = 0;
    ++s.epoch;
    s.cv.notify_all();
    return;
  }
  bool at_simd = false, at_barrier = false;
  for (unsigned l = 0; l < kSimdWidth; ++l) {
    if (!(live >> l & 1u))
      continue;
    if (!blocked(s, tg, l))
      return;
    (s.wait[l] == Wait::simd ? at_simd : at_barrier) = true;
  }
  if (at_simd && at_barrier)
    fail(
        site,
        "lanes of simdgroup %u wait at different synchronisation points and can never meet: %s",
        s.index, where_lanes_wait(s).c_str());
}

} // namespace

void lane_exit() {
  Lane* L = t_lane;
  Simdgroup& s = *L->sg;
  Threadgroup& tg = *L->tg;
  {
    std::lock_guard<std::mutex> lk(s.m);
    s.exited |= 1u << L->lane;
    s.wait[L->lane] = Wait::none;
    settle(s, tg, nullptr);
  }
  std::lock_guard<std::mutex> lk(tg.m);
  if (tg.exited++ == 0)
    tg.first_exited = L->index;
  if (tg.arrived > 0)
    fail(
        nullptr, "thread %u returned while %u other thread(s) of its threadgroup wait at %s",
        L->index, tg.arrived, site_text(tg.barrier_site).c_str());
}

std::string threadgroup_state(Threadgroup& tg) {
  // Group consecutive threads with the same state.
  std::vector<std::pair<std::string, std::vector<unsigned>>> groups;
  for (auto& sp : tg.simdgroups) {
    Simdgroup& s = *sp;
    std::lock_guard<std::mutex> lk(s.m);
    for (unsigned l = 0; l < kSimdWidth; ++l) {
      if (!(s.launched >> l & 1u))
        continue;
      std::string state;
      if (s.exited >> l & 1u)
        state = "returned";
      else if (s.wait[l] == Wait::simd)
        state = "wait at " + site_text(s.site[l]);
      else if (blocked(s, tg, l))
        state = "wait at " + site_text(s.site[l]);
      else
        state = "running (not at a barrier or collective)";
      unsigned t = s.index * kSimdWidth + l;
      if (!groups.empty() && groups.back().first == state && groups.back().second.back() + 1 == t)
        groups.back().second.push_back(t);
      else
        groups.push_back({state, {t}});
    }
  }
  std::string out;
  for (auto& g : groups)
    out += "\n  thread" + std::string(g.second.size() > 1 ? "s " : " ") + lane_ranges(g.second) +
           ": " + g.first;
  return out;
}

} // namespace mslrt

using namespace mslrt;

extern "C" const void* __msl_rt_simd_collective(
    const void* payload,
    unsigned size,
    const __msl_site* site,
    unsigned* active_mask,
    unsigned* lane) {
  Lane* L = t_lane;
  Simdgroup& s = *L->sg;
  std::unique_lock<std::mutex> lk(s.m);
  uint64_t epoch = s.epoch;
  unsigned buffer = epoch & 1;
  if (size > 0)
    std::memcpy(s.scratch[buffer][L->lane], payload, size);
  s.wait[L->lane] = Wait::simd;
  s.site[L->lane] = site;
  s.waiting |= 1u << L->lane;
  settle(s, *L->tg, site);
  s.cv.wait(lk, [&] { return s.epoch != epoch; });
  *active_mask = s.result_mask[buffer];
  *lane = L->lane;
  L->syncs += 1;
  return s.scratch[buffer];
}

extern "C" void __msl_rt_threadgroup_barrier(unsigned /*flags*/, const __msl_site* site) {
  Lane* L = t_lane;
  Simdgroup& s = *L->sg;
  Threadgroup& tg = *L->tg;
  {
    std::lock_guard<std::mutex> lk(s.m);
    s.wait[L->lane] = Wait::barrier;
    s.site[L->lane] = site;
    s.barrier_generation[L->lane] = tg.generation.load(std::memory_order_relaxed);
    settle(s, tg, site);
  }
  std::unique_lock<std::mutex> lk(tg.m);
  if (tg.exited > 0)
    fail(
        site,
        "threadgroup_barrier reached after %u of the threadgroup's %u threads returned (thread %u "
        "first)",
        tg.exited, tg.threads, tg.first_exited);
  if (tg.arrived == 0) {
    tg.barrier_site = site;
    tg.first_arrived = L->index;
  } else if (!same_site(tg.barrier_site, site)) {
    fail(
        site,
        "threads wait at different threadgroup_barrier calls: thread %u at %s, thread %u at %s",
        tg.first_arrived, site_text(tg.barrier_site).c_str(), L->index, site_text(site).c_str());
  }
  uint64_t generation = tg.generation.load(std::memory_order_relaxed);
  if (++tg.arrived == tg.threads) {
    tg.arrived = 0;
    tg.generation.store(generation + 1, std::memory_order_relaxed);
    tg.cv.notify_all();
  } else {
    tg.cv.wait(lk, [&] { return tg.generation.load(std::memory_order_relaxed) != generation; });
  }
  L->syncs += 1;
}
