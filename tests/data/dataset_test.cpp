// Image-folder scanning: label maps, class lists, recursion, counts, errors, validation split.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <algorithm>
#include <initializer_list>
#include <set>

#include <stdexcept>

#include "core/error.hpp"
#include "data/dataset.hpp"
#include "test_util.hpp"

namespace onnxforge::data {
namespace {
namespace fs = std::filesystem;
using testing::pattern;
using testing::TempDir;
using testing::write_image;

// Expects `fn` to throw std::exception whose message is one line containing `needle`.
template <typename Fn>
void expect_one_line_error(Fn fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one mentioning " << needle;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

// Writes a distinct 8x8 image (pattern seeds 1, 2, ...) at each of `names` under `root`.
void write_images(const fs::path& root, std::initializer_list<const char*> names) {
  int seed = 0;
  for (const char* name : names) write_image(root / name, pattern(8, 8, ++seed));
}

TEST(LabelMap, ParsesPairsAndTrimsSpaces) {
  const auto map = parse_label_map(" man=Male , woman = Female,");
  ASSERT_EQ(map.size(), 2U);
  EXPECT_EQ(map.at("man"), "Male");
  EXPECT_EQ(map.at("woman"), "Female");
  EXPECT_TRUE(parse_label_map("").empty());
}

TEST(LabelMap, RejectsMalformedEntriesNamingThem) {
  expect_one_line_error([] { parse_label_map("man=Male,woman"); }, "'woman'");
  expect_one_line_error([] { parse_label_map("=Male"); }, "'=Male'");
  expect_one_line_error([] { parse_label_map("a=b=c"); }, "'a=b=c'");
  expect_one_line_error([] { parse_label_map("a=X,a=Y"); }, "'a'");
}

TEST(ImageFolder, SortedClassesRecursionAnyCaseExtensionsAndCounts) {
  TempDir dir;
  write_images(dir.path(), {"Male/a.jpg", "Male/sub/deeper/b.PNG", "Male/sub/c.Jpeg",
                            "Female/d.bmp", "Female/e.JPG"});
  testing::write_bytes(dir / "Female/notes.txt", {'h', 'i'});
  testing::write_bytes(dir / "README.md", {'x'});
  write_image(dir / ".ipynb_checkpoints/x.jpg", pattern(8, 8, 6));  // not a third class
  testing::write_bytes(dir / "Male/._a.jpg", {0, 5, 22, 7});        // macOS metadata

  const auto folder = scan_image_folder(dir.path());
  ASSERT_EQ(folder.classes, (std::vector<std::string>{"Female", "Male"}));
  EXPECT_EQ(folder.counts(), (std::vector<std::size_t>{2, 3}));
  ASSERT_EQ(folder.samples.size(), 5U);
  EXPECT_EQ(folder.samples[0].label, 0);
  EXPECT_EQ(folder.samples[4].label, 1);
  EXPECT_TRUE(std::any_of(folder.samples.begin(), folder.samples.end(), [&](const Sample& s) {
    return s.path == dir / "Male/sub/deeper/b.PNG";
  }));
  ASSERT_EQ(folder.skipped.size(), 4U);  // notes.txt, the root file, two hidden entries
  for (const auto& skip : folder.skipped) EXPECT_FALSE(skip.reason.empty());
}

TEST(ImageFolder, LabelMapMakesManWomanReadAsMaleFemale) {
  TempDir dir;
  write_images(dir.path(), {"man/1.jpg", "man/2.jpg", "woman/3.jpg"});
  ScanOptions options;
  options.label_map = parse_label_map("man=Male,woman=Female");
  const auto folder = scan_image_folder(dir.path(), options);
  ASSERT_EQ(folder.classes, (std::vector<std::string>{"Female", "Male"}));
  EXPECT_EQ(folder.counts(), (std::vector<std::size_t>{1, 2}));
  for (const auto& sample : folder.samples) {
    EXPECT_EQ(sample.label, sample.path.parent_path().filename() == "man" ? 1 : 0);
  }
}

TEST(ImageFolder, ExplicitClassListSetsLabelsAndIgnoresOtherFolders) {
  TempDir dir;
  write_images(dir.path(), {"Male/1.jpg", "Female/2.jpg", "Other/3.jpg"});
  ScanOptions options;
  options.classes = {"Male", "Female"};
  const auto folder = scan_image_folder(dir.path(), options);
  ASSERT_EQ(folder.samples.size(), 2U);
  EXPECT_EQ(folder.samples[0].path, dir / "Male/1.jpg");
  EXPECT_EQ(folder.samples[0].label, 0);
  EXPECT_EQ(folder.samples[1].label, 1);
}

TEST(ImageFolder, ErrorsAreOneLineNamingThePath) {
  TempDir dir;
  const std::string missing = (dir / "nowhere").string();
  expect_one_line_error([&] { scan_image_folder(missing); }, missing);

  write_image(dir / "single/Male/1.jpg", pattern(8, 8, 1));
  expect_one_line_error([&] { scan_image_folder(dir / "single"); }, (dir / "single").string());

  write_image(dir / "empty/Male/1.jpg", pattern(8, 8, 1));
  fs::create_directories(dir / "empty/Female/sub");
  testing::write_bytes(dir / "empty/Female/sub/x.txt", {'x'});
  expect_one_line_error([&] { scan_image_folder(dir / "empty"); }, (dir / "empty/Female").string());

  ScanOptions options;
  options.classes = {"Female", "Male", "Child"};
  write_image(dir / "two/Male/1.jpg", pattern(8, 8, 1));
  write_image(dir / "two/Female/1.jpg", pattern(8, 8, 1));
  expect_one_line_error([&] { scan_image_folder(dir / "two", options); }, "'Child'");

  testing::write_bytes(dir / "file.jpg", {1, 2, 3});
  expect_one_line_error([&] { scan_image_folder(dir / "file.jpg"); }, (dir / "file.jpg").string());
}

TEST(ImageFolder, SymlinkLoopsAreSkippedNotFollowedForever) {
  TempDir dir;
  write_images(dir.path(), {"Male/a.jpg", "Female/b.jpg"});
  fs::create_directory_symlink(dir / "Male", dir / "Male/loop");  // points at its own parent
  fs::create_symlink("self.jpg", dir / "Female/self.jpg");        // points at itself
  fs::create_symlink(dir / "gone.jpg", dir / "Female/dangling.jpg");
  const auto folder = scan_image_folder(dir.path());
  EXPECT_EQ(folder.counts(), (std::vector<std::size_t>{1, 1}));
  ASSERT_EQ(folder.skipped.size(), 3U);
  std::set<fs::path> skipped;
  for (const auto& skip : folder.skipped) {
    skipped.insert(skip.path);
    if (skip.path.filename() != "dangling.jpg") {
      EXPECT_NE(skip.reason.find("symlink loop"), std::string::npos) << skip.reason;
    }
  }
  EXPECT_TRUE(skipped.contains(dir / "Male/loop"));
  EXPECT_TRUE(skipped.contains(dir / "Female/self.jpg"));
}

TEST(ValidationSplit, SeededStratifiedDisjointAndComplete) {
  TempDir dir;
  for (int i = 0; i < 20; ++i)
    write_image(dir / fmt::format("Male/{:02d}.png", i), pattern(4, 4, i));
  for (int i = 0; i < 12; ++i) {
    write_image(dir / fmt::format("Female/{:02d}.png", i), pattern(4, 4, i));
  }
  const auto folder = scan_image_folder(dir.path());
  const auto a = split_validation(folder, 0.25, 7);
  const auto b = split_validation(folder, 0.25, 7);
  const auto c = split_validation(folder, 0.25, 8);
  EXPECT_EQ(a.validation.counts(), (std::vector<std::size_t>{3, 5}));
  EXPECT_EQ(a.train.counts(), (std::vector<std::size_t>{9, 15}));
  auto paths = [](const ImageFolder& f) {
    std::vector<fs::path> out;
    for (const auto& s : f.samples) out.push_back(s.path);
    return out;
  };
  EXPECT_EQ(paths(a.validation), paths(b.validation));
  EXPECT_NE(paths(a.validation), paths(c.validation));
  std::set<fs::path> all;
  for (const auto& p : paths(a.train)) all.insert(p);
  for (const auto& p : paths(a.validation)) EXPECT_TRUE(all.insert(p).second);
  EXPECT_EQ(all.size(), 32U);
  EXPECT_THROW(split_validation(folder, 1.0, 7), onnxforge::Error);
}

}  // namespace
}  // namespace onnxforge::data
