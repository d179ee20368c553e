#include "core/files.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace onnxforge {
namespace fs = std::filesystem;

void write_file_atomic(const fs::path& path, std::string_view content) {
  std::error_code ec;
  if (path.has_parent_path()) {
    fs::create_directories(path.parent_path(), ec);
    if (ec) fail("cannot create folder {}: {}", path.parent_path().string(), ec.message());
  }
  static std::atomic<unsigned> counter{0};
  fs::path tmp = path;
  tmp += fmt::format(".tmp.{}.{}", static_cast<long>(::getpid()), counter++);
  {
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail("cannot write {}: {}", path.string(), std::strerror(errno));
    // No fsync: the rename makes the file appear whole or not at all, which is what readers
    // need; durability across a power cut is not worth ~20 ms per file here.
    const bool ok =
        std::fwrite(content.data(), 1, content.size(), f) == content.size() && std::fflush(f) == 0;
    const int err = errno;
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) {
      fs::remove(tmp, ec);
      fail("cannot write {}: {}", path.string(), std::strerror(err));
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail("cannot write {}: {}", path.string(), ec.message());
  }
}

std::optional<std::string> try_read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

std::string read_file(const fs::path& path) {
  auto bytes = try_read_file(path);
  if (!bytes) fail("cannot read {}: no such file or not readable", path.string());
  return std::move(*bytes);
}

}  // namespace onnxforge
