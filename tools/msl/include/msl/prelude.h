// MSL built-ins that exist without any #include: scalar types and address spaces.
// The rewrite (tools/msl/msl_rewrite.py) puts `#include <msl/prelude.h>` first in every kernel TU
// and spells the address-space keywords as the macros below.
#pragma once
#include "abi.h"
#include "predefined.h"

// opencl_global/opencl_local make address-space mixups compile errors in plain C++ mode and still
// lower to address space 0 on x86, so ASan/TSan instrument every access.
#define __msl_device __attribute__((opencl_global))
#define __msl_threadgroup __attribute__((opencl_local))
// `constant` as `const`: MSL lets a struct be copied out of constant memory, which a distinct
// clang address space would reject.
#define __msl_constant const
#define __msl_thread

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef _Float16 half;
typedef __bf16 bfloat;
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
typedef __INTPTR_TYPE__ intptr_t;
typedef __UINTPTR_TYPE__ uintptr_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;

static_assert(sizeof(long) == 8 && sizeof(int) == 4 && sizeof(short) == 2, "MSL integer widths");

namespace metal {
using ::bfloat;
using ::half;
using ::int16_t;
using ::int32_t;
using ::int64_t;
using ::int8_t;
using ::ptrdiff_t;
using ::size_t;
using ::uchar;
using ::uint;
using ::uint16_t;
using ::uint32_t;
using ::uint64_t;
using ::uint8_t;
using ::ulong;
using ::ushort;
} // namespace metal

// Call-site capture for builtins: a default argument `__msl_site s = __msl_here("op")` records
// the caller's file/line/column (clang evaluates __builtin_LINE() at the outermost call).
inline __msl_site __msl_here(
    const char* op,
    const char* file = __builtin_FILE(),
    unsigned line = __builtin_LINE(),
    unsigned column = __builtin_COLUMN()) {
  return __msl_site{op, file, line, column};
}

// is_function_constant_defined(c): whether the host set the [[function_constant]] `c`.
template <class T>
inline bool is_function_constant_defined(const T& c) {
  return __msl_rt_function_constant_defined(&c) != 0;
}
namespace metal {
using ::is_function_constant_defined;
}
