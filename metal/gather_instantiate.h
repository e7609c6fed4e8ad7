// Copyright © 2026 mlx-lowbit contributors.
//
// The macros that instantiate the gather kernels under the host names
// gather_plan.cpp builds, lowbit_gather_<format>_<dtype>_mr<MR> and
// lowbit_gather_gemm_<format>_<dtype>, with
// metal/instantiate.h's tokens. metal/gather.metal instantiates every one;
// the emulator's sanitizer runs instantiate one format and dtype.
#pragma once

#include "metal/decode_binary.h"
#include "metal/decode_codebook.h"
#include "metal/decode_ternary.h"
#include "metal/gather.h"

#define LOWBIT_GATHER_DECODER_ternary lowbit::TernaryDecoder
#define LOWBIT_GATHER_DECODER_binary lowbit::BinaryDecoder
#define LOWBIT_GATHER_DECODER_codebook_v8 lowbit::CodebookDecoder<8>
#define LOWBIT_GATHER_DECODER_codebook_v16 lowbit::CodebookDecoder<16>
#define LOWBIT_GATHER_TYPE_float16 half
#define LOWBIT_GATHER_TYPE_bfloat16 bfloat
#define LOWBIT_GATHER_TYPE_float32 float

#define instantiate_gather(fmt, dtype, mr)                                             \
  template [[host_name("lowbit_gather_" #fmt "_" #dtype "_mr" #mr)]] [[kernel]]        \
  decltype(lowbit_gather<LOWBIT_GATHER_DECODER_##fmt, LOWBIT_GATHER_TYPE_##dtype, mr>) \
      lowbit_gather<LOWBIT_GATHER_DECODER_##fmt, LOWBIT_GATHER_TYPE_##dtype, mr>;

#define instantiate_gather_gemm(fmt, dtype)                                             \
  template [[host_name("lowbit_gather_gemm_" #fmt "_" #dtype)]] [[kernel]]              \
  decltype(lowbit_gather_gemm<LOWBIT_GATHER_DECODER_##fmt, LOWBIT_GATHER_TYPE_##dtype>) \
      lowbit_gather_gemm<LOWBIT_GATHER_DECODER_##fmt, LOWBIT_GATHER_TYPE_##dtype>;

// Every gather kernel of one format and dtype.
#define instantiate_gather_mrs(fmt, dtype)                            \
  instantiate_gather(fmt, dtype, 1) instantiate_gather(fmt, dtype, 8) \
      instantiate_gather_gemm(fmt, dtype)

#define instantiate_gather_format(fmt)                                       \
  instantiate_gather_mrs(fmt, float16) instantiate_gather_mrs(fmt, bfloat16) \
      instantiate_gather_mrs(fmt, float32)
