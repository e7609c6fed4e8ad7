// Executes launches: threadgroups one after another (in a seeded shuffled order by default), each
// GPU thread of a threadgroup on its own OS thread from a reused pool. Owns threadgroup memory
// (poisoned with NaN before every threadgroup, 32 KiB budget) and the error reports.
#include "executor.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <numeric>

#include "profile.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MSLRT_SANITIZED 1
#endif
#endif

namespace mslrt {

thread_local Lane* t_lane = nullptr;

namespace {

struct Kernel {
  __msl_thunk thunk;
  std::string function, file;
  unsigned line;
};

std::map<std::string, Kernel>& registry() {
  static std::map<std::string, Kernel> kernels;
  return kernels;
}

// What the error reports name; written by the main thread before workers start.
struct Current {
  std::string kernel;
  const Threadgroup* tg = nullptr;
};
Current g_current;
std::atomic_flag g_failing = ATOMIC_FLAG_INIT;

[[noreturn]] void report_and_exit(const std::string& message) {
  if (g_failing.test_and_set()) {
    for (;;)
      pause(); // another thread is already reporting
  }
  std::fprintf(stderr, "msl runtime error: %s\n", message.c_str());
  std::fflush(stderr);
  _exit(kExitRuntimeError);
}

std::string where(const Threadgroup* tg) {
  std::string s = "kernel '" + g_current.kernel + "'";
  if (tg)
    s += ", threadgroup (" + std::to_string(tg->id[0]) + "," + std::to_string(tg->id[1]) + "," +
         std::to_string(tg->id[2]) + ")";
  return s;
}

// Threadgroup memory of the running threadgroup.
struct StaticAllocation {
  void* ptr;
  unsigned long size;
  std::string name, file;
  unsigned line;
};
std::mutex g_tg_mutex;
std::vector<StaticAllocation> g_tg_static;
std::vector<void*> g_tg_dynamic;
unsigned long g_tg_dynamic_bytes = 0;
std::atomic<unsigned long> g_tg_generation{0};

// 0x7FA0 repeated: a NaN as half and bfloat, a signalling NaN as bfloat and as float32 (0x7FA07FA0).
void poison(void* p, unsigned long n) {
  auto* b = static_cast<unsigned char*>(p);
  for (unsigned long i = 0; i < n; ++i)
    b[i] = (i & 1) ? 0x7F : 0xA0;
}

void* allocate(unsigned long size, unsigned long align) {
  void* p = nullptr;
  if (posix_memalign(&p, std::max<unsigned long>(align, 16), std::max<unsigned long>(size, 1)) !=
      0) {
    report_and_exit(
        "out of memory allocating " + std::to_string(size) + " bytes of threadgroup memory");
  }
  poison(p, size);
  return p;
}

std::string threadgroup_memory_breakdown() {
  std::string s;
  for (auto& a : g_tg_static)
    s += "\n  '" + a.name + "' (" + a.file + ":" + std::to_string(a.line) +
         "): " + std::to_string(a.size) + " bytes";
  if (g_tg_dynamic_bytes)
    s += "\n  [[threadgroup(i)]] buffers: " + std::to_string(g_tg_dynamic_bytes) + " bytes";
  return s;
}

// A pool of OS threads; round r runs job(i) on workers 0..n-1.
class Pool {
 public:
  ~Pool() {
    stop();
  }

  bool run(unsigned n, const std::function<void(unsigned)>& job, double timeout_s) {
    grow(n);
    std::unique_lock<std::mutex> lk(m_);
    job_ = &job;
    active_ = n;
    remaining_ = n;
    ++round_;
    start_.notify_all();
    return done_.wait_for(
        lk, std::chrono::duration<double>(timeout_s), [&] { return remaining_ == 0; });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
      start_.notify_all();
    }
    for (pthread_t t : threads_)
      pthread_join(t, nullptr);
    threads_.clear();
  }

 private:
  struct Arg {
    Pool* pool;
    unsigned index;
  };

  void grow(unsigned n) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
#if defined(MSLRT_SANITIZED)
    pthread_attr_setstacksize(&attr, 4u << 20);
#else
    pthread_attr_setstacksize(&attr, 1u << 20);
#endif
    while (threads_.size() < n) {
      args_.push_back(std::make_unique<Arg>(Arg{this, unsigned(threads_.size())}));
      pthread_t t;
      if (pthread_create(&t, &attr, &Pool::main, args_.back().get()) != 0)
        report_and_exit("cannot create worker thread " + std::to_string(threads_.size()));
      threads_.push_back(t);
    }
    pthread_attr_destroy(&attr);
  }

  static void* main(void* p) {
    auto* a = static_cast<Arg*>(p);
    a->pool->work(a->index);
    return nullptr;
  }

  void work(unsigned index) {
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(unsigned)>* job;
      {
        std::unique_lock<std::mutex> lk(m_);
        start_.wait(lk, [&] { return quit_ || round_ != seen; });
        if (quit_)
          return;
        seen = round_;
        if (index >= active_)
          continue;
        job = job_;
      }
      (*job)(index);
      std::lock_guard<std::mutex> lk(m_);
      if (--remaining_ == 0)
        done_.notify_all();
    }
  }

  std::mutex m_;
  std::condition_variable start_, done_;
  std::vector<pthread_t> threads_;
  std::vector<std::unique_ptr<Arg>> args_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned long round_ = 0;
  unsigned active_ = 0, remaining_ = 0;
  bool quit_ = false;
};

Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

unsigned long splitmix64(unsigned long& state) {
  unsigned long z = (state += 0x9E3779B97F4A7C15ul);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
  return z ^ (z >> 31);
}

#if !defined(MSLRT_SANITIZED)
void on_crash(int sig) {
  if (g_failing.test_and_set()) {
    for (;;)
      pause();
  }
  char msg[512];
  int n;
  if (Lane* L = t_lane)
    n = std::snprintf(
        msg, sizeof msg,
        "msl runtime error: kernel '%s', threadgroup (%u,%u,%u), thread %u: %s (an invalid memory "
        "access; run with sanitizer=\"address\" to locate it)\n",
        g_current.kernel.c_str(), L->tg->id[0], L->tg->id[1], L->tg->id[2], L->index,
        strsignal(sig));
  else
    n = std::snprintf(
        msg, sizeof msg, "msl runtime error: kernel '%s': %s\n", g_current.kernel.c_str(),
        strsignal(sig));
  if (n > 0)
    (void)!write(2, msg, size_t(n));
  _exit(128 + sig);
}
#endif

} // namespace

std::string site_text(const __msl_site* site) {
  if (!site)
    return "?";
  return std::string(site->op) + " (" + site->file + ":" + std::to_string(site->line) + ":" +
         std::to_string(site->column) + ")";
}

void fail(const __msl_site* site, const char* format, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  std::string s = where(t_lane ? t_lane->tg : g_current.tg);
  if (Lane* L = t_lane)
    s += ", thread " + std::to_string(L->index) + " (" + std::to_string(L->local[0]) + "," +
         std::to_string(L->local[1]) + "," + std::to_string(L->local[2]) + ") = simdgroup " +
         std::to_string(L->sg->index) + " lane " + std::to_string(L->lane);
  s += ": ";
  s += buf;
  if (site)
    s += "\n  at " + std::string(site->file) + ":" + std::to_string(site->line) + ":" +
         std::to_string(site->column);
  report_and_exit(s);
}

void fail_threadgroup(const Threadgroup& tg, const std::string& message) {
  report_and_exit(where(&tg) + ": " + message);
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> names;
  for (auto& k : registry())
    names.push_back(k.first);
  return names;
}

void shutdown_pool() {
  pool().stop();
}

void run_launch(const Launch& launch, std::vector<Buffer>& buffers) {
#if !defined(MSLRT_SANITIZED)
  std::signal(SIGSEGV, on_crash);
  std::signal(SIGBUS, on_crash);
  std::signal(SIGFPE, on_crash);
#endif
  g_current.kernel = launch.kernel;
  g_current.tg = nullptr;
  auto it = registry().find(launch.kernel);
  if (it == registry().end()) {
    std::string names;
    for (auto& n : kernel_names())
      names += (names.empty() ? "" : ", ") + n;
    report_and_exit(
        "kernel '" + launch.kernel + "' is not in this source (host names: " + names + ")");
  }
  const Kernel& kernel = it->second;

  const unsigned* tgsize = launch.threadgroup;
  unsigned long tg_threads = (unsigned long)tgsize[0] * tgsize[1] * tgsize[2];
  if (tg_threads == 0 || tg_threads > kMaxThreadsPerThreadgroup)
    report_and_exit(
        where(nullptr) + ": threadgroup size " + std::to_string(tgsize[0]) + "x" +
        std::to_string(tgsize[1]) + "x" + std::to_string(tgsize[2]) +
        " is not between 1 and 1024 threads");
  unsigned groups[3], threads_per_grid[3];
  for (int d = 0; d < 3; ++d) {
    if (launch.dispatch_threads) {
      groups[d] = (launch.grid[d] + tgsize[d] - 1) / tgsize[d];
      threads_per_grid[d] = launch.grid[d];
    } else {
      groups[d] = launch.grid[d];
      threads_per_grid[d] = launch.grid[d] * tgsize[d];
    }
  }

  __msl_bindings bindings{};
  for (int slot = 0; slot < __MSL_MAX_BINDINGS; ++slot) {
    int b = launch.buffer_of_slot[slot];
    if (b < 0)
      continue;
    bindings.buffers[slot] = buffers[size_t(b)].data + launch.buffer_offset[slot];
    bindings.buffer_sizes[slot] = buffers[size_t(b)].size - launch.buffer_offset[slot];
    bindings.buffer_bound[slot] = 1;
  }
  profile_begin_launch(launch.kernel, bindings);
  unsigned long dynamic_bytes = 0;
  for (int slot = 0; slot < __MSL_MAX_BINDINGS; ++slot) {
    bindings.threadgroup_sizes[slot] = launch.threadgroup_bytes[slot];
    dynamic_bytes += launch.threadgroup_bytes[slot];
  }

  std::vector<unsigned long> order((unsigned long)groups[0] * groups[1] * groups[2]);
  std::iota(order.begin(), order.end(), 0ul);
  if (launch.shuffle) {
    unsigned long state = launch.seed;
    for (size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[splitmix64(state) % i]);
  }

  for (unsigned long linear : order) {
    unsigned gid[3] = {
        unsigned(linear % groups[0]), unsigned(linear / groups[0] % groups[1]),
        unsigned(linear / groups[0] / groups[1])};
    unsigned size[3]; // dispatchThreads: edge threadgroups are smaller
    for (int d = 0; d < 3; ++d)
      size[d] = launch.dispatch_threads ? std::min(tgsize[d], launch.grid[d] - gid[d] * tgsize[d])
                                        : tgsize[d];
    unsigned n = size[0] * size[1] * size[2];

    Threadgroup tg;
    std::copy(gid, gid + 3, tg.id);
    tg.threads = n;
    for (unsigned s = 0; s * kSimdWidth < n; ++s) {
      tg.simdgroups.push_back(std::make_unique<Simdgroup>());
      Simdgroup& sg = *tg.simdgroups.back();
      sg.index = s;
      unsigned lanes = std::min(kSimdWidth, n - s * kSimdWidth);
      sg.launched = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    }
    g_current.tg = &tg;

    void* tg_buffers[__MSL_MAX_BINDINGS] = {};
    g_tg_dynamic_bytes = dynamic_bytes;
    if (dynamic_bytes > kThreadgroupMemoryLimit)
      fail_threadgroup(
          tg, "threadgroup memory of " + std::to_string(dynamic_bytes) + " bytes exceeds the " +
                  std::to_string(kThreadgroupMemoryLimit) +
                  "-byte limit:" + threadgroup_memory_breakdown());
    for (int slot = 0; slot < __MSL_MAX_BINDINGS; ++slot) {
      if (!launch.threadgroup_bytes[slot])
        continue;
      tg_buffers[slot] = allocate(launch.threadgroup_bytes[slot], 16);
      g_tg_dynamic.push_back(tg_buffers[slot]);
    }
    g_tg_generation.fetch_add(1, std::memory_order_relaxed);

    std::function<void(unsigned)> job = [&](unsigned i) {
      Lane lane{
          &tg,
          tg.simdgroups[i / kSimdWidth].get(),
          i % kSimdWidth,
          i,
          {i % size[0], i / size[0] % size[1], i / size[0] / size[1]}};
      __msl_invocation inv;
      inv.bindings = &bindings;
      std::copy(tg_buffers, tg_buffers + __MSL_MAX_BINDINGS, inv.threadgroup_buffers);
      auto set = [&](int which, unsigned x, unsigned y, unsigned z) {
        inv.position[which][0] = x;
        inv.position[which][1] = y;
        inv.position[which][2] = z;
      };
      set(__MSL_POS_thread_position_in_threadgroup, lane.local[0], lane.local[1], lane.local[2]);
      set(__MSL_POS_threadgroup_position_in_grid, gid[0], gid[1], gid[2]);
      set(__MSL_POS_threads_per_threadgroup, size[0], size[1], size[2]);
      set(__MSL_POS_dispatch_threads_per_threadgroup, tgsize[0], tgsize[1], tgsize[2]);
      set(__MSL_POS_threadgroups_per_grid, groups[0], groups[1], groups[2]);
      set(__MSL_POS_threads_per_grid, threads_per_grid[0], threads_per_grid[1],
          threads_per_grid[2]);
      set(__MSL_POS_thread_position_in_grid, gid[0] * tgsize[0] + lane.local[0],
          gid[1] * tgsize[1] + lane.local[1], gid[2] * tgsize[2] + lane.local[2]);
      set(__MSL_POS_thread_index_in_threadgroup, i, 0, 0);
      set(__MSL_POS_thread_index_in_simdgroup, i % kSimdWidth, 0, 0);
      set(__MSL_POS_simdgroup_index_in_threadgroup, i / kSimdWidth, 0, 0);
      set(__MSL_POS_simdgroups_per_threadgroup, (n + kSimdWidth - 1) / kSimdWidth, 0, 0);
      set(__MSL_POS_threads_per_simdgroup, kSimdWidth, 0, 0);
      set(__MSL_POS_thread_index_in_quadgroup, i % 4, 0, 0);
      set(__MSL_POS_quadgroup_index_in_threadgroup, i / 4, 0, 0);
      set(__MSL_POS_quadgroups_per_threadgroup, (n + 3) / 4, 0, 0);
      t_lane = &lane;
      kernel.thunk(&inv);
      lane_exit();
      t_lane = nullptr;
    };
    profile_begin_threadgroup(n);
    if (!pool().run(n, job, launch.timeout_s)) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%g", launch.timeout_s);
      fail_threadgroup(
          tg, std::string("deadlock: the threadgroup did not finish within ") + secs +
                  " s (a barrier that never completes, or an endless loop). Thread states:" +
                  threadgroup_state(tg));
    }

    std::vector<TgMemory> tg_memory;
    for (auto& a : g_tg_static)
      tg_memory.push_back({a.ptr, a.size, a.name});
    for (int slot = 0; slot < __MSL_MAX_BINDINGS; ++slot)
      if (tg_buffers[slot])
        tg_memory.push_back(
            {tg_buffers[slot], launch.threadgroup_bytes[slot],
             "[[threadgroup(" + std::to_string(slot) + ")]]"});
    profile_end_threadgroup(tg, tg_memory);
    for (auto& a : g_tg_static)
      std::free(a.ptr);
    for (void* p : g_tg_dynamic)
      std::free(p);
    g_tg_static.clear();
    g_tg_dynamic.clear();
    g_current.tg = nullptr;
  }
}

} // namespace mslrt

using namespace mslrt;

extern "C" void __msl_rt_register_kernel(
    const char* host_name,
    __msl_thunk thunk,
    const char* function,
    const char* file,
    unsigned line) {
  auto r = registry().emplace(host_name, Kernel{thunk, function, file, line});
  if (!r.second) {
    std::fprintf(
        stderr,
        "msl runtime error: host name '%s' is instantiated twice (%s at %s:%u and %s at %s:%u)\n",
        host_name, r.first->second.function.c_str(), r.first->second.file.c_str(),
        r.first->second.line, function, file, line);
    _exit(kExitRuntimeError);
  }
}

extern "C" unsigned __msl_rt_lane(void) {
  return t_lane ? t_lane->lane : 0;
}

extern "C" void __msl_rt_fail(const __msl_site* site, const char* format, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  fail(site, "%s", buf);
}

extern "C" void* __msl_rt_threadgroup_static(
    __msl_tg_key* key,
    unsigned long size,
    unsigned long align,
    const char* name,
    const char* file,
    unsigned line) {
  unsigned long generation = g_tg_generation.load(std::memory_order_relaxed);
  if (__atomic_load_n(&key->generation, __ATOMIC_ACQUIRE) == generation)
    return key->ptr;
  std::lock_guard<std::mutex> lk(g_tg_mutex);
  if (key->generation != generation) {
    g_tg_static.push_back({nullptr, size, name, file, line});
    unsigned long total = g_tg_dynamic_bytes;
    for (auto& a : g_tg_static)
      total += a.size;
    if (total > kThreadgroupMemoryLimit)
      fail(
          nullptr, "threadgroup memory of %lu bytes exceeds the %lu-byte limit:%s", total,
          kThreadgroupMemoryLimit, threadgroup_memory_breakdown().c_str());
    g_tg_static.back().ptr = key->ptr = allocate(size, align);
    __atomic_store_n(&key->generation, generation, __ATOMIC_RELEASE);
  }
  return key->ptr;
}
