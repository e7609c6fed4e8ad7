// Copyright © 2026 mlx-lowbit contributors.
//
// The macro family that instantiates the kernels under the host names of
// mlx_lowbit/kernel_names.h. Arguments are the name's own tokens (format:
// ternary, binary, codebook_v8, codebook_v16; dtype: float16, bfloat16,
// float32), so a name and its template arguments cannot disagree.
// metal/lowbit.metal instantiates everything; the emulator's sanitizer runs
// instantiate one format and dtype with the same macros.
#pragma once

#include "metal/decode_binary.h"
#include "metal/decode_codebook.h"
#include "metal/decode_ternary.h"
#include "metal/dequantize.h"
#include "metal/fixup.h"
#include "metal/gemm.h"
#include "metal/gemv.h"

#define LOWBIT_DECODER_ternary lowbit::TernaryDecoder
#define LOWBIT_DECODER_binary lowbit::BinaryDecoder
#define LOWBIT_DECODER_codebook_v8 lowbit::CodebookDecoder<8>
#define LOWBIT_DECODER_codebook_v16 lowbit::CodebookDecoder<16>
#define LOWBIT_TYPE_float16 half
#define LOWBIT_TYPE_bfloat16 bfloat
#define LOWBIT_TYPE_float32 float

#define instantiate_kernel(name, func, ...) \
  template [[host_name(name)]] [[kernel]] decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;

#define instantiate_gemv(fmt, dtype, mr)                                           \
  instantiate_kernel(                                                              \
      "lowbit_gemv_" #fmt "_" #dtype "_mr" #mr, lowbit_gemv, LOWBIT_DECODER_##fmt, \
      LOWBIT_TYPE_##dtype, mr)

#define instantiate_gemm(sched, Sched, fmt, dtype, bm, bn, bk, wm, wn)                        \
  instantiate_kernel(                                                                         \
      "lowbit_" #sched "_" #fmt "_" #dtype "_bm" #bm "_bn" #bn "_bk" #bk "_wm" #wm "_wn" #wn, \
      lowbit_gemm, Sched, LOWBIT_DECODER_##fmt, LOWBIT_TYPE_##dtype, bm, bn, bk, wm, wn)

#define instantiate_gemm_schedules(fmt, dtype, bm, bn, bk, wm, wn)                               \
  instantiate_gemm(dataparallel, lowbit::Schedule::DataParallel, fmt, dtype, bm, bn, bk, wm, wn) \
      instantiate_gemm(splitk, lowbit::Schedule::SplitK, fmt, dtype, bm, bn, bk, wm, wn)         \
          instantiate_gemm(streamk, lowbit::Schedule::StreamK, fmt, dtype, bm, bn, bk, wm, wn)

#define instantiate_dequantize(fmt, dtype)                                           \
  instantiate_kernel(                                                                \
      "lowbit_dequantize_" #fmt "_" #dtype, lowbit_dequantize, LOWBIT_DECODER_##fmt, \
      LOWBIT_TYPE_##dtype)

// Every kernel of one format and activation dtype.
#define instantiate_format_dtype(fmt, dtype)    \
  LOWBIT_GEMV_MRS(instantiate_gemv, fmt, dtype) \
  LOWBIT_GEMM_TILES(instantiate_gemm_schedules, fmt, dtype) instantiate_dequantize(fmt, dtype)

#define instantiate_fixup(dtype, bm, bn, bk, wm, wn) \
  instantiate_kernel(                                \
      "lowbit_fixup_" #dtype "_bm" #bm "_bn" #bn, lowbit_fixup, LOWBIT_TYPE_##dtype, bm, bn)

// The fix-up kernels of one dtype, one per tile shape.
#define instantiate_fixups(dtype) LOWBIT_GEMM_TILES(instantiate_fixup, dtype)
