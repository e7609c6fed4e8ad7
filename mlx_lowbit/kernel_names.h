// Copyright © 2026 mlx-lowbit contributors.
//
// Host names of the Metal kernels, built in one place. The grammar, every
// template argument in order (metal/lowbit.metal instantiates the same set):
//   lowbit_gemv_<format>_<dtype>_mr<MR>
//   lowbit_<dataparallel|splitk|streamk>_<format>_<dtype>_bm<BM>_bn<BN>_bk<BK>_wm<WM>_wn<WN>
//   lowbit_fixup_<dtype>_bm<BM>_bn<BN>
//   lowbit_dequantize_<format>_<dtype>
// <format> is ternary, binary, codebook_v8 or codebook_v16 (the codebook
// vector size is a template argument); <dtype> is float16, bfloat16 or
// float32, the activations' (and output's) dtype.
#pragma once

#include <string>

#include "mlx/dtype.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/kernel_params.h"
#include "mlx_lowbit/schedule.h"

namespace mlx_lowbit {

struct TileConfig {
  int bm;
  int bn;
  int bk;
  int wm; // simdgroups along M
  int wn; // simdgroups along N

  bool operator==(const TileConfig&) const = default;
  int threads() const {
    return wm * wn * 32;
  }
};

std::string kernel_format_token(const FormatSpec& spec);
std::string kernel_dtype_token(mx::Dtype dtype);

std::string gemv_kernel_name(const FormatSpec& spec, mx::Dtype dtype, int mr);
// `schedule` is one with a GEMM kernel: DataParallel, SplitK or StreamK.
std::string gemm_kernel_name(
    Schedule schedule, const FormatSpec& spec, mx::Dtype dtype, const TileConfig& tile);
std::string fixup_kernel_name(mx::Dtype dtype, const TileConfig& tile);
std::string dequantize_kernel_name(const FormatSpec& spec, mx::Dtype dtype);

} // namespace mlx_lowbit
