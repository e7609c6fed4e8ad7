// Copyright © 2026 mlx-lowbit contributors.
//
// The schedule request of one product and the GPU dispatch plan made from
// it: which kernels run, in which order, on which grid, with which argument
// structs and workspace. Pure C++ (no Metal): eval_gpu encodes exactly this
// plan, and the Linux tests run the same plan through the Metal emulator
// (mlx_lowbit.testing.metal_matmul).
// docs/KERNELS.md explains the schedules and the auto heuristic.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mlx/dtype.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/kernel_names.h"
#include "mlx_lowbit/kernel_params.h"
#include "mlx_lowbit/schedule.h"

namespace mlx_lowbit {

// How the caller asks for a product to be split into work. The GPU backend
// turns it into a dispatch plan; the CPU backend ignores it (eval_cpu picks
// its kernel path from the ISA alone).
struct ScheduleRequest {
  Schedule schedule = Schedule::Auto;
  FixUp fixup = FixUp::Deterministic;
  int split_k = 0; // 0: chosen by the planner
  // GPU tile overrides for ablations (0: the planner's choice).
  int bm = 0;
  int bn = 0;
  int bk = 0;

  bool operator==(const ScheduleRequest&) const = default;
};

// Checks what no backend accepts (negative split or tile sizes).
void validate_schedule_request(const ScheduleRequest& request, std::string_view tag);

// A request from the names and numbers the Python API takes, checked.
ScheduleRequest make_schedule_request(
    std::string_view schedule,
    std::string_view streamk_fixup,
    int split_k,
    int bm,
    int bn,
    int bk,
    std::string_view tag);

// Tunables of the planner (docs/KERNELS.md says where each comes from).
struct PlannerConstants {
  // GEMV up to this many rows of x; GEMM above (auto).
  static constexpr int kGemvMaxM = 8;
  // Threadgroups that run at once on one GPU core (the persistent grid).
  static constexpr int kGroupsPerCore = 2;
  // CUTLASS's stream-K constants: keep data-parallel when the last wave is
  // at least this full; at least this many K-iterations per stream-K group;
  // fix-up cost in K-iterations (a fixed part plus one per peer).
  static constexpr double kDpEfficiency = 0.92;
  static constexpr int kMinItersPerGroup = 2;
  static constexpr int kFixupStartup = 10;
  static constexpr int kFixupPerPeer = 3;
  // GPU cores the emulator's plans assume when not told (the smallest M1).
  // eval_gpu never assumes it (backend/metal/gpu_cores.h).
  static constexpr int kDefaultGpuCores = 8;
};

// The GEMM tile shapes metal/lowbit.metal instantiates; the first is the
// default.
const std::vector<TileConfig>& gemm_tiles();

enum class BufferRole { X, Packed, Scales, Biases, Codebook, Out, Workspace };
const char* buffer_role_name(BufferRole role);

struct BufferBinding {
  int slot;
  BufferRole role;
  bool written; // the launch writes it (orders it after earlier writers)
};

struct KernelLaunch {
  std::string kernel;
  std::array<int, 3> grid;        // threadgroups
  std::array<int, 3> threadgroup; // threads per threadgroup
  std::vector<BufferBinding> buffers;
  std::vector<uint8_t> params; // the constant struct, bound at LOWBIT_BUFFER_PARAMS
};

// One product: out (M, N) = x (M, K) @ w (N, K)^T in `dtype`.
struct MatmulProblem {
  FormatSpec spec;
  bool has_bias = false;
  bool scales_f32 = false;
  mx::Dtype dtype = mx::float16;
  int M = 0;
  int N = 0;
  int K = 0;
};

struct DispatchPlan {
  Schedule schedule = Schedule::Auto; // as resolved (never Auto)
  TileConfig tile{};                  // GEMM schedules only
  lowbit::MatmulParams params{};
  std::vector<KernelLaunch> launches; // in order
  int64_t workspace_floats = 0;       // fp32 scratch the launches share
};

// Rejects, when the op is built on a GPU stream, what the Metal kernels do
// not do: int8 activations, tile shapes that are not instantiated, more
// K-splits than K-iterations. Throws std::invalid_argument "[tag] ...".
void validate_gpu_request(int K, const ScheduleRequest& request, std::string_view tag);

// Rejects a problem no plan exists for: M or N below 1, K not a positive
// multiple of the group size. lowbit_matmul gets these from validated
// arrays; metal_plan takes them as bare numbers.
void validate_matmul_problem(const MatmulProblem& problem, std::string_view tag);

// Whether an array bound `byte_offset` bytes into its buffer can be read by
// the kernels' vector loads (kBindingAlignment); eval_gpu copies it if not.
bool binding_is_aligned(int64_t byte_offset);

// Threadgroups of the persistent (stream-K) grid for a GPU with `cores`.
int persistent_groups(int gpu_cores);

// The stream-K group count for `tiles` tiles of `iters` K-iterations with at
// most `max_groups` groups: the makespan minimum of CUTLASS's cost model,
// with at least kMinItersPerGroup iterations per group.
int choose_sk_groups(int tiles, int iters, int max_groups);

DispatchPlan plan_matmul(
    const MatmulProblem& problem, const ScheduleRequest& request, int gpu_cores);

DispatchPlan plan_dequantize(
    const FormatSpec& spec, bool has_bias, bool scales_f32, mx::Dtype dtype, int N, int K);

} // namespace mlx_lowbit
