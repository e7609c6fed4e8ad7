// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/planner.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "mlx_lowbit/errors.h"
#include "mlx_lowbit/work_split.h"

namespace mlx_lowbit {

namespace {

using lowbit::MatmulParams;
using C = PlannerConstants;

template <typename Params>
std::vector<uint8_t> bytes_of(const Params& p) {
  std::vector<uint8_t> out(sizeof(Params));
  std::memcpy(out.data(), &p, sizeof(Params));
  return out;
}

std::string tile_list() {
  std::ostringstream os;
  for (auto& t : gemm_tiles()) {
    os << (os.tellp() ? ", " : "") << "(" << t.bm << ", " << t.bn << ", " << t.bk << ")";
  }
  return os.str();
}

bool tile_matches(const TileConfig& t, const ScheduleRequest& r) {
  return (r.bm == 0 || r.bm == t.bm) && (r.bn == 0 || r.bn == t.bn) && (r.bk == 0 || r.bk == t.bk);
}

// The tile of a GEMM: the request's, else 64 x 64 once M and N are that
// large and such tiles fill the persistent grid (twice the reuse of each
// loaded tile), else 32 x 32.
TileConfig choose_tile(const ScheduleRequest& r, int M, int N, int groups) {
  if (r.bm || r.bn || r.bk) {
    for (auto& t : gemm_tiles()) {
      if (tile_matches(t, r)) {
        return t;
      }
    }
    throw std::logic_error("[plan_matmul] tile request was not validated.");
  }
  const TileConfig& large = gemm_tiles()[1];
  int64_t large_tiles = int64_t(lowbit::ceil_div(M, large.bm)) * lowbit::ceil_div(N, large.bn);
  bool fits = M >= large.bm && N >= large.bn && large_tiles >= groups;
  return fits ? large : gemm_tiles()[0];
}

// Makespan of `groups` stream-K groups over tiles x iters iterations, in
// K-iterations, with CUTLASS's fix-up cost when some tile is split.
int64_t sk_cost(int tiles, int iters, int groups) {
  int64_t total = int64_t(tiles) * iters;
  int64_t per = total / groups;
  int64_t makespan = (total + groups - 1) / groups;
  bool aligned = total % groups == 0 && per % iters == 0;
  if (aligned) {
    return makespan;
  }
  int64_t peers = std::min<int64_t>((iters + per - 1) / std::max<int64_t>(per, 1) + 1, groups);
  return makespan + C::kFixupStartup + C::kFixupPerPeer * peers;
}

// Bits per weight a GEMM reads of the weight (packed, scales, biases).
double weight_bits(const MatmulProblem& pr) {
  const FormatSpec& f = pr.spec;
  double packed = f.format == Format::Ternary  ? 2.0
                  : f.format == Format::Binary ? 1.0
                                               : double(f.index_bits) / f.vector_size;
  double per_group = (pr.scales_f32 ? 32.0 : 16.0) * (pr.has_bias ? 2 : 1);
  return packed + per_group / f.group_size;
}

// log2 of the tile rows per panel of the tile order (work_split.h
// tile_coord). The F tiles in flight at once, as a panel P tile rows tall,
// read P x tiles (BM rows of x) and F / P weight tiles (BN rows of the
// weight) per K step; the sum is least at P = sqrt(F x weight bytes / x
// bytes), rounded to a power of two, and a panel need not be taller than
// tiles_m. Half-precision x at 2 bits per weight over a 64 x 64 tile and 80
// groups gives P = 4.
int choose_swizzle_log(
    const MatmulProblem& pr, const TileConfig& tile, const MatmulParams& p, int groups) {
  int tiles = lowbit::tiles_of(p);
  int in_flight = std::clamp(groups / std::max(p.split_k, 1), 1, tiles);
  double x_bytes = double(tile.bm) * mx::size_of(pr.dtype);
  double w_bytes = double(tile.bn) * weight_bits(pr) / 8.0;
  double panel = std::sqrt(in_flight * w_bytes / x_bytes);
  int log = panel <= 1.0 ? 0 : int(std::lround(std::log2(panel)));
  int tallest = 0; // ceil(log2(tiles_m)): one panel, the whole of M
  while ((1 << tallest) < p.tiles_m) {
    ++tallest;
  }
  return std::min(log, tallest);
}

Schedule choose_schedule(int M, int tiles, int iters, int groups) {
  if (M <= C::kGemvMaxM) {
    return Schedule::Gemv;
  }
  if (tiles >= groups) {
    int waves = lowbit::ceil_div(tiles, groups);
    double efficiency = double(tiles) / (double(waves) * groups);
    return efficiency >= C::kDpEfficiency ? Schedule::DataParallel : Schedule::Hybrid;
  }
  // Fewer tiles than the GPU runs at once: stream-K pays when splitting K
  // beats one full tile per group, fix-up included.
  int g = choose_sk_groups(tiles, iters, groups);
  return sk_cost(tiles, iters, g) < iters ? Schedule::StreamK : Schedule::DataParallel;
}

MatmulParams base_params(const MatmulProblem& pr) {
  MatmulParams p{};
  p.w.N = pr.N;
  p.w.K = pr.K;
  p.w.group_size = pr.spec.group_size;
  p.w.words_per_row = pr.spec.packed_words_per_row(pr.K);
  p.w.index_bits = pr.spec.format == Format::Codebook ? pr.spec.index_bits : 0;
  p.w.has_bias = pr.has_bias ? 1 : 0;
  p.w.scales_f32 = pr.scales_f32 ? 1 : 0;
  p.M = pr.M;
  p.split_k = 1;
  return p;
}

// The weight and activation slots every matmul kernel takes. Absent biases
// or codebook are bound to a dummy (they are never read).
std::vector<BufferBinding> matmul_buffers(bool with_workspace) {
  std::vector<BufferBinding> b = {
      {LOWBIT_BUFFER_X, BufferRole::X, false},
      {LOWBIT_BUFFER_PACKED, BufferRole::Packed, false},
      {LOWBIT_BUFFER_SCALES, BufferRole::Scales, false},
      {LOWBIT_BUFFER_BIASES, BufferRole::Biases, false},
      {LOWBIT_BUFFER_CODEBOOK, BufferRole::Codebook, false},
      {LOWBIT_BUFFER_OUT, BufferRole::Out, true},
  };
  if (with_workspace) {
    b.push_back({LOWBIT_BUFFER_WORKSPACE, BufferRole::Workspace, true});
  }
  return b;
}

void add_gemv(DispatchPlan& plan, const MatmulProblem& pr) {
  int mr = lowbit::gemv_mr(pr.M);
  int rows = lowbit::kGemvSimdgroups * lowbit::gemv_rows_per_simdgroup(pr.spec.format);
  plan.launches.push_back(
      {gemv_kernel_name(pr.spec, pr.dtype, mr),
       {lowbit::ceil_div(pr.N, rows), lowbit::ceil_div(pr.M, mr), 1},
       {lowbit::kGemvThreads, 1, 1},
       matmul_buffers(false),
       bytes_of(plan.params)});
}

void add_gemm(DispatchPlan& plan, const MatmulProblem& pr) {
  const MatmulParams& p = plan.params;
  auto kind = Schedule(p.schedule);
  int64_t slots = lowbit::workspace_slots(p);
  plan.workspace_floats = slots * plan.tile.bm * plan.tile.bn;
  plan.launches.push_back(
      {gemm_kernel_name(kind, pr.spec, pr.dtype, plan.tile),
       {lowbit::gemm_groups(p), 1, 1},
       {plan.tile.threads(), 1, 1},
       matmul_buffers(true),
       bytes_of(p)});
  bool any_split = false;
  for (int t = 0; t < lowbit::fixup_groups(p) && !any_split; ++t) {
    any_split = lowbit::contributor_count(p, t) > 0;
  }
  if (any_split) {
    plan.launches.push_back(
        {fixup_kernel_name(pr.dtype, plan.tile),
         {lowbit::fixup_groups(p), 1, 1},
         {lowbit::kFixupThreads, 1, 1},
         {{LOWBIT_BUFFER_OUT, BufferRole::Out, true},
          {LOWBIT_BUFFER_WORKSPACE, BufferRole::Workspace, false}},
         bytes_of(p)});
  }
}

} // namespace

const std::vector<TileConfig>& gemm_tiles() {
#define LOWBIT_TILE_CONFIG(unused, bm, bn, bk, wm, wn) TileConfig{bm, bn, bk, wm, wn},
  static const std::vector<TileConfig> tiles = {LOWBIT_GEMM_TILES(LOWBIT_TILE_CONFIG, 0)};
#undef LOWBIT_TILE_CONFIG
  return tiles;
}

const char* buffer_role_name(BufferRole role) {
  switch (role) {
    case BufferRole::X:
      return "x";
    case BufferRole::Packed:
      return "packed";
    case BufferRole::Scales:
      return "scales";
    case BufferRole::Biases:
      return "biases";
    case BufferRole::Codebook:
      return "codebook";
    case BufferRole::Out:
      return "out";
    case BufferRole::Workspace:
      return "workspace";
  }
  throw std::logic_error("[buffer_role_name] corrupt BufferRole value.");
}

void validate_schedule_request(const ScheduleRequest& r, std::string_view tag) {
  if (r.split_k < 0) {
    throw_invalid(tag, "split_k must be >= 0 (0 lets the planner choose), got ", r.split_k, ".");
  }
  if (r.bm < 0 || r.bn < 0 || r.bk < 0) {
    throw_invalid(
        tag, "Tile overrides bm, bn, bk must be >= 0 (0 lets the planner choose), got ", r.bm, ", ",
        r.bn, ", ", r.bk, ".");
  }
}

ScheduleRequest make_schedule_request(
    std::string_view schedule,
    std::string_view streamk_fixup,
    int split_k,
    int bm,
    int bn,
    int bk,
    std::string_view tag) {
  ScheduleRequest r{
      parse_schedule(schedule, tag), parse_fixup(streamk_fixup, tag), split_k, bm, bn, bk};
  validate_schedule_request(r, tag);
  return r;
}

void validate_gpu_request(int K, const ScheduleRequest& request, std::string_view tag) {
  if (request.bm || request.bn || request.bk) {
    bool found = false;
    for (auto& t : gemm_tiles()) {
      found = found || tile_matches(t, request);
    }
    if (!found) {
      throw_invalid(
          tag, "No GPU tile (bm, bn, bk) = (", request.bm, ", ", request.bn, ", ", request.bk,
          ") is instantiated (0 means any); available: ", tile_list(), ".");
    }
  }
  int iters = K / lowbit::kGemmBK;
  if (request.split_k > iters) {
    throw_invalid(
        tag, "split_k=", request.split_k, " exceeds the ", iters, " K-iterations (K/",
        lowbit::kGemmBK, " with K=", K, ") of this weight.");
  }
}

void validate_matmul_problem(const MatmulProblem& pr, std::string_view tag) {
  if (pr.M < 1 || pr.N < 1 || pr.K < 1 || pr.K % pr.spec.group_size != 0) {
    throw_invalid(
        tag, "Need M, N >= 1 and K a multiple of group_size; got M=", pr.M, ", N=", pr.N,
        ", K=", pr.K, ".");
  }
}

bool binding_is_aligned(int64_t byte_offset) {
  return byte_offset % lowbit::kBindingAlignment == 0;
}

int persistent_groups(int gpu_cores) {
  return std::max(1, gpu_cores) * C::kGroupsPerCore;
}

int choose_sk_groups(int tiles, int iters, int max_groups) {
  int64_t total = int64_t(tiles) * iters;
  int limit = int(std::min<int64_t>(max_groups, total / C::kMinItersPerGroup));
  int best = 1;
  int64_t best_cost = sk_cost(tiles, iters, 1);
  for (int g = 2; g <= limit; ++g) {
    int64_t cost = sk_cost(tiles, iters, g);
    if (cost < best_cost) {
      best = g;
      best_cost = cost;
    }
  }
  return best;
}

DispatchPlan plan_matmul(const MatmulProblem& pr, const ScheduleRequest& request, int gpu_cores) {
  DispatchPlan plan;
  plan.params = base_params(pr);
  MatmulParams& p = plan.params;
  int groups = persistent_groups(gpu_cores);
  plan.tile = choose_tile(request, pr.M, pr.N, groups);
  p.tiles_m = lowbit::ceil_div(pr.M, plan.tile.bm);
  p.tiles_n = lowbit::ceil_div(pr.N, plan.tile.bn);
  p.iters_per_tile = pr.K / plan.tile.bk;
  int tiles = lowbit::tiles_of(p);
  int iters = p.iters_per_tile;
  plan.schedule = request.schedule == Schedule::Auto ? choose_schedule(pr.M, tiles, iters, groups)
                                                     : request.schedule;
  p.fixup = int(request.fixup);

  switch (plan.schedule) {
    case Schedule::Gemv:
      plan.tile = {};
      p.tiles_m = p.tiles_n = p.iters_per_tile = 0;
      add_gemv(plan, pr);
      return plan;
    case Schedule::DataParallel:
      p.schedule = int(Schedule::DataParallel);
      break;
    case Schedule::SplitK: {
      p.schedule = int(Schedule::SplitK);
      // Default: enough splits to fill the persistent grid.
      int splits = request.split_k > 0 ? request.split_k : lowbit::ceil_div(groups, tiles);
      p.split_k = std::clamp(splits, 1, iters);
      break;
    }
    case Schedule::StreamK:
    case Schedule::Hybrid: {
      // Hybrid is the stream-K kernel too.
      p.schedule = int(Schedule::StreamK);
      // Hybrid: data-parallel full waves, then one stream-K wave made of the
      // last full wave plus the partial one. Stream-K: every tile.
      int full_waves = tiles / groups;
      p.sk_tiles =
          plan.schedule == Schedule::Hybrid && full_waves >= 1 ? groups + tiles % groups : tiles;
      if (int64_t(p.sk_tiles) * iters > INT_MAX) {
        throw std::invalid_argument(
            "[plan_matmul] Too many tiles for schedule='streamk' (the K-iteration count "
            "overflows); use 'hybrid' or 'auto'.");
      }
      // Asked for by name: the whole persistent grid, as the schedule is
      // defined. Chosen by auto: the group count of the cost model.
      int64_t limit = int64_t(p.sk_tiles) * iters / C::kMinItersPerGroup;
      p.sk_groups = request.schedule == Schedule::Auto ? choose_sk_groups(p.sk_tiles, iters, groups)
                                                       : int(std::clamp<int64_t>(limit, 1, groups));
      break;
    }
    case Schedule::Auto:
      throw std::logic_error("[plan_matmul] unresolved auto schedule.");
  }
  p.swizzle_log = choose_swizzle_log(pr, plan.tile, p, groups);
  add_gemm(plan, pr);
  return plan;
}

DispatchPlan plan_dequantize(
    const FormatSpec& spec, bool has_bias, bool scales_f32, mx::Dtype dtype, int N, int K) {
  MatmulProblem pr{spec, has_bias, scales_f32, dtype, 0, N, K};
  DispatchPlan plan;
  plan.params = base_params(pr);
  plan.launches.push_back(
      {dequantize_kernel_name(spec, dtype),
       {lowbit::ceil_div(K, lowbit::kDequantizeK), N, 1},
       {lowbit::kDequantizeThreads, 1, 1},
       {{LOWBIT_BUFFER_PACKED, BufferRole::Packed, false},
        {LOWBIT_BUFFER_SCALES, BufferRole::Scales, false},
        {LOWBIT_BUFFER_BIASES, BufferRole::Biases, false},
        {LOWBIT_BUFFER_CODEBOOK, BufferRole::Codebook, false},
        {LOWBIT_BUFFER_OUT, BufferRole::Out, true}},
       bytes_of(plan.params.w)});
  return plan;
}

} // namespace mlx_lowbit
