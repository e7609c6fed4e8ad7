// Copyright © 2026 mlx-lowbit contributors.
//
// Choosing and inspecting the CPU kernel path (tests force each one in turn;
// benchmarks report which one ran).

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "mlx_lowbit/backend/cpu/isa.h"

namespace nb = nanobind;
namespace cpu = mlx_lowbit::cpu;
using namespace nb::literals;

void init_cpu(nb::module_& m) {
  m.def(
      "cpu_isa", [] { return std::string(cpu::isa_name(cpu::active_isa())); },
      R"pbdoc(
        The CPU kernel path the next product will use: ``"portable"``, ``"avx2"``,
        ``"avx512"`` or ``"neon"``.
      )pbdoc");
  m.def(
      "cpu_isas",
      [] {
        std::vector<std::string> names;
        for (auto isa : cpu::available_isas()) {
          names.push_back(cpu::isa_name(isa));
        }
        return names;
      },
      R"pbdoc(
        The CPU kernel paths this build can run on this CPU, slowest first.
      )pbdoc");
  m.def(
      "set_cpu_isa", &cpu::set_isa, "name"_a,
      R"pbdoc(
        Force a CPU kernel path, or ``"auto"`` (the default: the fastest this
        CPU supports). Overrides the environment variable ``MLX_LOWBIT_CPU_ISA``.

        Args:
            name (str): ``"auto"`` or one of :func:`cpu_isas`.

        Raises:
            ValueError: the path is unknown or this CPU cannot run it.
      )pbdoc");
}
