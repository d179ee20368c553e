// The cache and the batch stream: bad files skipped and counted, seeded order and augmentation,
// partial batches, evaluation mode, background preparation.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <algorithm>
#include <filesystem>

#include <set>

#include "data/loader.hpp"
#include "test_util.hpp"

namespace onnxforge::data {
namespace {
namespace fs = std::filesystem;
using testing::encode;
using testing::pattern;
using testing::TempDir;
using testing::write_bytes;
using testing::write_image;

// A dataset with 5 good images per class.
void write_good(const TempDir& dir) {
  for (int i = 0; i < 5; ++i) {
    write_image(dir / fmt::format("Female/f{}.jpg", i), pattern(30 + i, 20 + i, i));
    write_image(dir / fmt::format("Male/sub/m{}.png", i), pattern(12, 16, 10 + i));
  }
}

TEST(LoadImages, EveryBadFileKindIsSkippedWithOneWarningAndCounted) {
  TempDir dir;
  write_good(dir);
  const auto jpg = encode(".jpg", pattern(40, 40, 1));
  const auto png = encode(".png", pattern(40, 40, 2));
  write_bytes(dir / "Female/zero.jpg", {});
  write_bytes(dir / "Female/truncated.jpg", {jpg.begin(), jpg.begin() + jpg.size() / 2});
  write_bytes(dir / "Male/truncated.png", {png.begin(), png.begin() + png.size() / 2});
  const std::string text = "name,label\nx,1\n";
  write_bytes(dir / "Male/labels.jpg", {text.begin(), text.end()});  // not an image
  auto corrupt = png;  // complete file, damaged compressed data: the decoder fails
  for (std::size_t i = 60; i < 90; ++i) corrupt[i] ^= 0x5A;
  write_bytes(dir / "Male/corrupt.png", corrupt);
  auto bomb = png;
  bomb[16] = bomb[20] = 0x7F;  // IHDR width/height ~ 2.1e9
  write_bytes(dir / "Female/bomb.png", bomb);
  fs::create_directory_symlink(dir / "Male", dir / "Male/sub/loop");
  write_bytes(dir / "Female/readme.txt", {'x'});

  const auto folder = scan_image_folder(dir.path());
  std::vector<std::string> lines;
  LoadOptions options;
  options.height = options.width = 8;
  options.threads = 2;
  options.warn = [&](std::string_view line) { lines.emplace_back(line); };
  const auto cache = load_images(folder, options);

  EXPECT_EQ(cache.counts(), (std::vector<std::size_t>{5, 5}));
  EXPECT_EQ(cache.pixels.size(), 10U * 8 * 8 * 3);
  ASSERT_EQ(cache.skipped.size(), 8U);
  ASSERT_EQ(lines.size(), 9U);  // one per file and the final count
  for (std::size_t i = 0; i < cache.skipped.size(); ++i) {
    EXPECT_NE(lines[i].find(cache.skipped[i].path.string()), std::string::npos) << lines[i];
    EXPECT_EQ(lines[i].find('\n'), std::string::npos);
  }
  EXPECT_NE(lines.back().find("skipped 8 files"), std::string::npos) << lines.back();
  auto reason_of = [&](const std::string& name) {
    for (const auto& s : cache.skipped) {
      if (s.path.filename() == name) return s.reason;
    }
    return std::string("<not skipped>");
  };
  EXPECT_NE(reason_of("zero.jpg").find("empty"), std::string::npos);
  EXPECT_NE(reason_of("truncated.jpg").find("truncated"), std::string::npos);
  EXPECT_NE(reason_of("truncated.png").find("truncated"), std::string::npos);
  EXPECT_NE(reason_of("labels.jpg").find("not an image"), std::string::npos);
  EXPECT_NE(reason_of("corrupt.png").find("decode failed"), std::string::npos);
  EXPECT_NE(reason_of("bomb.png").find("decompression bomb"), std::string::npos);
  EXPECT_NE(reason_of("loop").find("symlink loop"), std::string::npos);
  EXPECT_NE(reason_of("readme.txt").find("not an image"), std::string::npos);
}

TEST(LoadImages, ClassWithoutReadableImagesIsAnError) {
  TempDir dir;
  write_image(dir / "Male/a.png", pattern(8, 8, 1));
  write_bytes(dir / "Female/a.jpg", {1, 2, 3});
  const auto folder = scan_image_folder(dir.path());
  LoadOptions options;
  options.warn = {};
  try {
    load_images(folder, options);
    ADD_FAILURE() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'Female'"), std::string::npos) << e.what();
  }
}

TEST(LoadImages, SameCacheWithOneOrTwoThreads) {
  TempDir dir;
  write_good(dir);
  const auto folder = scan_image_folder(dir.path());
  LoadOptions one, two;
  one.threads = 1;
  two.threads = 2;
  EXPECT_EQ(load_images(folder, one).pixels, load_images(folder, two).pixels);
}

// A synthetic cache of n images, each filled with its index.
ImageCache make_cache(std::size_t n, int size = 6) {
  ImageCache cache;
  cache.height = cache.width = size;
  cache.classes = {"Female", "Male"};
  for (std::size_t i = 0; i < n; ++i) {
    for (int p = 0; p < size * size * 3; ++p) {
      cache.pixels.push_back(
          static_cast<std::uint8_t>((i * 13 + static_cast<std::size_t>(p) * 7) & 255));
    }
    cache.labels.push_back(static_cast<int>(i % 2));
    cache.paths.emplace_back(fmt::format("{}.png", i));
  }
  return cache;
}

std::vector<Batch> epoch(BatchStream& stream, int e) {
  stream.start_epoch(e);
  std::vector<Batch> out;
  Batch batch;
  while (stream.next(batch)) out.push_back(batch);
  return out;
}

TEST(BatchStream, SeededOrderAndAugmentationAreIdenticalAcrossThreadCounts) {
  const auto cache = make_cache(23);
  BatchOptions options;
  options.batch_size = 5;
  options.seed = 11;
  options.augment = Augment::standard();
  std::vector<std::vector<Batch>> runs;
  for (int threads : {0, 1, 2}) {
    options.threads = threads;
    BatchStream stream(cache, options);
    runs.push_back(epoch(stream, 3));
  }
  ASSERT_EQ(runs[0].size(), 5U);
  for (std::size_t r = 1; r < runs.size(); ++r) {
    for (std::size_t b = 0; b < runs[0].size(); ++b) {
      EXPECT_EQ(runs[r][b].indices, runs[0][b].indices);
      EXPECT_EQ(runs[r][b].images, runs[0][b].images);
      EXPECT_EQ(runs[r][b].labels, runs[0][b].labels);
    }
  }
  // Every sample exactly once; the last batch is partial (23 = 4 x 5 + 3).
  std::set<std::size_t> seen;
  for (const auto& batch : runs[0]) seen.insert(batch.indices.begin(), batch.indices.end());
  EXPECT_EQ(seen.size(), 23U);
  EXPECT_EQ(runs[0].back().n, 3);
  EXPECT_EQ(runs[0].back().images.size(), 3U * 3 * 6 * 6);
  EXPECT_EQ(runs[0].back().labels.size(), 3U);
  // Another epoch gives another order and other augmentations.
  options.threads = 1;
  BatchStream stream(cache, options);
  const auto next = epoch(stream, 4);
  EXPECT_NE(next[0].indices, runs[0][0].indices);
}

TEST(BatchStream, AugmentationDependsOnSampleAndEpochNotOnBatching) {
  const auto cache = make_cache(12);
  BatchOptions options;
  options.seed = 5;
  options.augment = Augment::standard();
  options.batch_size = 4;
  BatchStream a(cache, options);
  options.batch_size = 6;
  BatchStream b(cache, options);
  const auto ea = epoch(a, 0);
  const auto eb = epoch(b, 0);
  const std::size_t plane = 3 * 6 * 6;
  auto sample = [&](const std::vector<Batch>& batches, std::size_t k) {
    const auto& batch = batches[k / static_cast<std::size_t>(batches[0].n)];
    const std::size_t i = k % static_cast<std::size_t>(batches[0].n);
    return std::vector<float>(batch.images.begin() + static_cast<std::ptrdiff_t>(i * plane),
                              batch.images.begin() + static_cast<std::ptrdiff_t>((i + 1) * plane));
  };
  for (std::size_t k = 0; k < 12; ++k) EXPECT_EQ(sample(ea, k), sample(eb, k));
}

TEST(BatchStream, DropLastAndEvaluationMode) {
  const auto cache = make_cache(10);
  BatchOptions options;
  options.batch_size = 4;
  options.drop_last = true;
  options.augment = Augment::standard();
  BatchStream train(cache, options);
  EXPECT_EQ(train.batches_per_epoch(), 2U);
  EXPECT_EQ(epoch(train, 0).size(), 2U);

  options.mode = Mode::evaluate;
  BatchStream eval(cache, options);
  EXPECT_EQ(eval.batches_per_epoch(), 3U);
  const auto batches = epoch(eval, 7);
  ASSERT_EQ(batches.size(), 3U);
  EXPECT_EQ(batches[2].n, 2);
  std::size_t k = 0;
  for (const auto& batch : batches) {
    for (int i = 0; i < batch.n; ++i, ++k) {
      EXPECT_EQ(batch.indices[static_cast<std::size_t>(i)], k);  // cache order
      EXPECT_EQ(batch.labels[static_cast<std::size_t>(i)], static_cast<float>(k % 2));
      // No augmentation: channel 0 is the red byte / 255, exactly.
      const std::uint8_t* rgb = cache.image(k);
      const float* chw = batch.images.data() + static_cast<std::size_t>(i) * 3 * 36;
      for (int p = 0; p < 36; ++p) {
        ASSERT_EQ(chw[p], static_cast<float>(rgb[3 * p] / 255.0));
        ASSERT_EQ(chw[72 + p], static_cast<float>(rgb[3 * p + 2] / 255.0));
      }
    }
  }
}

TEST(BatchStream, EpochOrderIsASeededPermutation) {
  const auto a = epoch_order(100, 1, 0, true);
  EXPECT_EQ(a, epoch_order(100, 1, 0, true));
  EXPECT_NE(a, epoch_order(100, 1, 1, true));
  EXPECT_NE(a, epoch_order(100, 2, 0, true));
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, epoch_order(100, 1, 0, false));
}

}  // namespace
}  // namespace onnxforge::data
