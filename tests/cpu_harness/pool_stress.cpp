// Copyright © 2026 mlx-lowbit contributors.
//
// The CPU worker pool (backend/cpu/thread_pool.cpp) without Python or MLX:
// every index of every region runs exactly once, across pool sizes, region
// sizes below and above the pool size (workers that take no part in a
// region), exceptions, and nested regions (inline), including a nested
// region inside a single-chunk one. Prints "N passed, M failed".
// tests/test_cpu_kernels.py builds and runs it; it is also worth running
// under -fsanitize=thread.

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "mlx_lowbit/backend/cpu/thread_pool.h"

using namespace mlx_lowbit::cpu;

int main() {
  long passed = 0, failed = 0;
  auto check = [&](bool ok) { ok ? ++passed : ++failed; };
  for (int threads : {3, 2, 4, 1, 3}) {
    set_num_threads(threads);
    for (int it = 0; it < 2000; ++it) {
      const int n = 1 + it % 7;
      std::vector<int> hits(n, 0);
      parallel_for(n, [&](int b, int e) {
        for (int i = b; i < e; ++i) {
          hits[i]++;
        }
      });
      bool once = true;
      for (int h : hits) {
        once = once && h == 1;
      }
      check(once);
      if (it % 250 == 0) {
        bool thrown = false;
        try {
          parallel_for(5, [&](int, int e) {
            if (e == 5) {
              throw std::runtime_error("last chunk");
            }
          });
        } catch (const std::runtime_error&) {
          thrown = true;
        }
        check(thrown);
        for (int outer : {1, 4}) {
          std::atomic<int> sum{0};
          parallel_for(outer, [&](int b, int e) {
            parallel_for(4 * (e - b), [&](int bb, int ee) { sum += ee - bb; });
          });
          check(sum == 4 * outer);
        }
      }
    }
  }
  std::printf("pool: %ld passed, %ld failed\n", passed, failed);
  return failed ? 1 : 0;
}
