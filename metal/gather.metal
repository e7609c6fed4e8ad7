// Copyright © 2026 mlx-lowbit contributors.
//
// Every gather kernel gather_plan.cpp can name (the macros are in
// metal/gather_instantiate.h; tests/test_metal_gather.py checks the set).

#include "metal/gather_instantiate.h"

instantiate_gather_format(ternary) instantiate_gather_format(binary)
    instantiate_gather_format(codebook_v8) instantiate_gather_format(codebook_v16)
