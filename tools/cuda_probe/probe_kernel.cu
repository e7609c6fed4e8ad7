// The kernel half of the probe, compiled by nvcc to a fatbin that probe.cpp
// loads through the driver API: the runtime-API route (a kernel registered
// by our own libcudart) failed with "invalid resource handle" inside MLX's
// graph (2026-12-04), as MLX's CUDA calls do not go through our cudart; a
// CUfunction is valid for any user of the driver.
extern "C" __global__ void add_one(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    y[i] = x[i] + 1.0f;
  }
}
