// Copyright © 2026 mlx-lowbit contributors.

#include "mlx_lowbit/kernel_names.h"

#include <sstream>
#include <stdexcept>

namespace mlx_lowbit {

std::string kernel_format_token(const FormatSpec& spec) {
  if (spec.format == Format::Codebook) {
    return "codebook_v" + std::to_string(spec.vector_size);
  }
  return format_name(spec.format);
}

std::string kernel_dtype_token(mx::Dtype dtype) {
  if (dtype == mx::float16) {
    return "float16";
  }
  if (dtype == mx::bfloat16) {
    return "bfloat16";
  }
  if (dtype == mx::float32) {
    return "float32";
  }
  throw std::logic_error("[kernel_dtype_token] activations are float16, bfloat16 or float32.");
}

std::string gemv_kernel_name(const FormatSpec& spec, mx::Dtype dtype, int mr) {
  std::ostringstream os;
  os << "lowbit_gemv_" << kernel_format_token(spec) << "_" << kernel_dtype_token(dtype) << "_mr"
     << mr;
  return os.str();
}

std::string gemm_kernel_name(
    Schedule schedule, const FormatSpec& spec, mx::Dtype dtype, const TileConfig& tile) {
  if (schedule != Schedule::DataParallel && schedule != Schedule::SplitK &&
      schedule != Schedule::StreamK) {
    throw std::logic_error("[gemm_kernel_name] no GEMM kernel for this schedule.");
  }
  // The token is the schedule's name, from schedule.cpp's one table.
  std::ostringstream os;
  os << "lowbit_" << schedule_name(schedule) << "_" << kernel_format_token(spec) << "_"
     << kernel_dtype_token(dtype) << "_bm" << tile.bm << "_bn" << tile.bn << "_bk" << tile.bk
     << "_wm" << tile.wm << "_wn" << tile.wn;
  return os.str();
}

std::string fixup_kernel_name(mx::Dtype dtype, const TileConfig& tile) {
  std::ostringstream os;
  os << "lowbit_fixup_" << kernel_dtype_token(dtype) << "_bm" << tile.bm << "_bn" << tile.bn;
  return os.str();
}

std::string dequantize_kernel_name(const FormatSpec& spec, mx::Dtype dtype) {
  return "lowbit_dequantize_" + kernel_format_token(spec) + "_" + kernel_dtype_token(dtype);
}

} // namespace mlx_lowbit
