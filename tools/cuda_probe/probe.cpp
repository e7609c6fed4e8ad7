// Probe for issue 16: can an extension compiled ahead of time with nvcc run
// its own kernel inside MLX-CUDA's graph through the symbols libmlx.so
// exports (cu::get_command_encoder, set_input/output_array,
// add_kernel_node_raw)? Builds a one-primitive "x + 1" and checks it on the GPU.
// On the lent GPU machine: bash tools/cuda_probe/run.sh
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <cuda.h>

#include "mlx/backend/cuda/device.h"
#include "mlx/mlx.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;
using mx::array;

// probe_kernel.cu's fatbin, loaded once through the driver API.
CUfunction add_one_kernel() {
  static CUfunction f = [] {
    std::ifstream in(std::getenv("PROBE_FATBIN"), std::ios::binary);
    static std::string image((std::istreambuf_iterator<char>(in)), {});
    CUmodule m;
    CUfunction k;
    if (cuModuleLoadData(&m, image.data()) != CUDA_SUCCESS ||
        cuModuleGetFunction(&k, m, "add_one") != CUDA_SUCCESS) {
      throw std::runtime_error("probe: cannot load the fatbin");
    }
    return k;
  }();
  return f;
}

class AddOne : public mx::UnaryPrimitive {
 public:
  explicit AddOne(mx::Stream s) : mx::UnaryPrimitive(s) {}
  void eval_cpu(const std::vector<array>&, array&) override {
    throw std::runtime_error("probe: GPU only");
  }
  void eval_gpu(const std::vector<array>& inputs, array& out) override {
    const array& x = inputs[0];
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto& enc = mx::cu::get_command_encoder(stream());
    enc.set_input_array(x);
    enc.set_output_array(out);
    int n = static_cast<int>(x.size());
    const float* px = mx::gpu_ptr<float>(x);
    float* py = mx::gpu_ptr<float>(out);
    void* args[] = {&px, &py, &n};
    enc.add_kernel_node_raw(add_one_kernel(), dim3((n + 255) / 256), dim3(256), {}, 0, args);
  }
  DEFINE_NAME(AddOne)
};

int main() {
  auto s = mx::default_stream(mx::Device::gpu);
  array x = mx::arange(1000, mx::float32, s);
  array y(x.shape(), mx::float32, std::make_shared<AddOne>(s), {x});
  array z = mx::multiply(y, array(2.0f), s); // MLX's own kernel after ours
  array want = mx::multiply(mx::add(x, array(1.0f)), array(2.0f));
  mx::eval(z, want);
  bool ok = mx::allclose(z, want).item<bool>();
  std::printf(
      "custom CUDA primitive in MLX's graph: %s (z[999] = %g)\n", ok ? "OK" : "WRONG",
      mx::slice(z, {999}, {1000}).item<float>());
  return ok ? 0 : 1;
}
