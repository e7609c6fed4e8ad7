// Copyright © 2026 mlx-lowbit contributors.
//
// eval_gpu for the primitives: the planner (planner.h, pure C++) decides the
// kernels, grids, argument structs and workspace; this file only encodes that
// plan with MLX's Metal command encoder. The same plan is what
// mlx_lowbit.testing.metal_matmul runs through the emulator on Linux.

#include <optional>
#include <stdexcept>
#include <string>

#include "mlx_lowbit/backend/metal/gpu_cores.h"
#include "mlx_lowbit/planner.h"
#include "mlx_lowbit/primitives.h"

#ifdef _METAL_
#include <dlfcn.h>

#include <filesystem>

#include "mlx/allocator.h"
#include "mlx/backend/gpu/copy.h"
#include "mlx/backend/metal/device.h"
#endif

namespace mlx_lowbit {

#ifdef _METAL_
namespace {

// The arrays a plan's buffer roles refer to. Absent optional inputs are
// bound to an array the kernel never reads for them.
struct Operands {
  const array* x = nullptr;
  const array* packed = nullptr;
  const array* scales = nullptr;
  const array* biases = nullptr;
  const array* codebook = nullptr;
  array* out = nullptr;
  array* workspace = nullptr;
};

Operands weight_operands(const FormatSpec& spec, bool has_bias, const std::vector<array>& w) {
  // w: packed, scales, [biases], [codebook] (ops.cpp's order).
  Operands o;
  o.packed = &w[0];
  o.scales = &w[1];
  o.biases = has_bias ? &w[2] : o.scales;
  o.codebook = spec.format == Format::Codebook ? &w[2] : o.scales;
  return o;
}

// The package's metallib sits next to the extension module that holds this
// code (setup.py ships it as package data).
const std::string& library_dir() {
  static const std::string dir = []() {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void*>(&library_dir), &info)) {
      throw std::runtime_error("[mlx_lowbit] Cannot locate the extension module on disk.");
    }
    return std::filesystem::path(info.dli_fname).parent_path().string();
  }();
  return dir;
}

// `a`, or where its binding would make the kernels' vector loads misaligned
// (a view that starts at an odd word, say), an aligned copy that lives as a
// temporary of the command buffer.
const array& aligned(const array& a, const mx::Stream& s, std::optional<array>& copy) {
  if (binding_is_aligned(a.offset())) {
    return a;
  }
  copy = mx::contiguous_copy_gpu(a, s);
  mx::metal::get_command_encoder(s).add_temporary(*copy);
  return *copy;
}

void encode(const DispatchPlan& plan, Operands o, const mx::Stream& s) {
  auto& d = mx::metal::device(s.device);
  auto* lib = d.get_library("mlx_lowbit", library_dir());
  auto& enc = mx::metal::get_command_encoder(s);
  for (auto& launch : plan.launches) {
    enc.set_compute_pipeline_state(d.get_kernel(launch.kernel, lib));
    for (auto& b : launch.buffers) {
      switch (b.role) {
        case BufferRole::X:
          enc.set_input_array(*o.x, b.slot);
          break;
        case BufferRole::Packed:
          enc.set_input_array(*o.packed, b.slot);
          break;
        case BufferRole::Scales:
          enc.set_input_array(*o.scales, b.slot);
          break;
        case BufferRole::Biases:
          enc.set_input_array(*o.biases, b.slot);
          break;
        case BufferRole::Codebook:
          enc.set_input_array(*o.codebook, b.slot);
          break;
        case BufferRole::Out:
          enc.set_output_array(*o.out, b.slot);
          break;
        case BufferRole::Workspace: {
          // Without a workspace the slot is bound to `out` and never read.
          array& ws = o.workspace ? *o.workspace : *o.out;
          // Registering a write orders this launch after the previous
          // writer (the zero fill, then the GEMM), as the fix-up needs.
          if (b.written) {
            enc.set_output_array(ws, b.slot);
          } else {
            enc.set_input_array(ws, b.slot);
          }
          break;
        }
      }
    }
    enc.set_bytes(launch.params.data(), int(launch.params.size()), LOWBIT_BUFFER_PARAMS);
    enc.dispatch_threadgroups(
        MTL::Size(launch.grid[0], launch.grid[1], launch.grid[2]),
        MTL::Size(launch.threadgroup[0], launch.threadgroup[1], launch.threadgroup[2]));
  }
}

} // namespace
#endif

void LowBitMatmul::eval_gpu(const std::vector<array>& inputs, array& out) {
#ifdef _METAL_
  // ops.cpp builds the transpose=False product without this primitive on a
  // GPU stream; reaching here with it is a bug. With activation_bits=8 the
  // input is already on its int8 grid (ops.cpp's pre-pass): the float kernel.
  if (!transpose_) {
    throw std::logic_error("[LowBitMatmul::eval_gpu] transpose=False is built as other ops.");
  }
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) {
    return;
  }
  const array& x = inputs[0];
  std::vector<array> weight(inputs.begin() + 1, inputs.end());
  std::optional<array> x_copy, packed_copy;
  weight[0] = aligned(weight[0], stream(), packed_copy);
  Operands o = weight_operands(spec_, has_bias_, weight);
  o.x = &aligned(x, stream(), x_copy);
  o.out = &out;
  MatmulProblem problem;
  problem.spec = spec_;
  problem.has_bias = has_bias_;
  problem.scales_f32 = o.scales->dtype() == mx::float32;
  problem.dtype = x.dtype();
  problem.K = x.shape(-1);
  problem.M = int(x.size() / problem.K);
  problem.N = o.packed->shape(0);
  DispatchPlan plan = plan_matmul(problem, schedule_, gpu_core_count());
  std::optional<array> workspace;
  if (plan.workspace_floats > 0) {
    workspace = array({int(plan.workspace_floats)}, mx::float32, nullptr, {});
    workspace->set_data(mx::allocator::malloc(workspace->nbytes()));
    o.workspace = &*workspace;
  }
  encode(plan, o, stream());
  if (workspace) {
    mx::metal::get_command_encoder(stream()).add_temporary(*workspace);
  }
#else
  (void)inputs;
  (void)out;
  throw std::runtime_error(
      "[LowBitMatmul::eval_gpu] This build of mlx-lowbit has no Metal kernels "
      "(MLX without Metal); use stream=mx.cpu.");
#endif
}

void LowBitDequantize::eval_gpu(const std::vector<array>& inputs, array& out) {
#ifdef _METAL_
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) {
    return;
  }
  std::vector<array> weight = inputs;
  std::optional<array> packed_copy;
  weight[0] = aligned(weight[0], stream(), packed_copy);
  Operands o = weight_operands(spec_, has_bias_, weight);
  o.out = &out;
  DispatchPlan plan = plan_dequantize(
      spec_, has_bias_, o.scales->dtype() == mx::float32, out.dtype(), out.shape(0), out.shape(1));
  encode(plan, o, stream());
#else
  (void)inputs;
  (void)out;
  throw std::runtime_error(
      "[LowBitDequantize::eval_gpu] This build of mlx-lowbit has no Metal kernels "
      "(MLX without Metal); use stream=mx.cpu.");
#endif
}

} // namespace mlx_lowbit
