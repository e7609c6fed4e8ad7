// Copyright © 2026 mlx-lowbit contributors.
//
// The GPU planner as Python sees it: the dispatch plan eval_gpu encodes
// (mlx_lowbit.testing runs it through the Metal emulator), the work split it
// implies, and the checks a GPU stream adds when the op is built.

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "mlx_lowbit/backend/metal/gpu_cores.h"
#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/planner.h"
#include "mlx_lowbit/work_split.h"

namespace mx = mlx::core;
namespace nb = nanobind;
namespace lb = mlx_lowbit;
using namespace nb::literals;

namespace {

nb::dict params_dict(const lowbit::MatmulParams& p) {
  nb::dict d;
  d["M"] = p.M;
  d["N"] = p.w.N;
  d["K"] = p.w.K;
  d["tiles_m"] = p.tiles_m;
  d["tiles_n"] = p.tiles_n;
  d["iters_per_tile"] = p.iters_per_tile;
  d["split_k"] = p.split_k;
  d["sk_tiles"] = p.sk_tiles;
  d["sk_groups"] = p.sk_groups;
  d["swizzle_log"] = p.swizzle_log;
  d["fixup"] = lb::fixup_name(lb::FixUp(p.fixup));
  return d;
}

// Per GEMM threadgroup, its segments (tile, k_begin, k_end, slot); per
// fix-up tile, the workspace slots it sums. Computed by the same
// work_split.h functions the kernels call.
nb::dict work_dict(const lowbit::MatmulParams& p) {
  nb::list groups;
  for (int g = 0; g < lowbit::gemm_groups(p); ++g) {
    nb::list segments;
    for (int j = 0; j < lowbit::segment_count(p, g); ++j) {
      lowbit::Segment s = lowbit::segment_of(p, g, j);
      segments.append(nb::make_tuple(s.tile, s.k_begin, s.k_end, s.slot));
    }
    groups.append(segments);
  }
  nb::list fixups;
  for (int t = 0; t < lowbit::fixup_groups(p); ++t) {
    nb::list slots;
    for (int j = 0; j < lowbit::contributor_count(p, t); ++j) {
      slots.append(lowbit::contributor_slot(p, t, j));
    }
    fixups.append(slots);
  }
  nb::list tiles;
  for (int t = 0; t < lowbit::tiles_of(p); ++t) {
    lowbit::TileCoord c = lowbit::tile_coord(p, t);
    tiles.append(nb::make_tuple(c.m, c.n));
  }
  nb::dict d;
  d["groups"] = groups;
  d["fixups"] = fixups;
  d["tiles"] = tiles;
  d["workspace_slots"] = lowbit::workspace_slots(p);
  return d;
}

nb::dict plan_dict(const lb::DispatchPlan& plan, bool with_work) {
  nb::list launches;
  for (auto& l : plan.launches) {
    nb::dict buffers;
    for (auto& b : l.buffers) {
      buffers[nb::int_(b.slot)] = lb::buffer_role_name(b.role);
    }
    nb::dict launch;
    launch["kernel"] = l.kernel;
    launch["grid"] = nb::make_tuple(l.grid[0], l.grid[1], l.grid[2]);
    launch["threadgroup"] = nb::make_tuple(l.threadgroup[0], l.threadgroup[1], l.threadgroup[2]);
    launch["buffers"] = buffers;
    launch["params"] = nb::bytes(reinterpret_cast<const char*>(l.params.data()), l.params.size());
    launch["params_slot"] = LOWBIT_BUFFER_PARAMS;
    launches.append(launch);
  }
  nb::dict d;
  d["schedule"] = lb::schedule_name(plan.schedule);
  d["tile"] = nb::make_tuple(plan.tile.bm, plan.tile.bn, plan.tile.bk, plan.tile.wm, plan.tile.wn);
  d["params"] = params_dict(plan.params);
  d["launches"] = launches;
  d["workspace_floats"] = plan.workspace_floats;
  if (with_work && plan.schedule != lb::Schedule::Gemv) {
    d["work"] = work_dict(plan.params);
  }
  return d;
}

} // namespace

void init_metal(nb::module_& m) {
  m.def(
      "metal_plan",
      [](const std::string& format, int group_size, int vector_size, int index_bits, bool has_bias,
         bool scales_f32, mx::Dtype dtype, int M, int N, int K, const std::string& schedule,
         const std::string& streamk_fixup, int split_k, int bm, int bn, int bk, int gpu_cores,
         bool with_work) {
        constexpr std::string_view tag = "metal_plan";
        auto spec = lb::make_format_spec(format, group_size, vector_size, index_bits, tag);
        auto request = lb::make_schedule_request(schedule, streamk_fixup, split_k, bm, bn, bk, tag);
        lb::MatmulProblem problem{spec, has_bias, scales_f32, dtype, M, N, K};
        lb::validate_matmul_problem(problem, tag);
        lb::validate_gpu_request(K, request, tag);
        return plan_dict(lb::plan_matmul(problem, request, gpu_cores), with_work);
      },
      "fmt"_a, "group_size"_a, "vector_size"_a, "index_bits"_a, "has_biases"_a, "scales_f32"_a,
      "dtype"_a, "M"_a, "N"_a, "K"_a, "schedule"_a = "auto", "streamk_fixup"_a = "deterministic",
      "split_k"_a = 0, "bm"_a = 0, "bn"_a = 0, "bk"_a = 0,
      "gpu_cores"_a = lb::PlannerConstants::kDefaultGpuCores, "with_work"_a = false,
      R"pbdoc(
        The GPU dispatch plan of ``out (M, N) = x (M, K) @ w.T``: exactly what
        ``LowBitMatmul::eval_gpu`` encodes for a GPU with ``gpu_cores`` cores.

        Returns:
            dict: ``schedule`` (resolved), ``tile`` (bm, bn, bk, wm, wn),
            ``params``, ``launches`` (kernel, grid, threadgroup, buffers
            {slot: role}, params bytes), ``workspace_floats``, and with
            ``with_work`` the per-threadgroup segments and fix-up slots and
            each tile's (tile row, tile column) (``work_split.h``).
      )pbdoc");

  m.def(
      "metal_tile_coords",
      [](int tiles_m, int tiles_n, int swizzle_log) {
        lowbit::MatmulParams p{};
        p.tiles_m = tiles_m;
        p.tiles_n = tiles_n;
        p.swizzle_log = swizzle_log;
        nb::list tiles;
        for (int t = 0; t < lowbit::tiles_of(p); ++t) {
          lowbit::TileCoord c = lowbit::tile_coord(p, t);
          tiles.append(nb::make_tuple(c.m, c.n));
        }
        return tiles;
      },
      "tiles_m"_a, "tiles_n"_a, "swizzle_log"_a,
      "(tile row, tile column) of each GEMM tile index under work_split.h's tile_coord.");

  m.def(
      "metal_dequantize_plan",
      [](const std::string& format, int group_size, int vector_size, int index_bits, bool has_bias,
         bool scales_f32, mx::Dtype dtype, int N, int K) {
        constexpr std::string_view tag = "metal_dequantize_plan";
        auto spec = lb::make_format_spec(format, group_size, vector_size, index_bits, tag);
        return plan_dict(lb::plan_dequantize(spec, has_bias, scales_f32, dtype, N, K), false);
      },
      "fmt"_a, "group_size"_a, "vector_size"_a, "index_bits"_a, "has_biases"_a, "scales_f32"_a,
      "dtype"_a, "N"_a, "K"_a,
      "The GPU dispatch plan of dequantize (what LowBitDequantize::eval_gpu encodes).");

  m.def(
      "metal_kernel_tokens",
      [](const std::string& format, int vector_size, mx::Dtype dtype) {
        lb::FormatSpec spec{lb::parse_format(format, "metal_kernel_tokens"), 32, vector_size, 0};
        return nb::make_tuple(lb::kernel_format_token(spec), lb::kernel_dtype_token(dtype));
      },
      "fmt"_a, "vector_size"_a, "dtype"_a,
      "The (format, dtype) tokens of kernel host names, as metal/instantiate.h takes them.");

  m.def(
      "validate_gpu_request",
      [](const std::string& format, int group_size, int vector_size, int index_bits, int K,
         const std::string& schedule, const std::string& streamk_fixup, int split_k, int bm, int bn,
         int bk) {
        constexpr std::string_view tag = "lowbit_matmul";
        // The format arguments are checked as lowbit_matmul checks them
        // first; the GPU checks need only K.
        lb::make_format_spec(format, group_size, vector_size, index_bits, tag);
        auto request = lb::make_schedule_request(schedule, streamk_fixup, split_k, bm, bn, bk, tag);
        lb::validate_gpu_request(K, request, tag);
      },
      "fmt"_a, "group_size"_a, "vector_size"_a, "index_bits"_a, "K"_a, "schedule"_a = "auto",
      "streamk_fixup"_a = "deterministic", "split_k"_a = 0, "bm"_a = 0, "bn"_a = 0, "bk"_a = 0,
      "The checks lowbit_matmul adds on a GPU stream (ValueError when one fails).");

  m.def(
      "choose_sk_groups", &lb::choose_sk_groups, "tiles"_a, "iters"_a, "max_groups"_a,
      "Stream-K threadgroups for tiles x iters K-iterations (the planner's cost model).");
  m.def(
      "binding_is_aligned", &lb::binding_is_aligned, "byte_offset"_a,
      "Whether eval_gpu binds an array at this byte offset as is (else it copies it): the "
      "kernels' vector loads need kBindingAlignment-byte alignment.");
  m.def(
      "persistent_groups", &lb::persistent_groups, "gpu_cores"_a,
      "Threadgroups of the persistent grid for a GPU with this many cores.");
  m.def(
      "gpu_cores", &lb::gpu_core_count,
      "GPU cores the planner uses: $MLX_LOWBIT_GPU_CORES, else the device's count "
      "(RuntimeError when neither is known: there is no guessed default).");
  m.def(
      "gpu_core_info",
      []() {
        lb::GpuCores info = lb::gpu_core_info();
        nb::dict d;
        d["cores"] = info.cores;
        d["source"] = info.source;
        return d;
      },
      "{'cores': int, 'source': str}: the core count the planner uses and where it came from.");
  m.def(
      "gemm_tiles",
      []() {
        std::vector<std::tuple<int, int, int, int, int>> out;
        for (auto& t : lb::gemm_tiles()) {
          out.emplace_back(t.bm, t.bn, t.bk, t.wm, t.wn);
        }
        return out;
      },
      "The instantiated GEMM tiles (bm, bn, bk, wm, wn); the first is the default.");
}
