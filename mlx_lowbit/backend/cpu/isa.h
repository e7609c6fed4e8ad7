// Copyright © 2026 mlx-lowbit contributors.
//
// Which CPU kernels run: the best SIMD set this CPU supports, unless a
// caller forces one (set_isa, or MLX_LOWBIT_CPU_ISA read at every dispatch)
// to compare paths or to reproduce a result.
#pragma once

#include <string>
#include <vector>

#include "mlx_lowbit/backend/cpu/kernel_abi.h"

namespace mlx_lowbit::cpu {

enum class Isa { Portable, Avx2, Avx512, Neon };

const char* isa_name(Isa isa);

// The paths this build can run on this CPU, slowest first ("portable" is
// always there).
std::vector<Isa> available_isas();

// The path the next product will use: set_isa's choice, else
// MLX_LOWBIT_CPU_ISA, else the last of available_isas(). Throws
// std::invalid_argument for a name that is unknown or not available here.
Isa active_isa();

// "auto" returns to automatic choice; any other name must be available.
void set_isa(const std::string& name);

// The kernels of a SIMD path; null for Isa::Portable.
const KernelTable* kernels_for(Isa isa);

// The table-lookup GEMV (ternary, binary) that goes with a path, or null: only the
// avx512 path has one, and only on CPUs with AVX-512 VBMI (vpermi2b).
const LutKernels* lut_kernels_for(Isa isa);

} // namespace mlx_lowbit::cpu
