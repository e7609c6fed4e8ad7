// Copyright © 2026 mlx-lowbit contributors.
//
// Shared by the C++ backends and the Metal kernels: keep this header valid
// MSL (no std::, no exceptions). docs/FORMATS.md is the prose twin of the
// format headers; change both together.
#pragma once

#ifdef __METAL_VERSION__
#define LOWBIT_CONST constant constexpr
#define LOWBIT_FUNC inline
#else
#include <cstdint>
#define LOWBIT_CONST inline constexpr
#define LOWBIT_FUNC inline constexpr
#endif

namespace lowbit {

// Every packed stream is a row-major array of little-endian uint32 words;
// within a word the first weight along K sits in the least significant bits.
LOWBIT_CONST int kWordBits = 32;

// K must be a multiple of this for every format (one ternary word holds 16
// weights, one binary word 32), and so must every group size.
LOWBIT_CONST int kKMultiple = 32;

// The layout constants are checked at compile time by the C++ build; the
// Metal build includes the same constants and skips the checks, so nothing
// here depends on the MSL compiler's static_assert.
#ifndef __METAL_VERSION__
static_assert(kWordBits == 8 * sizeof(uint32_t), "a packed word is one uint32");
#endif

enum class Format : int { Ternary = 0, Binary = 1, Codebook = 2 };

} // namespace lowbit
