#include "trainers/batches.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "core/error.hpp"

namespace onnxforge::train {

namespace {

class ImageBatches final : public BatchSource {
 public:
  ImageBatches(const data::ImageCache& cache, const data::BatchOptions& options)
      : cache_(cache), stream_(cache, options) {
    labels_ = cache.labels;
  }
  void start_epoch(int epoch) override { stream_.start_epoch(epoch); }
  int next(Tensor& inputs, Tensor& labels) override {
    if (!stream_.next(batch_)) return 0;
    copy_rows(batch_.images.data(), batch_.images.size(), inputs);
    copy_rows(batch_.labels.data(), batch_.labels.size(), labels);
    return batch_.n;
  }
  std::size_t batches_per_epoch() const override { return stream_.batches_per_epoch(); }
  std::size_t size() const override { return cache_.size(); }
  const std::vector<int>& labels() const override { return labels_; }
  const std::vector<std::filesystem::path>& paths() const override { return cache_.paths; }

  static void copy_rows(const float* src, std::size_t count, Tensor& dst) {
    auto out = dst.data<float>();
    if (count > out.size()) fail("a batch of {} values does not fit {}", count, out.size());
    std::memcpy(out.data(), src, count * sizeof(float));
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(count), out.end(), 0.0f);
  }

 private:
  const data::ImageCache& cache_;
  data::BatchStream stream_;
  data::Batch batch_;
  std::vector<int> labels_;
};

class FeatureBatches final : public BatchSource {
 public:
  FeatureBatches(const FeatureCache& cache, const data::BatchOptions& options)
      : cache_(cache),
        batch_size_(options.batch_size),
        shuffle_(options.mode == data::Mode::train && options.shuffle),
        drop_last_(options.mode == data::Mode::train && options.drop_last),
        seed_(options.seed) {}
  void start_epoch(int epoch) override {
    order_ = data::epoch_order(cache_.count(), seed_, epoch, shuffle_);
    if (drop_last_) {
      order_.resize(order_.size() / static_cast<std::size_t>(batch_size_) *
                    static_cast<std::size_t>(batch_size_));
    }
    position_ = 0;
  }
  int next(Tensor& inputs, Tensor& labels) override {
    if (position_ >= order_.size()) return 0;
    const std::size_t n =
        std::min(order_.size() - position_, static_cast<std::size_t>(batch_size_));
    auto in = inputs.data<float>();
    auto out = labels.data<float>();
    std::fill(in.begin(), in.end(), 0.0f);
    std::fill(out.begin(), out.end(), 0.0f);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t sample = order_[position_ + i];
      std::memcpy(in.data() + i * cache_.sample_size(), cache_.sample(sample),
                  cache_.sample_size() * sizeof(float));
      out[i] = static_cast<float>(cache_.labels[sample]);
    }
    position_ += n;
    return static_cast<int>(n);
  }
  std::size_t batches_per_epoch() const override {
    const auto b = static_cast<std::size_t>(batch_size_);
    return drop_last_ ? cache_.count() / b : (cache_.count() + b - 1) / b;
  }
  std::size_t size() const override { return cache_.count(); }
  const std::vector<int>& labels() const override { return cache_.labels; }
  const std::vector<std::filesystem::path>& paths() const override { return cache_.paths; }

 private:
  const FeatureCache& cache_;
  int batch_size_;
  bool shuffle_, drop_last_;  // train mode only
  std::uint64_t seed_;
  std::vector<std::size_t> order_;
  std::size_t position_ = 0;
};

}  // namespace

std::unique_ptr<BatchSource> image_batches(const data::ImageCache& cache,
                                           const data::BatchOptions& options) {
  return std::make_unique<ImageBatches>(cache, options);
}

std::unique_ptr<BatchSource> feature_batches(const FeatureCache& cache,
                                             const data::BatchOptions& options) {
  return std::make_unique<FeatureBatches>(cache, options);
}

FeatureCache::FeatureCache(Shape sample_shape, std::size_t count, std::size_t memory_limit_bytes,
                           const std::filesystem::path& spill_dir)
    : sample_shape_(std::move(sample_shape)),
      sample_size_(static_cast<std::size_t>(element_count(sample_shape_))),
      count_(count) {
  const std::size_t bytes = sample_size_ * count_ * sizeof(float);
  if (bytes <= memory_limit_bytes) {
    memory_.assign(sample_size_ * count_, 0.0f);
    base_ = memory_.data();
    return;
  }
  std::filesystem::create_directories(spill_dir);
  spill_path_ = spill_dir / ("features-" + std::to_string(::getpid()) + "-" +
                             std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ".f32");
  const int fd = ::open(spill_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) fail("{}: cannot create the feature cache file", spill_path_.string());
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    ::close(fd);
    fail("{}: cannot size the feature cache file to {} bytes (disk full?)", spill_path_.string(),
         bytes);
  }
  mapped_ = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (mapped_ == MAP_FAILED) {
    mapped_ = nullptr;
    fail("{}: cannot map the feature cache file", spill_path_.string());
  }
  mapped_bytes_ = bytes;
  std::filesystem::remove(spill_path_);  // the mapping keeps it alive; nothing is left behind
  base_ = static_cast<float*>(mapped_);
}

FeatureCache::~FeatureCache() {
  if (mapped_) ::munmap(mapped_, mapped_bytes_);
}

}  // namespace onnxforge::train
