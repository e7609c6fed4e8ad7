// The executor's interface to the driver: the registry of kernels and one launch.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "runtime.h"

namespace mslrt {

struct Buffer {
  unsigned char* data = nullptr; // exactly `size` bytes from malloc, so ASan sees overruns
  size_t size = 0;
};

struct Launch {
  std::string kernel;
  bool dispatch_threads = false; // dispatchThreads (grid in threads) vs dispatchThreadgroups
  unsigned grid[3] = {1, 1, 1};
  unsigned threadgroup[3] = {1, 1, 1};
  int buffer_of_slot[__MSL_MAX_BINDINGS];
  // Bytes into the buffer where the binding starts (MLX binds an array at
  // its offset, so a view can start at any element).
  unsigned long buffer_offset[__MSL_MAX_BINDINGS] = {};
  unsigned long threadgroup_bytes[__MSL_MAX_BINDINGS] = {};
  bool shuffle = true;
  unsigned long seed = 0;
  double timeout_s = 60;
  Launch() {
    for (int& b : buffer_of_slot)
      b = -1;
  }
};

std::vector<std::string> kernel_names();
void run_launch(const Launch& launch, std::vector<Buffer>& buffers);
void shutdown_pool();

} // namespace mslrt
