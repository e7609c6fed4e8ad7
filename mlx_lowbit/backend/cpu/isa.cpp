// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/backend/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace mlx_lowbit::cpu {

namespace {

constexpr Isa kAll[] = {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon};

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::Portable:
      return true;
#if defined(MLX_LOWBIT_X86_KERNELS)
    // The flags each kernel file is compiled with (CMakeLists.txt).
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
    case Isa::Avx512:
      return cpu_has(Isa::Avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(MLX_LOWBIT_NEON_KERNELS)
    case Isa::Neon:
#if defined(__APPLE__)
      return true; // every Apple silicon core has NEON with sdot
#elif defined(__linux__)
      return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
      return false;
#endif
#endif
    default:
      return false;
  }
}

std::string names(const std::vector<Isa>& isas) {
  std::string s;
  for (Isa i : isas) {
    s += (s.empty() ? "" : ", ") + std::string(isa_name(i));
  }
  return s;
}

Isa parse(const std::string& name, const char* source) {
  for (Isa isa : available_isas()) {
    if (name == isa_name(isa)) {
      return isa;
    }
  }
  std::ostringstream msg;
  msg << "[cpu_isa] " << source << " '" << name << "' is not a CPU kernel path of this "
      << "build and CPU; available: " << names(available_isas()) << " (or auto).";
  throw std::invalid_argument(msg.str());
}

// -1: automatic; otherwise an Isa forced by set_isa.
std::atomic<int> forced{-1};

} // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Portable:
      return "portable";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    case Isa::Neon:
      return "neon";
  }
  return "unknown";
}

std::vector<Isa> available_isas() {
  static const std::vector<Isa> found = [] {
    std::vector<Isa> out;
    for (Isa isa : kAll) {
      if (cpu_has(isa)) {
        out.push_back(isa);
      }
    }
    return out;
  }();
  return found;
}

Isa active_isa() {
  int f = forced.load();
  if (f >= 0) {
    return Isa(f);
  }
  const char* env = std::getenv("MLX_LOWBIT_CPU_ISA");
  if (env && *env && std::string(env) != "auto") {
    return parse(env, "MLX_LOWBIT_CPU_ISA=");
  }
  return available_isas().back();
}

void set_isa(const std::string& name) {
  forced.store(name == "auto" ? -1 : int(parse(name, "set_cpu_isa:")));
}

const KernelTable* kernels_for(Isa isa) {
  switch (isa) {
#if defined(MLX_LOWBIT_X86_KERNELS)
    case Isa::Avx2:
      return avx2_kernels();
    case Isa::Avx512:
      return avx512_kernels();
#endif
#if defined(MLX_LOWBIT_NEON_KERNELS)
    case Isa::Neon:
      return neon_kernels();
#endif
    default:
      return nullptr;
  }
}

const LutKernels* lut_kernels_for(Isa isa) {
#if defined(MLX_LOWBIT_X86_KERNELS)
  if (isa == Isa::Avx512 && __builtin_cpu_supports("avx512vbmi")) {
    return avx512_lut_kernels();
  }
#endif
  (void)isa;
  return nullptr;
}

} // namespace mlx_lowbit::cpu
