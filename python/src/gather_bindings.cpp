// Copyright © 2026 mlx-lowbit contributors.
//
// Bindings of the expert gather-matmul (mlx_lowbit/gather.h).

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>

#include "mlx_lowbit/gather.h"
#include "mlx_lowbit/gather_plan.h"

namespace mx = mlx::core;
namespace nb = nanobind;
namespace lb = mlx_lowbit;
using namespace nb::literals;

void init_gather(nb::module_& m) {
  m.def(
      "gather_matmul", &lb::lowbit_gather_matmul, nb::arg(), "packed"_a, "scales"_a,
      "biases"_a = nb::none(), "codebook"_a = nb::none(), "lhs_indices"_a = nb::none(),
      "rhs_indices"_a = nb::none(), nb::kw_only(), "fmt"_a, "group_size"_a, "vector_size"_a = 0,
      "index_bits"_a = 0, "transpose"_a = true, "sorted_indices"_a = false, "stream"_a = nb::none(),
      nb::sig("def gather_matmul(x: mlx.core.array, /, packed: mlx.core.array, "
              "scales: mlx.core.array, biases: Optional[mlx.core.array] = None, "
              "codebook: Optional[mlx.core.array] = None, "
              "lhs_indices: Optional[mlx.core.array] = None, "
              "rhs_indices: Optional[mlx.core.array] = None, *, fmt: str, "
              "group_size: int, vector_size: int = 0, index_bits: int = 0, "
              "transpose: bool = True, sorted_indices: bool = False, "
              "stream: Union[None, mlx.core.Stream, mlx.core.Device] = None) -> mlx.core.array"),
      R"pbdoc(
        ``x[lhs] @ w[rhs].T`` over stacked low-bit experts, as ``mx.gather_qmm``;
        fp32 accumulation, output in x's dtype.

        Args:
            x (array): ``(..., M, K)`` (``(..., M, N)`` with ``transpose=False``).
            packed, scales, biases (array): Each expert's arrays stacked on a
              leading axis of E experts (docs/FORMATS.md for one expert).
            codebook (array, optional): ``(E, 2^index_bits)``, or one shared
              ``(2^index_bits,)``.
            lhs_indices (array, optional): Indices into x's flattened batch
              dimensions. Default: all, in order.
            rhs_indices (array, optional): Expert indices. Default: all, in order.
            fmt, group_size, vector_size, index_bits: As in ``lowbit_matmul``.
            transpose (bool): ``x @ w.T`` (default) or ``x @ w``.
            sorted_indices (bool): rhs_indices is non-decreasing (faster).
            stream (Stream, optional): Stream or device.

        Returns:
            array: ``broadcast(lhs, rhs).shape + (M, N)``.
      )pbdoc");

  m.def(
      "_gather_matmul_dequantized", &lb::lowbit_gather_matmul_dequantized, nb::arg(), "packed"_a,
      "scales"_a, "biases"_a = nb::none(), "codebook"_a = nb::none(), "lhs_indices"_a = nb::none(),
      "rhs_indices"_a = nb::none(), nb::kw_only(), "fmt"_a, "group_size"_a, "vector_size"_a = 0,
      "index_bits"_a = 0, "transpose"_a = true, "sorted_indices"_a = false, "stream"_a = nb::none(),
      "gather_matmul through the dequantize kernel and mx.gather_mm (its GPU route), on any "
      "stream: for tests.");

  m.def(
      "metal_gather_plan",
      [](const std::string& format, int group_size, int vector_size, int index_bits, bool has_bias,
         bool scales_f32, bool shared_codebook, mx::Dtype dtype, int B, int M, int N, int K,
         int experts, int x_batches, bool sorted) {
        auto spec =
            lb::make_format_spec(format, group_size, vector_size, index_bits, "metal_gather_plan");
        lb::GatherProblem q{spec, has_bias, scales_f32, shared_codebook, dtype,     B,
                            M,    N,        K,          experts,         x_batches, sorted};
        lb::GatherLaunch l = lb::plan_gather(q);
        nb::dict buffers;
        buffers[nb::int_(LOWBIT_BUFFER_X)] = "x";
        buffers[nb::int_(LOWBIT_BUFFER_PACKED)] = "packed";
        buffers[nb::int_(LOWBIT_BUFFER_SCALES)] = "scales";
        buffers[nb::int_(LOWBIT_BUFFER_BIASES)] = "biases";
        buffers[nb::int_(LOWBIT_BUFFER_CODEBOOK)] = "codebook";
        buffers[nb::int_(LOWBIT_BUFFER_OUT)] = "out";
        buffers[nb::int_(LOWBIT_BUFFER_LHS)] = "lhs";
        buffers[nb::int_(LOWBIT_BUFFER_RHS)] = "rhs";
        nb::dict launch;
        launch["kernel"] = l.kernel;
        launch["grid"] = nb::make_tuple(l.grid[0], l.grid[1], l.grid[2]);
        launch["threadgroup"] =
            nb::make_tuple(l.threadgroup[0], l.threadgroup[1], l.threadgroup[2]);
        launch["buffers"] = buffers;
        launch["params"] = nb::bytes(reinterpret_cast<const char*>(&l.params), sizeof(l.params));
        launch["params_slot"] = LOWBIT_BUFFER_PARAMS;
        nb::list launches;
        launches.append(launch);
        nb::dict d;
        d["launches"] = launches;
        return d;
      },
      "fmt"_a, "group_size"_a, "vector_size"_a, "index_bits"_a, "has_biases"_a, "scales_f32"_a,
      "shared_codebook"_a, "dtype"_a, "B"_a, "M"_a, "N"_a, "K"_a, "experts"_a, "x_batches"_a,
      "sorted"_a,
      "The launch LowBitGatherMatmul::eval_gpu encodes (kernel, grid, threadgroup, buffers "
      "{slot: role}, params bytes), for the emulator tests.");
}
