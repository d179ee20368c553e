// The synthetic-face generator: layout, sizes, counts, determinism, refusal to overwrite.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/files.hpp"
#include "data/dataset.hpp"
#include "data/rng.hpp"
#include "test_util.hpp"
#include "workloads/gender/attribute_backbone.hpp"
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

std::vector<std::vector<std::string>> csv_rows(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) fields.push_back(cell);
    rows.push_back(fields);
  }
  return rows;
}

TEST(Synth, DescribesEveryImageInAttributesAndGroups) {
  TempDir dir;
  generate_synthetic_faces(small(dir.path(), 5));
  const auto attributes = csv_rows(dir / "attributes.csv");
  const auto groups = csv_rows(dir / "groups.csv");
  ASSERT_EQ(attributes.size(), 1U + 18U);
  ASSERT_EQ(groups.size(), 1U + 18U);
  EXPECT_EQ(groups[0], (std::vector<std::string>{"path", "skin_tone", "age", "glasses"}));
  const auto& header = attributes[0];
  const auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name;
    return static_cast<std::size_t>(it - header.begin());
  };
  for (std::size_t r = 1; r < attributes.size(); ++r) {
    const auto& row = attributes[r];
    ASSERT_EQ(row.size(), header.size());
    EXPECT_EQ(groups[r][0], row[0]);
    EXPECT_TRUE(fs::exists(dir / row[column("path")])) << row[0];
    const bool faces = row[0].rfind("faces/", 0) == 0;
    EXPECT_EQ(row[column("domain")], faces ? "wild" : "studio") << row[0];
    EXPECT_EQ(row[column("split")], faces                                         ? "test"
                                    : row[0].find("/train/") != std::string::npos ? "train"
                                                                                  : "val");
    // The label is the folder's; the drawn gender differs from it exactly when it was flipped.
    const bool male_folder =
        row[0].find("/Male/") != std::string::npos || row[0].find("/man/") != std::string::npos;
    EXPECT_EQ(row[column("label")], male_folder ? "1" : "0");
    EXPECT_EQ(row[column("gender")] != row[column("label")], row[column("label_flipped")] == "1");
    // The groups are the attributes' bands.
    EXPECT_EQ(groups[r][1], skin_tone_group(std::stod(row[column("skin_tone")])));
    EXPECT_EQ(groups[r][2], age_group(std::stod(row[column("age")])));
    const cv::Mat image = cv::imread((dir / row[0]).string());
    EXPECT_EQ(std::to_string(image.cols), row[column("width")]);
    EXPECT_EQ(std::to_string(image.rows), row[column("height")]);
  }
}

TEST(Synth, AttributesCsvReadsBackAndABadFieldIsNamed) {
  TempDir dir;
  generate_synthetic_faces(small(dir.path(), 5));
  const auto attributes = read_attributes_csv(dir / "attributes.csv");
  const auto rows = csv_rows(dir / "attributes.csv");
  ASSERT_EQ(attributes.size(), rows.size() - 1);
  EXPECT_EQ(std::to_string(attributes[0].width), rows[1][rows[0].size() - 2]);
  std::string text = read_file(dir / "attributes.csv");
  const auto second = text.find('\n') + 1;
  const auto gender =
      text.find(',', text.find(',', text.find(',', text.find(',', second) + 1) + 1) + 1);
  text.replace(gender + 1, 1, "M");  // the 5th field (gender) of the first row
  write_file_atomic(dir / "bad.csv", text);
  try {
    read_attributes_csv(dir / "bad.csv");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:2: gender 'M' is not a number"),
              std::string::npos)
        << e.what();
  }
}

TEST(Synth, TheWildGenderDomainDrawsTheTrainingSetsLikeFaces) {
  TempDir dir;
  auto options = small(dir.path(), 5);
  options.gender_domain = SynthDomain::wild;
  generate_synthetic_faces(options);
  // The images are resized to 100x100 on load, like faces/; here they keep their own sizes.
  for (const auto& sample : scan_image_folder(dir / "gender/train").samples) {
    const cv::Mat image = cv::imread(sample.path.string());
    EXPECT_NE(image.cols, image.rows) << sample.path;
  }
  EXPECT_FALSE(synthetic_faces_ready(small(dir.path(), 5)));  // the studio set is another one
}

// The default backbone learns from these labels: none may tell the genders apart. Over 480 faces
// per gender (both domains), each label's frequency differs between them by no more than
// sampling allows (4 standard errors; p(1-p) <= 1/4).
TEST(SourceTask, NoLabelIsDrawnFromTheGender) {
  const auto& attributes = source_attributes();
  std::vector<double> count[2] = {std::vector<double>(attributes.size()),
                                  std::vector<double>(attributes.size())};
  const int per_gender = 480;
  for (int i = 0; i < 2 * per_gender; ++i) {
    const int gender = i % 2;
    FaceAttributes drawn;
    render_synthetic_face(data::derive_seed(77, 4, static_cast<std::uint64_t>(i)), gender,
                          i / 2 % 2 == 0 ? SynthDomain::studio : SynthDomain::wild, &drawn);
    EXPECT_EQ(drawn.gender, gender);
    const auto targets = source_targets(drawn);
    ASSERT_EQ(targets.size(), attributes.size());
    for (std::size_t k = 0; k < targets.size(); ++k) count[gender][k] += targets[k];
  }
  const double tolerance = 4.0 * std::sqrt(0.25 * 2.0 / per_gender);
  for (std::size_t k = 0; k < attributes.size(); ++k) {
    const double female = count[0][k] / per_gender, male = count[1][k] / per_gender;
    EXPECT_LT(std::abs(female - male), tolerance)
        << attributes[k].name << ": female " << female << ", male " << male;
    EXPECT_GT(female + male, 0.02) << attributes[k].name << " is (almost) never drawn";
  }
}

TEST(SourceTask, SourceFacesAreWrittenOnceAndReadBack) {
  TempDir dir;
  SourceFacesOptions options;
  options.out = dir / "source";
  options.count = 6;
  options.threads = 2;
  const auto drawn = generate_source_faces(options);
  ASSERT_EQ(drawn.size(), 6U);
  const auto first = fs::last_write_time(dir / "source" / "000000.jpg");
  const auto again = generate_source_faces(options);  // reused: read from attributes.csv
  EXPECT_EQ(fs::last_write_time(dir / "source" / "000000.jpg"), first);
  ASSERT_EQ(again.size(), drawn.size());
  for (std::size_t i = 0; i < drawn.size(); ++i) {
    EXPECT_EQ(again[i].gender, drawn[i].gender);
    EXPECT_EQ(again[i].hair_colour, drawn[i].hair_colour);
    EXPECT_EQ(again[i].glasses, drawn[i].glasses);
    EXPECT_EQ(again[i].clothes_rgb, drawn[i].clothes_rgb);  // both as the file says
    EXPECT_EQ(source_targets(again[i]), source_targets(drawn[i]));
    EXPECT_NEAR(again[i].skin_tone, drawn[i].skin_tone, 1e-4);
    EXPECT_EQ(again[i].width, drawn[i].width);
  }
  // Even indices studio (100x100), odd ones wild; gender alternates in pairs.
  EXPECT_EQ(drawn[0].width, 100);
  EXPECT_EQ(drawn[0].gender, 0);
  EXPECT_EQ(drawn[2].gender, 1);
  // Another count is another set, and a folder onnxforge did not write is refused.
  options.count = 4;
  EXPECT_EQ(generate_source_faces(options).size(), 4U);
  fs::create_directories(dir / "mine");
  write_file_atomic(dir / "mine" / "photo.jpg", "x");
  options.out = dir / "mine";
  EXPECT_THROW(generate_source_faces(options), Error);
}

}  // namespace
}  // namespace onnxforge::gender
