// Helpers for the data tests: a temporary folder and tiny images written into it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace onnxforge::data::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& sub) const { return path_ / sub; }

 private:
  std::filesystem::path path_;
};

// Writes `image` (BGR, as OpenCV writes) to `path`, creating folders; the format from the
// extension.
void write_image(const std::filesystem::path& path, const cv::Mat& image);
// A small image with a distinct colour pattern.
cv::Mat pattern(int width, int height, int seed);
std::vector<std::uint8_t> encode(const std::string& ext, const cv::Mat& image);
void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path);

}  // namespace onnxforge::data::testing
