// Decoding an image folder into an in-memory uint8 cache (oneTBB-parallel), and float NCHW
// batches from that cache, shuffled and augmented per epoch, prepared in the background.
//
//   auto folder = data::scan_image_folder("gender/train");
//   auto cache = data::load_images(folder, {});            // decode + resize, all cores
//   data::BatchOptions opt;  opt.batch_size = 64;  opt.augment = data::Augment::standard();
//   data::BatchStream stream(cache, opt);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     stream.start_epoch(epoch);
//     data::Batch batch;
//     while (stream.next(batch)) train_step(batch.images, batch.labels, batch.n);
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.hpp"
#include "data/image_file.hpp"
#include "data/transform.hpp"

namespace onnxforge::data {

// Receives one warning line ("warning: PATH: REASON") or the final summary line.
using WarningSink = std::function<void(std::string_view line)>;
// Writes each line to stderr.
WarningSink stderr_warnings();

struct LoadOptions {
  int height = 100;
  int width = 100;
  int threads = 0;  // decode threads; 0 = all cores
  ImageLimits limits{};
  WarningSink warn = stderr_warnings();  // may be empty (silent)
};

struct ImageCache {
  int height = 0;
  int width = 0;
  static constexpr int channels = 3;
  std::vector<std::string> classes;
  std::vector<std::uint8_t> pixels;  // N x H x W x 3, RGB
  std::vector<int> labels;
  std::vector<std::filesystem::path> paths;
  std::vector<SkippedFile> skipped;  // from the scan and from decoding, in path order

  std::size_t size() const { return labels.size(); }
  std::size_t image_bytes() const { return static_cast<std::size_t>(height) * width * channels; }
  const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * image_bytes(); }
  std::vector<std::size_t> counts() const;
};

// Decodes every sample of `folder` in parallel (oneTBB, `options.threads`), skipping bad files
// with one warning line each plus a final count line. Throws Error naming the
// folder when a class is left without any decodable image.
ImageCache load_images(const ImageFolder& folder, const LoadOptions& options = {});

struct Batch {
  std::vector<float> images;         // N x C x H x W
  std::vector<float> labels;         // N (class index as float)
  std::vector<std::size_t> indices;  // cache index of each sample
  int n = 0, c = 0, h = 0, w = 0;
};

enum class Mode {
  train,    // shuffled per epoch, augmented
  evaluate  // cache order, never augmented, partial last batch always kept
};

struct BatchOptions {
  int batch_size = 32;
  Mode mode = Mode::train;
  bool shuffle = true;     // train mode only
  bool drop_last = false;  // train mode only: drop a last batch smaller than batch_size
  std::uint64_t seed = 42;
  Augment augment{};  // train mode only
  Preprocess preprocess{};
  // Threads preparing batches in the background (a oneTBB arena of this size). 0 = prepare each
  // batch on the calling thread inside next(). Keep this small while training: compute runs on
  // OpenMP threads, and more loader threads only oversubscribe the cores.
  int threads = 1;
};

// Sample order of one epoch (a seeded permutation, or 0..n-1 without shuffling).
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, int epoch, bool shuffle);

// Seed of the augmentation of cache sample `index` in `epoch`.
std::uint64_t augment_seed(std::uint64_t seed, int epoch, std::size_t index);

// Fills `batch` with the given samples (synchronously, on the calling thread or inside the
// current oneTBB arena).
void fill_batch(const ImageCache& cache, std::span<const std::size_t> indices,
                const BatchOptions& options, int epoch, Batch& batch);

class BatchStream {
 public:
  BatchStream(const ImageCache& cache, BatchOptions options);
  ~BatchStream();
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;

  // Starts (or restarts) `epoch`: computes its order and begins preparing its first batch.
  void start_epoch(int epoch);
  // The next batch of the epoch (its storage swapped with `batch`'s, so reuse one Batch object);
  // false when the epoch is done. Starts preparing the following batch before returning.
  bool next(Batch& batch);
  std::size_t batches_per_epoch() const;
  std::size_t samples_per_epoch() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace onnxforge::data
