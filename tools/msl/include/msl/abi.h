// Interface between kernels compiled against the shim and the CPU runtime (tools/msl/runtime).
// Plain C types only: the runtime includes this next to the C++ standard library.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Where a builtin was called from; compared between lanes to find divergent collectives.
struct __msl_site {
  const char* op;
  const char* file;
  unsigned line;
  unsigned column;
};

// One per kernel-scope `threadgroup T x[N];` declaration (and template instantiation).
struct __msl_tg_key {
  void* ptr;
  unsigned long generation;
};

enum __msl_position {
  __MSL_POS_thread_position_in_grid,
  __MSL_POS_thread_position_in_threadgroup,
  __MSL_POS_threadgroup_position_in_grid,
  __MSL_POS_threads_per_threadgroup,
  __MSL_POS_threadgroups_per_grid,
  __MSL_POS_threads_per_grid,
  __MSL_POS_dispatch_threads_per_threadgroup,
  __MSL_POS_thread_index_in_threadgroup,
  __MSL_POS_thread_index_in_simdgroup,
  __MSL_POS_simdgroup_index_in_threadgroup,
  __MSL_POS_simdgroups_per_threadgroup,
  __MSL_POS_threads_per_simdgroup,
  __MSL_POS_thread_index_in_quadgroup,
  __MSL_POS_quadgroup_index_in_threadgroup,
  __MSL_POS_quadgroups_per_threadgroup,
  __MSL_POS_COUNT
};

#define __MSL_MAX_BINDINGS 31
#define __MSL_SIMD_WIDTH 32
#define __MSL_SIMD_PAYLOAD 64

// What the host bound for one launch (shared by all threads).
struct __msl_bindings {
  void* buffers[__MSL_MAX_BINDINGS];
  unsigned long buffer_sizes[__MSL_MAX_BINDINGS];
  int buffer_bound[__MSL_MAX_BINDINGS];
  unsigned long threadgroup_sizes[__MSL_MAX_BINDINGS];
};

// What one GPU thread receives.
struct __msl_invocation {
  const struct __msl_bindings* bindings;
  void* threadgroup_buffers[__MSL_MAX_BINDINGS];
  unsigned position[__MSL_POS_COUNT][3];
};

typedef void (*__msl_thunk)(const struct __msl_invocation*);

void __msl_rt_register_kernel(
    const char* host_name,
    __msl_thunk thunk,
    const char* function,
    const char* file,
    unsigned line);

// A simd collective: every active lane of the simdgroup deposits `size` bytes; returns the
// 32 deposits (lane l at offset l * __MSL_SIMD_PAYLOAD), valid until the lane's next collective.
const void* __msl_rt_simd_collective(
    const void* payload,
    unsigned size,
    const struct __msl_site* site,
    unsigned* active_mask,
    unsigned* lane);
void __msl_rt_threadgroup_barrier(unsigned flags, const struct __msl_site* site);
void* __msl_rt_threadgroup_static(
    struct __msl_tg_key* key,
    unsigned long size,
    unsigned long align,
    const char* name,
    const char* file,
    unsigned line);
unsigned __msl_rt_lane(void);
// The value the host set for [[function_constant(index)]] (zeros when it set none).
const void* __msl_rt_function_constant(
    unsigned index, unsigned long size, const char* name, const char* file, unsigned line);
int __msl_rt_function_constant_defined(const void* value);
__attribute__((noreturn, format(printf, 2, 3))) void __msl_rt_fail(
    const struct __msl_site* site, const char* format, ...);

#ifdef __cplusplus
}
#endif
