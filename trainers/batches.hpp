// Where the training loop's batches come from: decoded images (data::BatchStream: shuffled,
// augmented, prepared in the background) or cached backbone features (transfer learning with a
// frozen prefix: the backbone ran once per image).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.hpp"
#include "graph/tensor.hpp"

namespace onnxforge::train {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Starts an epoch: its order (shuffled in training) depends on (seed, epoch) only.
  virtual void start_epoch(int epoch) = 0;
  // Writes the next batch into the first rows of `inputs` (N x sample shape) and `labels`
  // (N x 1) and returns its size, or 0 when the epoch is done. Rows past the size are zero.
  virtual int next(Tensor& inputs, Tensor& labels) = 0;
  virtual std::size_t batches_per_epoch() const = 0;
  // All samples, in evaluation order (training sources shuffle instead).
  virtual std::size_t size() const = 0;
  virtual const std::vector<int>& labels() const = 0;
  virtual const std::vector<std::filesystem::path>& paths() const = 0;
};

std::unique_ptr<BatchSource> image_batches(const data::ImageCache& cache,
                                           const data::BatchOptions& options);

// Backbone outputs of every image of a split, kept in memory up to a limit and spilled to a
// memory-mapped temporary file beyond it.
class FeatureCache {
 public:
  FeatureCache(Shape sample_shape, std::size_t count, std::size_t memory_limit_bytes,
               const std::filesystem::path& spill_dir);
  ~FeatureCache();
  FeatureCache(const FeatureCache&) = delete;
  FeatureCache& operator=(const FeatureCache&) = delete;

  const Shape& sample_shape() const { return sample_shape_; }
  std::size_t sample_size() const { return sample_size_; }
  std::size_t count() const { return count_; }
  bool spilled() const { return mapped_ != nullptr; }
  float* sample(std::size_t i) { return base_ + i * sample_size_; }
  const float* sample(std::size_t i) const { return base_ + i * sample_size_; }

  std::vector<int> labels;
  std::vector<std::filesystem::path> paths;

 private:
  Shape sample_shape_;
  std::size_t sample_size_ = 0;
  std::size_t count_ = 0;
  std::vector<float> memory_;
  void* mapped_ = nullptr;
  std::size_t mapped_bytes_ = 0;
  std::filesystem::path spill_path_;
  float* base_ = nullptr;
};

// The options of image_batches, with their meaning there: batch_size, seed, and in train mode
// shuffle and drop_last (evaluate mode: every sample in order). Augmentation, preprocessing and
// loader threads do not apply to features (they were computed once from unaugmented images).
std::unique_ptr<BatchSource> feature_batches(const FeatureCache& cache,
                                             const data::BatchOptions& options);

}  // namespace onnxforge::train
