// Copyright © 2026 mlx-lowbit contributors.
//
// Every kernel the planner can name: the instantiations, nothing else
// (metal/instantiate.h has the macros, mlx_lowbit/kernel_names.h the
// grammar; tests/test_metal_names.py checks that the two sets are equal).

#include "metal/instantiate.h"

#define instantiate_format(fmt)                                                  \
  instantiate_format_dtype(fmt, float16) instantiate_format_dtype(fmt, bfloat16) \
      instantiate_format_dtype(fmt, float32)

instantiate_format(ternary) instantiate_format(binary) instantiate_format(codebook_v8)
    instantiate_format(codebook_v16)

        instantiate_fixups(float16) instantiate_fixups(bfloat16) instantiate_fixups(float32)
