// Shared by the fuzz targets: a private scratch folder for readers that take a path, and the rule
// that decides what counts as a finding.
//
// A target returns normally for good input and for input refused with onnxforge::Error (the one
// exception type whose message is shown to users). Anything else -- a sanitizer report, a signal,
// another exception type escaping (std::out_of_range, std::bad_alloc, json or toml exceptions,
// whose messages are not the one-line error the project promises) -- is a finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace onnxforge::fuzz {

// A folder of this process, created on first use and removed at exit: in RAM when /dev/shm exists.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const fs::path base =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("onnxforge_fuzz_" + std::to_string(::getpid()));
    fs::create_directories(d);
    static const std::string keep = d.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return d;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir()/name and returns the path.
inline std::filesystem::path write_scratch(const std::string& name, const std::uint8_t* data,
                                           std::size_t size) {
  const auto path = scratch_dir() / name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  if (std::fclose(f) != 0) std::abort();
  return path;
}

}  // namespace onnxforge::fuzz
