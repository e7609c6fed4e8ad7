// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/backend/cpu/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mlx_lowbit::cpu {

namespace {

int default_threads() {
  if (const char* env = std::getenv("MLX_LOWBIT_NUM_THREADS")) {
    try {
      int n = std::stoi(env);
      if (n > 0) {
        return n;
      }
    } catch (const std::exception&) {
    }
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

thread_local bool in_worker = false;

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

  void resize(int n) {
    std::lock_guard<std::mutex> lk(run_mutex_);
    stop();
    nthreads_ = n;
    quit_ = false;
    // The calling thread does chunk 0 itself; n - 1 helpers do the rest.
    // New workers start at the current generation: the last region's task
    // is finished and must not run again.
    for (int i = 1; i < n; ++i) {
      workers_.emplace_back([this, i, g = generation_] { work(i, g); });
    }
  }

  void run(int n, const std::function<void(int, int)>& fn) {
    if (n <= 0) {
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    int chunks = std::min(n, nthreads_);
    if (chunks == 1) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    std::exception_ptr mine;
    try {
      in_worker = true;
      fn(0, n / chunks);
    } catch (...) {
      mine = std::current_exception();
    }
    in_worker = false;
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    if (mine) {
      std::rethrow_exception(mine);
    }
    if (error_) {
      std::rethrow_exception(error_);
    }
  }

 private:
  void work(int index, unsigned long seen) {
    in_worker = true;
    while (true) {
      const std::function<void(int, int)>* fn;
      int begin, end;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || generation_ != seen; });
        if (quit_) {
          return;
        }
        seen = generation_;
        if (index >= chunks_) {
          continue;
        }
        fn = fn_;
        begin = int(long(n_) * index / chunks_);
        end = int(long(n_) * (index + 1) / chunks_);
      }
      std::exception_ptr err;
      try {
        (*fn)(begin, end);
      } catch (...) {
        err = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lk(m_);
        if (err && !error_) {
          error_ = err;
        }
        if (--pending_ == 0) {
          done_cv_.notify_one();
        }
      }
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) {
      t.join();
    }
    workers_.clear();
  }

  std::mutex run_mutex_; // one parallel region at a time
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* fn_ = nullptr;
  int nthreads_ = 1, n_ = 0, chunks_ = 0, pending_ = 0;
  unsigned long generation_ = 0;
  bool quit_ = false;
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

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument(
        "[set_num_threads] The number of threads must be at least 1, got " +
        std::to_string(n) + ".");
  }
  pool().resize(n);
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
