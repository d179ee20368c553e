#include "test_util.hpp"

#include <unistd.h>
#include <atomic>
#include <fstream>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>

namespace onnxforge::data::testing {
namespace fs = std::filesystem;

std::vector<std::uint8_t> encode(const std::string& ext, const cv::Mat& image) {
  std::vector<std::uint8_t> bytes;
  if (!cv::imencode(ext, image, bytes)) throw std::runtime_error("cannot encode " + ext);
  return bytes;
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

void write_image(const fs::path& path, const cv::Mat& image) {
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  write_bytes(path, encode(ext, image));
}

cv::Mat pattern(int width, int height, int seed) {
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<std::uint8_t>((x * 7 + seed * 31) & 255),
                                            static_cast<std::uint8_t>((y * 5 + seed * 17) & 255),
                                            static_cast<std::uint8_t>((x + y + seed * 59) & 255));
    }
  }
  return image;
}

}  // namespace onnxforge::data::testing
