// Copyright © 2026 mlx-lowbit contributors.
//
// eval_gpu for LowBitGatherMatmul: encodes gather_plan.h's one launch of
// metal/gather.h (x @ W.T; gather.cpp builds transpose=False from the
// dequantize kernel and gather_mm instead).

#include <stdexcept>
#include <string>

#include "mlx_lowbit/gather.h"
#include "mlx_lowbit/gather_plan.h"

#ifdef _METAL_
#include <dlfcn.h>

#include <filesystem>

#include "mlx/allocator.h"
#include "mlx/backend/metal/device.h"
#endif

namespace mlx_lowbit {

#ifdef _METAL_
namespace {

// The package's metallib, next to the extension module (as lowbit_matmul.cpp
// finds it).
const std::string& gather_library_dir() {
  static const std::string dir = []() {
    Dl_info info;
    if (!dladdr(reinterpret_cast<void*>(&gather_library_dir), &info)) {
      throw std::runtime_error("[mlx_lowbit] Cannot locate the extension module on disk.");
    }
    return std::filesystem::path(info.dli_fname).parent_path().string();
  }();
  return dir;
}

} // namespace
#endif

void LowBitGatherMatmul::eval_gpu(const std::vector<array>& inputs, array& out) {
#ifdef _METAL_
  if (!transpose_) {
    throw std::logic_error("[LowBitGatherMatmul::eval_gpu] transpose=False is built as other ops.");
  }
  out.set_data(mx::allocator::malloc(out.nbytes()));
  if (out.size() == 0) {
    return;
  }
  // inputs: x, packed, scales, [biases], [codebook], lhs, rhs.
  const array& x = inputs[0];
  const array& packed = inputs[1];
  const array& scales = inputs[2];
  const array& lhs = inputs[inputs.size() - 2];
  const array& rhs = inputs.back();
  const bool codebook = spec_.format == Format::Codebook;
  const array& biases = has_bias_ ? inputs[3] : scales; // never read without biases
  const array& patterns = codebook ? inputs[inputs.size() - 3] : scales;
  GatherProblem q;
  q.spec = spec_;
  q.has_bias = has_bias_;
  q.scales_f32 = scales.dtype() == mx::float32;
  q.shared_codebook = codebook && patterns.ndim() == 1;
  q.dtype = x.dtype();
  q.B = out.shape(0);
  q.M = x.shape(1);
  q.N = packed.shape(1);
  q.K = x.shape(2);
  q.experts = packed.shape(0);
  q.x_batches = x.shape(0);
  q.sorted = sorted_indices_;
  GatherLaunch l = plan_gather(q);
  auto& d = mx::metal::device(stream().device);
  auto* lib = d.get_library("mlx_lowbit", gather_library_dir());
  auto& enc = mx::metal::get_command_encoder(stream());
  enc.set_compute_pipeline_state(d.get_kernel(l.kernel, lib));
  enc.set_input_array(x, LOWBIT_BUFFER_X);
  enc.set_input_array(packed, LOWBIT_BUFFER_PACKED);
  enc.set_input_array(scales, LOWBIT_BUFFER_SCALES);
  enc.set_input_array(biases, LOWBIT_BUFFER_BIASES);
  enc.set_input_array(patterns, LOWBIT_BUFFER_CODEBOOK);
  enc.set_output_array(out, LOWBIT_BUFFER_OUT);
  enc.set_bytes(l.params, LOWBIT_BUFFER_PARAMS);
  enc.set_input_array(lhs, LOWBIT_BUFFER_LHS);
  enc.set_input_array(rhs, LOWBIT_BUFFER_RHS);
  enc.dispatch_threadgroups(
      MTL::Size(l.grid[0], l.grid[1], l.grid[2]),
      MTL::Size(l.threadgroup[0], l.threadgroup[1], l.threadgroup[2]));
#else
  (void)inputs;
  (void)out;
  throw std::runtime_error(
      "[LowBitGatherMatmul::eval_gpu] This build of mlx-lowbit has no Metal kernels "
      "(MLX without Metal); use stream=mx.cpu.");
#endif
}

} // namespace mlx_lowbit
