// Copyright © 2026 mlx-lowbit contributors.
//
// The packed layouts, one header each; docs/FORMATS.md describes the same bytes.
#pragma once

#include "mlx_lowbit/formats/binary.h"
#include "mlx_lowbit/formats/codebook.h"
#include "mlx_lowbit/formats/common.h"
#include "mlx_lowbit/formats/ternary.h"
