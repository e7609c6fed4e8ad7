// [[function_constant]]s as MLX uses them: specialisation flags, derived constants and an
// optional buffer.
#include <metal_stdlib>
using namespace metal;

constant bool align_M [[function_constant(200)]];
constant int tile [[function_constant(201)]];
constant float scale [[function_constant(202)]];
constant half hscale [[function_constant(203)]];
constant bool has_bias [[function_constant(10)]];
constant bool safe_M = !align_M;
constant bool has_scale = is_function_constant_defined(scale);

// One number per thread that shows every constant's value.
[[kernel]] void fc(device float* out [[buffer(0)]],
                   device const float* bias [[buffer(1), function_constant(has_bias)]],
                   uint i [[thread_position_in_grid]]) {
  out[i] = float(align_M) + 10.0f * float(safe_M) + 100.0f * float(tile) + (has_scale ? scale : -1.0f) + float(hscale)
           + (has_bias ? bias[i] : 0.0f) + (is_function_constant_defined(tile) ? 1000.0f : 0.0f);
}
