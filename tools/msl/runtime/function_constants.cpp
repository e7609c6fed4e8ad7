// [[function_constant(i)]] values. The host passes them in the environment
// (MSL_FUNCTION_CONSTANTS="index:hexbytes,...") so they are known while the kernel's globals,
// which may derive from them, are initialised, before main.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "runtime.h"

namespace {

struct Constant {
  std::vector<unsigned char> bytes;
  bool defined = false;
  bool declared = false;
};

std::map<unsigned, Constant>& constants() {
  static std::map<unsigned, Constant>* table = [] {
    auto* t = new std::map<unsigned, Constant>;
    const char* env = std::getenv("MSL_FUNCTION_CONSTANTS");
    for (const char* p = env ? env : ""; *p;) {
      char* end;
      unsigned index = unsigned(std::strtoul(p, &end, 10));
      if (*end != ':')
        break;
      Constant& c = (*t)[index];
      c.defined = true;
      for (p = end + 1; p[0] && p[1] && p[0] != ','; p += 2) {
        char hex[3] = {p[0], p[1], 0};
        c.bytes.push_back((unsigned char)std::strtoul(hex, nullptr, 16));
      }
      if (*p == ',')
        ++p;
    }
    return t;
  }();
  return *table;
}

} // namespace

extern "C" const void* __msl_rt_function_constant(
    unsigned index, unsigned long size, const char* name, const char* file, unsigned line) {
  Constant& c = constants()[index];
  if (c.defined && c.bytes.size() != size) {
    std::fprintf(
        stderr,
        "msl runtime error: [[function_constant(%u)]] '%s' (%s:%u) has %lu bytes, but the host set "
        "%zu "
        "bytes for it\n",
        index, name, file, line, size, c.bytes.size());
    std::exit(mslrt::kExitRuntimeError);
  }
  if (!c.defined)
    c.bytes.assign(size ? size : 1, 0);
  c.declared = true;
  return c.bytes.data();
}

extern "C" int __msl_rt_function_constant_defined(const void* value) {
  for (auto& entry : constants())
    if (entry.second.declared && entry.second.bytes.data() == value)
      return entry.second.defined;
  return 0;
}
