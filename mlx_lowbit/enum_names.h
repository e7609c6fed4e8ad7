// Copyright © 2026 mlx-lowbit contributors.
//
// String <-> enum through one table per enum, so the accepted names and the
// error text listing them cannot drift apart.
#pragma once

#include <array>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "mlx_lowbit/errors.h"

namespace mlx_lowbit {

template <typename E, size_t N>
using EnumNames = std::array<std::pair<E, const char*>, N>;

template <typename E, size_t N>
std::string enum_name_list(const EnumNames<E, N>& table) {
  std::string known;
  for (auto& [value, text] : table) {
    known += known.empty() ? text : std::string(", ") + text;
  }
  return known;
}

template <typename E, size_t N>
E parse_enum(
    const EnumNames<E, N>& table,
    std::string_view name,
    std::string_view what,
    std::string_view tag) {
  for (auto& [value, text] : table) {
    if (name == text) {
      return value;
    }
  }
  throw_invalid(
      tag, "Unknown ", what, " '", name, "'; expected one of ", enum_name_list(table), ".");
}

template <typename E, size_t N>
const char* enum_name(const EnumNames<E, N>& table, E v) {
  for (auto& [value, text] : table) {
    if (value == v) {
      return text;
    }
  }
  throw std::logic_error("[enum_name] corrupt enum value.");
}

} // namespace mlx_lowbit
