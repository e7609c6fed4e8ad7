// Copyright © 2026 mlx-lowbit contributors.

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "mlx_lowbit/backend/cpu/thread_pool.h"
#include "mlx_lowbit/format_spec.h"
#include "mlx_lowbit/ops.h"
#include "mlx_lowbit/quantize.h"
#include "mlx_lowbit/schedule.h"

namespace mx = mlx::core;
namespace nb = nanobind;
namespace lb = mlx_lowbit;
using namespace nb::literals;

namespace {

using Quantized =
    std::tuple<mx::array, mx::array, std::optional<mx::array>, std::optional<mx::array>>;

} // namespace

void init_metal(nb::module_& m);
void init_gather(nb::module_& m); // python/src/gather_bindings.cpp

NB_MODULE(_ext, m) {
  void init_cpu(nb::module_&);
  init_cpu(m); // python/src/cpu_bindings.cpp
  m.doc() = "mlx-lowbit C++ core: low-bit matmul primitive, quantizers, packers.";

  m.def(
      "lowbit_matmul",
      nb::overload_cast<
          const mx::array&, const mx::array&, const mx::array&, const std::optional<mx::array>&,
          const std::optional<mx::array>&, const std::string&, int, int, int, bool,
          const std::string&, const std::string&, int, int, int, int, int, mx::StreamOrDevice>(
          &lb::lowbit_matmul),
      nb::arg(), "packed"_a, "scales"_a, "biases"_a = nb::none(), "codebook"_a = nb::none(),
      nb::kw_only(), "fmt"_a, "group_size"_a, "vector_size"_a = 0, "index_bits"_a = 0,
      "transpose"_a = true, "schedule"_a = "auto", "streamk_fixup"_a = "deterministic",
      "split_k"_a = 0, "bm"_a = 0, "bn"_a = 0, "bk"_a = 0, "activation_bits"_a = 0,
      "stream"_a = nb::none(),
      nb::sig("def lowbit_matmul(x: mlx.core.array, /, packed: mlx.core.array, "
              "scales: mlx.core.array, biases: Optional[mlx.core.array] = None, "
              "codebook: Optional[mlx.core.array] = None, *, format: str, "
              "group_size: int, vector_size: int = 0, index_bits: int = 0, "
              "transpose: bool = True, schedule: str = 'auto', "
              "streamk_fixup: str = 'deterministic', split_k: int = 0, "
              "bm: int = 0, bn: int = 0, bk: int = 0, activation_bits: int = 0, "
              "stream: Union[None, mlx.core.Stream, mlx.core.Device] = None) -> mlx.core.array"),
      R"pbdoc(
        ``x @ w.T`` (or ``x @ w`` with ``transpose=False``) for a low-bit weight
        ``w`` given by its packed arrays; fp32 accumulation, output in x's dtype.

        Args:
            x (array): Activations of shape ``(..., K)``; float16, bfloat16 or float32.
            packed (array): uint32 codes, bits or indices (docs/FORMATS.md).
            scales (array): Per-group scales, float16 or float32, ``(N, K / group_size)``.
            biases (array, optional): Per-group biases (binary only).
            codebook (array, optional): Patterns (codebook only).
            format (str): ``"ternary"``, ``"binary"`` or ``"codebook"``.
            group_size (int): Weights per scale along K.
            vector_size (int): Codebook weights per index (8 or 16).
            index_bits (int): Codebook bits per index.
            transpose (bool): Multiply by ``w.T`` (default) or ``w``.
            schedule (str): GPU work decomposition; the CPU backend ignores it.
            streamk_fixup (str): ``"deterministic"`` (the only fix-up).
            split_k (int): K splits for ``splitk`` (0: chosen).
            bm, bn, bk (int): GPU tile overrides for ablations (0: chosen).
            activation_bits (int): 0 (float activations, default) or 8: each row
              of x rounded to int8 by its absmax first, as BitNet b1.58 was trained.
            stream (Stream, optional): Stream or device.

        Returns:
            array: The product.
      )pbdoc");

  m.def(
      "dequantize", &lb::lowbit_dequantize, "packed"_a, "scales"_a, "biases"_a = nb::none(),
      "codebook"_a = nb::none(), nb::kw_only(), "fmt"_a, "group_size"_a, "vector_size"_a = 0,
      "index_bits"_a = 0, "dtype"_a = mx::float32, "stream"_a = nb::none(),
      R"pbdoc(
        The (N, K) weight in ``dtype``: exactly the values the kernels multiply with.
      )pbdoc");

  m.def(
      "round_to_int8_grid", &lb::round_to_int8_grid, nb::arg(), "stream"_a = nb::none(),
      "x rounded per row to BitNet's per-token int8 grid, in float32 (what activation_bits=8 "
      "multiplies; on a GPU stream, the pre-pass before the float kernel).");
  m.def("formats", &lb::format_names, "The names of the supported formats.");

  m.def(
      "schedules", &lb::schedule_names,
      "The names of the work schedules lowbit_matmul accepts, \"auto\" first.");

  m.def(
      "validate_weight",
      [](const mx::array& packed, const mx::array& scales, const std::optional<mx::array>& biases,
         const std::optional<mx::array>& codebook, const std::string& format, int group_size,
         int vector_size, int index_bits, const std::string& tag) {
        auto spec = lb::make_format_spec(format, group_size, vector_size, index_bits, tag);
        return lb::validate_weight(spec, packed, scales, biases, codebook, tag);
      },
      "packed"_a, "scales"_a, "biases"_a.none(), "codebook"_a.none(), nb::kw_only(), "fmt"_a,
      "group_size"_a, "vector_size"_a = 0, "index_bits"_a = 0, "tag"_a = "QuantizedWeight",
      "Check a quantized weight's arrays against its metadata; returns K.");

  m.def(
      "quantize",
      [](const mx::array& w, const std::string& fmt, int group_size, int vector_size,
         int index_bits, bool with_biases, mx::Dtype scale_dtype, uint64_t seed, int max_iters,
         bool lazy) {
        // The op checks the spec (after the weight's shape, for clearer errors).
        lb::QuantizeOptions options{
            {lb::parse_format(fmt, "quantize"), group_size, vector_size, index_bits},
            with_biases,
            scale_dtype,
            seed,
            max_iters};
        auto out = lazy ? lb::lowbit_quantize(w, options) : lb::quantize_now(w, options);
        std::optional<mx::array> biases_out, codebook;
        if (options.biases) {
          biases_out = out[2];
        }
        if (options.spec.format == lb::Format::Codebook) {
          codebook = out[2];
        }
        return Quantized{out[0], out[1], biases_out, codebook};
      },
      "w"_a, "fmt"_a, "group_size"_a, nb::kw_only(), "vector_size"_a = 0, "index_bits"_a = 0,
      "biases"_a = false, "scale_dtype"_a = mx::float16, "seed"_a = 0, "max_iters"_a = 30,
      "lazy"_a = false,
      R"pbdoc(
        The reference quantizer: (packed, scales, biases or None, codebook or None).
        Evaluated now (NaN / Inf raise ValueError now) unless lazy=True, which
        returns unevaluated arrays on the CPU stream, like mx.quantize.
      )pbdoc");

  m.def(
      "pack_ternary", &lb::pack_ternary, "t"_a, "Pack int8 values in {-1, 0, 1} of shape (N, K).");
  m.def("pack_binary", &lb::pack_binary, "bits"_a, "Pack 0/1 values of shape (N, K); 1 means +1.");
  m.def(
      "pack_codebook", &lb::pack_codebook, "indices"_a, "vector_size"_a, "index_bits"_a,
      "Pack codebook indices of shape (N, K / vector_size).");

  m.def(
      "is_evaluated", [](const mx::array& a) { return a.is_available(); }, "a"_a,
      "Whether the array's data is there (hand-built, loaded or evaluated): QuantizedWeight "
      "scans only such arrays, never evaluating a lazy one.");

  m.def("num_threads", &lb::cpu::num_threads, "Worker threads of the CPU kernels.");
  m.def(
      "max_threads", &lb::cpu::max_threads,
      "The most worker threads set_num_threads accepts (8 per core).");
  m.def(
      "set_num_threads", &lb::cpu::set_num_threads, "n"_a,
      "Set the worker threads of the CPU kernels (default: MLX_LOWBIT_NUM_THREADS or all cores).");

  init_metal(m);
  init_gather(m);
}
