// The synthetic-face generator: layout, sizes, counts, determinism, refusal to overwrite.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "data/dataset.hpp"
#include "test_util.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace onnxforge::gender {
namespace {
using namespace onnxforge::data;
namespace fs = std::filesystem;
using onnxforge::testing::TempDir;

SynthOptions small(const fs::path& out, std::uint64_t seed) {
  SynthOptions options;
  options.out = out;
  options.seed = seed;
  options.train = 8;
  options.val = 4;
  options.test = 6;
  options.threads = 2;
  return options;
}

TEST(Synth, WritesTheTwoKaggleLayoutsWithPromisedSizesAndCounts) {
  TempDir dir;
  const auto summary = generate_synthetic_faces(small(dir.path(), 3));
  EXPECT_EQ(summary.images, 18U);

  const auto train = scan_image_folder(dir / "gender/train");
  EXPECT_EQ(train.classes, (std::vector<std::string>{"Female", "Male"}));
  EXPECT_EQ(train.counts(), (std::vector<std::size_t>{4, 4}));
  EXPECT_EQ(scan_image_folder(dir / "gender/test").counts(), (std::vector<std::size_t>{2, 2}));
  ScanOptions mapped;
  mapped.label_map = parse_label_map("man=Male,woman=Female");
  const auto faces = scan_image_folder(dir / "faces", mapped);
  EXPECT_EQ(faces.counts(), (std::vector<std::size_t>{3, 3}));

  for (const auto& sample : train.samples) {
    const cv::Mat image = cv::imread(sample.path.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(image.empty()) << sample.path;
    EXPECT_EQ(image.cols, 100);
    EXPECT_EQ(image.rows, 100);
    EXPECT_EQ(image.channels(), 3);
  }
  for (const auto& sample : faces.samples) {
    const cv::Mat image = cv::imread(sample.path.string(), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(image.empty()) << sample.path;
    EXPECT_GE(image.cols, 64);
    EXPECT_LE(image.cols, 300);
    EXPECT_GE(image.rows, 64);
    EXPECT_LE(image.rows, 300);
    EXPECT_NE(image.cols, image.rows);
  }
}

TEST(Synth, SameSeedSameBytesWhateverTheThreadCount) {
  TempDir a, b, c;
  auto options = small(a.path(), 9);
  options.threads = 1;
  generate_synthetic_faces(options);
  generate_synthetic_faces(small(b.path(), 9));
  generate_synthetic_faces(small(c.path(), 10));
  for (const char* file :
       {"gender/train/Female/000000.jpg", "gender/test/Male/000001.jpg", "faces/man/000003.jpg"}) {
    EXPECT_EQ(data::testing::read_bytes(a / file), data::testing::read_bytes(b / file)) << file;
    EXPECT_NE(data::testing::read_bytes(a / file), data::testing::read_bytes(c / file)) << file;
  }
}

TEST(Synth, RefusesToOverwriteFoldersItDidNotWriteButReplacesItsOwn) {
  TempDir dir;
  fs::create_directories(dir / "gender/mine");
  try {
    generate_synthetic_faces(small(dir.path(), 1));
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos);
  }
  TempDir own;
  EXPECT_FALSE(synthetic_faces_ready(small(own.path(), 1)));
  generate_synthetic_faces(small(own.path(), 1));
  EXPECT_TRUE(synthetic_faces_ready(small(own.path(), 1)));
  EXPECT_FALSE(synthetic_faces_ready(small(own.path(), 2)));
  auto options = small(own.path(), 1);
  options.train = 4;
  EXPECT_FALSE(synthetic_faces_ready(options));
  generate_synthetic_faces(options);
  EXPECT_TRUE(synthetic_faces_ready(options));
  EXPECT_EQ(scan_image_folder(own / "gender/train").samples.size(), 4U);
}

}  // namespace
}  // namespace onnxforge::gender
