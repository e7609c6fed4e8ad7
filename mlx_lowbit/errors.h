// Copyright © 2026 mlx-lowbit contributors.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mlx/array.h"
#include "mlx/utils.h" // operator<< for Dtype

namespace mlx_lowbit {

// "[tag] message": std::invalid_argument reaches Python as ValueError.
template <typename... Args>
[[noreturn]] void throw_invalid(std::string_view tag, const Args&... args) {
  std::ostringstream os;
  os << "[" << tag << "] ";
  (os << ... << args);
  throw std::invalid_argument(os.str());
}

// "(2, 3)" in Python's spelling, for error messages.
inline std::string shape_str(const mlx::core::array& a) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < a.ndim(); ++i) {
    os << (i ? ", " : "") << a.shape(i);
  }
  os << (a.ndim() == 1 ? ",)" : ")");
  return os.str();
}

} // namespace mlx_lowbit
