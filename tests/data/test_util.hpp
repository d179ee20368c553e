// Helpers for the data tests: a temporary folder and tiny images written into it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>
#include "tests/support/temp_dir.hpp"

namespace onnxforge::data::testing {

using onnxforge::testing::TempDir;

// Writes `image` (BGR, as OpenCV writes) to `path`, creating folders; the format from the
// extension.
void write_image(const std::filesystem::path& path, const cv::Mat& image);
// A small image with a distinct colour pattern.
cv::Mat pattern(int width, int height, int seed);
std::vector<std::uint8_t> encode(const std::string& ext, const cv::Mat& image);
void write_bytes(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path);

}  // namespace onnxforge::data::testing
