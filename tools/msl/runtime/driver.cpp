// Command-line driver of one compiled kernel source: reads a launch spec written by
// tools/msl/runner.py, loads the input buffers, runs the launches in order (later launches see
// earlier launches' writes) and writes the requested buffers back.
//
//   kernel.exe --list          print the host names of the kernels in this source
//   kernel.exe SPEC            run SPEC, whose lines are
//     buffer ID BYTES PATH|-   a buffer, filled from PATH (or zeros)
//     launch NAME threadgroups|threads GX GY GZ TX TY TZ fixed|shuffle SEED TIMEOUT_S
//     bind SLOT ID [OFFSET]    [[buffer(SLOT)]] of the last launch is buffer ID, from byte OFFSET
//     tgmem SLOT BYTES         [[threadgroup(SLOT)]] of the last launch holds BYTES
//     output ID PATH           write buffer ID to PATH after all launches
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "executor.h"
#include "profile.h"

using namespace mslrt;

namespace {

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "msl runtime error: %s\n", message.c_str());
  std::exit(kExitRuntimeError);
}

void read_file(const std::string& path, Buffer& b) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f)
    die("cannot open " + path);
  if (b.size && std::fread(b.data, 1, b.size, f) != b.size)
    die("short read from " + path);
  std::fclose(f);
}

void write_file(const std::string& path, const Buffer& b) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (b.size && std::fwrite(b.data, 1, b.size, f) != b.size) || std::fclose(f) != 0)
    die("cannot write " + path);
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (auto& name : kernel_names())
      std::printf("%s\n", name.c_str());
    return 0;
  }
  if (argc != 2)
    die("usage: kernel.exe --list | kernel.exe SPEC");
  std::ifstream spec(argv[1]);
  if (!spec)
    die(std::string("cannot open spec ") + argv[1]);

  std::vector<Buffer> buffers;
  std::vector<Launch> launches;
  std::vector<std::pair<size_t, std::string>> outputs;
  std::string line;
  int lineno = 0;
  while (std::getline(spec, line)) {
    ++lineno;
    std::istringstream in(line);
    std::string op;
    if (!(in >> op))
      continue;
    auto bad = [&] { die("spec line " + std::to_string(lineno) + " is malformed: " + line); };
    if (op == "buffer") {
      size_t id, size;
      std::string path;
      if (!(in >> id >> size >> path) || id != buffers.size())
        bad();
      Buffer b;
      b.size = size;
      // 64-byte aligned as Metal's page-aligned buffers are at least, so
      // the cost model counts the cache lines a GPU would touch.
      void* data = nullptr;
      if (posix_memalign(&data, 64, size ? size : 1) != 0)
        data = nullptr;
      b.data = static_cast<unsigned char*>(data);
      if (!b.data)
        die("out of memory");
      if (path == "-")
        std::memset(b.data, 0, size);
      else
        read_file(path, b);
      buffers.push_back(b);
    } else if (op == "launch") {
      Launch l;
      std::string dispatch, order;
      if (!(in >> l.kernel >> dispatch >> l.grid[0] >> l.grid[1] >> l.grid[2] >> l.threadgroup[0] >>
            l.threadgroup[1] >> l.threadgroup[2] >> order >> l.seed >> l.timeout_s))
        bad();
      if (dispatch != "threads" && dispatch != "threadgroups")
        bad();
      if (order != "fixed" && order != "shuffle")
        bad();
      l.dispatch_threads = dispatch == "threads";
      l.shuffle = order == "shuffle";
      launches.push_back(l);
    } else if (op == "bind" || op == "tgmem") {
      long slot;
      unsigned long value;
      if (launches.empty() || !(in >> slot >> value) || slot < 0 || slot >= __MSL_MAX_BINDINGS)
        bad();
      if (op == "bind") {
        unsigned long offset = 0;
        if (value >= buffers.size())
          bad();
        if (in >> offset && offset > buffers[value].size)
          bad();
        launches.back().buffer_of_slot[slot] = int(value);
        launches.back().buffer_offset[slot] = offset;
      } else {
        launches.back().threadgroup_bytes[slot] = value;
      }
    } else if (op == "output") {
      size_t id;
      std::string path;
      if (!(in >> id >> path) || id >= buffers.size())
        bad();
      outputs.push_back({id, path});
    } else {
      bad();
    }
  }

  for (const Launch& l : launches)
    run_launch(l, buffers);
  shutdown_pool();
  if (const char* path = std::getenv("MSL_PROFILE_OUT"))
    profile_write(path);
  for (auto& o : outputs)
    write_file(o.second, buffers[o.first]);
  for (Buffer& b : buffers)
    std::free(b.data);
  return 0;
}
