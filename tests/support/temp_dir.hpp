// A fresh folder for one test, removed when the test ends (kept with ONNXFORGE_KEEP_TEST_FILES=1):
// named after the running test and the process, under the system temp dir, or in RAM
// (/dev/shm) when asked and available (for large fixtures).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace onnxforge::testing {

class TempDir {
 public:
  explicit TempDir(bool in_memory = false) {
    static std::atomic<int> made{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    // (append, not operator+: GCC 12 warns falsely on "_" + std::string at -O3)
    std::string name = "onnxforge_";
    if (info) {
      name.append(info->test_suite_name()).append("_").append(info->name());
    } else {
      name.append("suite");
    }
    name.append("_").append(std::to_string(::getpid()));
    name.append("_").append(std::to_string(made++));
    for (char& ch : name) {
      if (ch == '/') ch = '_';
    }
    const std::filesystem::path base = in_memory && std::filesystem::is_directory("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    path_ = base / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    if (!std::getenv("ONNXFORGE_KEEP_TEST_FILES")) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace onnxforge::testing
