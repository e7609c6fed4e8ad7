// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/backend/metal/gpu_cores.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include "mlx_lowbit/errors.h"

#ifdef __APPLE__
#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#endif

namespace mlx_lowbit {

namespace {

// 0 when the device does not say.
int device_gpu_cores() {
#ifdef __APPLE__
  // MACH_PORT_NULL selects the default main port on every macOS version.
  io_service_t service =
      IOServiceGetMatchingService(MACH_PORT_NULL, IOServiceMatching("AGXAccelerator"));
  if (!service) {
    return 0;
  }
  CFTypeRef value =
      IORegistryEntryCreateCFProperty(service, CFSTR("gpu-core-count"), kCFAllocatorDefault, 0);
  IOObjectRelease(service);
  int cores = 0;
  if (value) {
    if (CFGetTypeID(value) == CFNumberGetTypeID()) {
      CFNumberGetValue(static_cast<CFNumberRef>(value), kCFNumberIntType, &cores);
    }
    CFRelease(value);
  }
  return cores > 0 ? cores : 0;
#else
  return 0;
#endif
}

} // namespace

int parse_gpu_cores(std::string_view text) {
  int cores = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), cores);
  if (ec != std::errc() || end != text.data() + text.size() || cores < 1) {
    throw_invalid(
        "MLX_LOWBIT_GPU_CORES", "Expected a positive integer number of GPU cores, got '", text,
        "'.");
  }
  return cores;
}

GpuCores gpu_core_info() {
  GpuCores info;
  if (const char* env = std::getenv("MLX_LOWBIT_GPU_CORES"); env && *env) {
    info = {parse_gpu_cores(env), "MLX_LOWBIT_GPU_CORES"};
  } else {
    static const int device = device_gpu_cores();
    if (device < 1) {
      throw std::runtime_error(
          "[mlx_lowbit] Cannot read the GPU core count (IORegistry AGXAccelerator "
          "'gpu-core-count'); the stream-K and split-K grids are sized by it. Set "
          "MLX_LOWBIT_GPU_CORES to the GPU's core count (System Information > Graphics).");
    }
    info = {device, "IORegistry gpu-core-count"};
  }
  static std::once_flag logged;
  std::call_once(logged, [&info]() {
    if (const char* v = std::getenv("MLX_LOWBIT_VERBOSE"); v && std::string_view(v) == "1") {
      std::fprintf(
          stderr, "[mlx_lowbit] planning for %d GPU cores (%s)\n", info.cores, info.source.c_str());
    }
  });
  return info;
}

int gpu_core_count() {
  return gpu_core_info().cores;
}

} // namespace mlx_lowbit
