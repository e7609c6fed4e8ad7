// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/backend/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

namespace mlx_lowbit::cpu {

namespace {

constexpr int kMaxThreadsPerCore = 8;

constexpr const char* kThreadsVariable = "MLX_LOWBIT_NUM_THREADS";

void check_thread_count(long long n, std::string_view what) {
  if (n < 1 || n > max_threads()) {
    std::ostringstream os;
    os << "[set_num_threads] " << what << " must be an integer in [1, " << max_threads() << "] ("
       << kMaxThreadsPerCore << " per core), got " << n << ".";
    throw std::invalid_argument(os.str());
  }
}

// MLX_LOWBIT_NUM_THREADS must be a plain decimal count: "abc", "2.5" or
// "1e3" (which std::stoi reads as 1) are refused rather than ignored.
int default_threads() {
  const char* env = std::getenv(kThreadsVariable);
  if (!env) {
    return std::max(1u, std::thread::hardware_concurrency());
  }
  std::string_view text(env);
  bool digits = !text.empty() && text.size() <= 9 &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    std::ostringstream os;
    os << "[set_num_threads] The environment variable " << kThreadsVariable
       << " must be a whole number of threads in [1, " << max_threads() << "], got '" << text
       << "'.";
    throw std::invalid_argument(os.str());
  }
  int n = std::stoi(std::string(text));
  check_thread_count(n, std::string("The environment variable ") + kThreadsVariable);
  return n;
}

thread_local bool in_worker = false;

// Marks the calling thread as running a region's chunk for its lifetime.
struct InWorker {
  InWorker() {
    in_worker = true;
  }
  ~InWorker() {
    in_worker = false;
  }
};

// How long a thread spins for the next region (a worker) or for the other
// chunks to finish (the caller) before it sleeps. A sleeping thread takes
// tens of microseconds to wake on another core (more under a hypervisor),
// which for a product of ~1 ms with 2-4 regions was a fifth of its time;
// regions of one product, and products of consecutive layers, follow each
// other within this.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or kSpin has passed; returns done().
template <class Done>
bool spin_until(Done done) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  while (!done()) {
    for (int i = 0; i < 64; ++i) {
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > until) {
      return done();
    }
  }
  return true;
}

class Pool {
 public:
  explicit Pool(int n) {
    resize(n);
  }
  ~Pool() {
    stop();
  }

  int size() {
    std::lock_guard<std::mutex> lk(run_mutex_);
    return nthreads_;
  }

  // Replaces the workers with n - 1 new ones. If a thread cannot be created
  // (a capped address space, a thread limit), the ones started are stopped,
  // the old count is restored, and the error says so.
  void resize(int n) {
    std::lock_guard<std::mutex> lk(run_mutex_);
    const int old = nthreads_;
    stop();
    try {
      start(n);
    } catch (const std::system_error& e) {
      stop();
      start(old);
      std::ostringstream os;
      os << "[set_num_threads] Could not start " << n << " threads (" << e.what() << "); keeping "
         << old << ".";
      throw std::runtime_error(os.str());
    }
  }

  void run(int n, const std::function<void(int, int)>& fn) {
    if (n <= 0) {
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    // While fn runs here, a nested parallel_for must run inline: run_mutex_
    // is held (it used not to be marked for a single chunk, which deadlocked).
    InWorker mark;
    int chunks = std::min(n, nthreads_);
    if (chunks == 1) {
      fn(0, n);
      return;
    }
    // The task is published by the release store of the next state; the
    // mutex orders it against a worker that is about to sleep.
    fn_ = &fn;
    n_ = n;
    error_ = nullptr;
    pending_.store(chunks - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      const uint64_t generation = (state_.load(std::memory_order_relaxed) >> 32) + 1;
      state_.store((generation << 32) | uint64_t(chunks), std::memory_order_release);
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      fn(0, n / chunks);
    } catch (...) {
      mine = std::current_exception();
    }
    auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, finished);
    }
    fn_ = nullptr;
    if (mine) {
      std::rethrow_exception(mine);
    }
    if (error_) {
      std::rethrow_exception(error_);
    }
  }

 private:
  void work(int index, uint64_t seen) {
    in_worker = true;
    while (true) {
      auto woken = [&] {
        return quit_.load(std::memory_order_acquire) ||
               (state_.load(std::memory_order_acquire) >> 32) != seen;
      };
      if (!spin_until(woken)) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, woken);
      }
      if (quit_.load(std::memory_order_acquire)) {
        return;
      }
      // Only the state tells a worker whether it takes part: a region may
      // finish without it, and the next one be written, while it looks.
      const uint64_t state = state_.load(std::memory_order_acquire);
      seen = state >> 32;
      const int chunks = int(state & 0xFFFFFFFFu);
      if (index >= chunks) {
        continue;
      }
      const int begin = int(long(n_) * index / chunks);
      const int end = int(long(n_) * (index + 1) / chunks);
      std::exception_ptr err;
      try {
        (*fn_)(begin, end);
      } catch (...) {
        err = std::current_exception();
      }
      if (err) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) {
          error_ = err;
        }
      }
      // The last one wakes the caller if it went to sleep (under the mutex,
      // so the wake-up cannot fall between its check and its wait).
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lk(m_);
        done_cv_.notify_one();
      }
    }
  }

  // The calling thread does chunk 0 itself; n - 1 helpers do the rest. New
  // workers start at the current generation: the last region's task is
  // finished and must not run again.
  void start(int n) {
    quit_ = false;
    nthreads_ = 1;
    for (int i = 1; i < n; ++i) {
      workers_.emplace_back([this, i, g = state_.load() >> 32] { work(i, g); });
    }
    nthreads_ = n;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_.store(true, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      t.join();
    }
    workers_.clear();
  }

  std::mutex run_mutex_; // one parallel region at a time
  std::mutex m_;         // guards the sleeps, and error_
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  // The current region, written by run() before the state changes and read
  // only by the workers that take part (run() waits for them).
  const std::function<void(int, int)>* fn_ = nullptr;
  int nthreads_ = 1, n_ = 0;
  // Generation of the region (high 32 bits) and its number of chunks.
  std::atomic<uint64_t> state_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  std::exception_ptr error_;
};

Pool& pool() {
  // Leaked on purpose: joining threads during static destruction at
  // interpreter exit can deadlock.
  static Pool* p = new Pool(default_threads());
  return *p;
}

} // namespace

int num_threads() {
  return pool().size();
}

// More workers than this only oversubscribe the cores (each region waits for
// its slowest chunk), and a huge count exhausts the address space creating
// threads: counts above it are refused.
int max_threads() {
  return kMaxThreadsPerCore * int(std::max(1u, std::thread::hardware_concurrency()));
}

void set_num_threads(long long n) {
  check_thread_count(n, "The number of threads");
  pool().resize(int(n));
}

void parallel_for(int n, const std::function<void(int, int)>& fn) {
  if (in_worker) {
    fn(0, n);
    return;
  }
  pool().run(n, fn);
}

void parallel_for_c(int n, void (*body)(void* ctx, int begin, int end), void* ctx) {
  parallel_for(n, [body, ctx](int begin, int end) { body(ctx, begin, end); });
}

} // namespace mlx_lowbit::cpu
