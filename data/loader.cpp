#include "data/loader.hpp"

#include <fmt/format.h>

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <future>

#include "core/error.hpp"
#include "data/parallel.hpp"
#include "data/rng.hpp"

namespace onnxforge::data {
namespace {

constexpr std::uint64_t kOrderTag = 0x6f72646572ULL;  // "order"
constexpr std::uint64_t kAugmentTag = 0x6175676dULL;  // "augm"

// An arena of `threads` slots that worker threads may fill completely (no slot reserved for the
// calling thread), plus the global permission for that many workers when the default is lower.
struct Arena {
  explicit Arena(int threads, bool reserve_caller) {
    const int available = tbb::info::default_concurrency();
    const int needed = threads + (reserve_caller ? 0 : 1);
    if (needed > available) {
      control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      static_cast<std::size_t>(needed));
    }
    arena = std::make_unique<tbb::task_arena>(threads, reserve_caller ? 1 : 0);
  }
  std::unique_ptr<tbb::global_control> control;
  std::unique_ptr<tbb::task_arena> arena;
};

}  // namespace

WarningSink stderr_warnings() {
  return [](std::string_view line) {
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fputc('\n', stderr);
  };
}

std::vector<std::size_t> ImageCache::counts() const {
  std::vector<std::size_t> out(classes.size(), 0);
  for (int label : labels) ++out.at(static_cast<std::size_t>(label));
  return out;
}

ImageCache load_images(const ImageFolder& folder, const LoadOptions& options) {
  if (options.height <= 0 || options.width <= 0) {
    throw Error(fmt::format("image size {}x{} must be positive", options.width, options.height));
  }
  ImageCache cache;
  cache.height = options.height;
  cache.width = options.width;
  cache.classes = folder.classes;
  const std::size_t n = folder.samples.size();
  const std::size_t bytes = cache.image_bytes();
  cache.pixels.resize(n * bytes);
  std::vector<std::string> errors(n);

  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  Arena arena(threads, /*reserve_caller=*/true);
  arena.arena->execute([&] {
    detail::parallel_for(n, 4, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i != end; ++i) {
        errors[i] = load_image_rgb(folder.samples[i].path, options.height, options.width,
                                   options.limits, cache.pixels.data() + i * bytes);
      }
    });
  });

  cache.skipped = folder.skipped;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      cache.skipped.push_back({folder.samples[i].path, std::move(errors[i])});
      continue;
    }
    if (kept != i) {
      std::memcpy(cache.pixels.data() + kept * bytes, cache.pixels.data() + i * bytes, bytes);
    }
    cache.labels.push_back(folder.samples[i].label);
    cache.paths.push_back(folder.samples[i].path);
    ++kept;
  }
  cache.pixels.resize(kept * bytes);
  cache.pixels.shrink_to_fit();
  std::sort(cache.skipped.begin(), cache.skipped.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  if (options.warn) {
    for (const auto& skip : cache.skipped) {
      options.warn(fmt::format("warning: {}: {}", skip.path.string(), skip.reason));
    }
    if (!cache.skipped.empty()) {
      options.warn(fmt::format("warning: skipped {} file{} under {} (listed above)",
                               cache.skipped.size(), cache.skipped.size() == 1 ? "" : "s",
                               folder.root.string()));
    }
  }
  const auto counts = cache.counts();
  for (std::size_t label = 0; label < counts.size(); ++label) {
    if (counts[label] == 0) {
      throw Error(fmt::format("class '{}' under {} has no readable image", cache.classes[label],
                              folder.root.string()));
    }
  }
  return cache;
}

std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, int epoch, bool shuffle) {
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  if (shuffle) {
    Rng rng(derive_seed(seed, kOrderTag, static_cast<std::uint64_t>(epoch)));
    rng.shuffle(std::span<std::size_t>(order));
  }
  return order;
}

std::uint64_t augment_seed(std::uint64_t seed, int epoch, std::size_t index) {
  return derive_seed(seed, kAugmentTag, static_cast<std::uint64_t>(epoch), index);
}

namespace {

void fill_samples(const ImageCache& cache, std::span<const std::size_t> indices,
                  const BatchOptions& options, int epoch, Batch& batch, std::size_t begin,
                  std::size_t end) {
  thread_local std::vector<std::uint8_t> scratch;
  scratch.resize(transform_scratch_bytes(cache.height, cache.width));
  const bool augment = options.mode == Mode::train && options.augment.any();
  const std::size_t plane = static_cast<std::size_t>(cache.height) * cache.width * 3;
  for (std::size_t i = begin; i < end; ++i) {
    const std::size_t index = indices[i];
    AugmentDraw draw;
    if (augment) {
      draw = draw_augment(options.augment, cache.height, cache.width,
                          augment_seed(options.seed, epoch, index));
    }
    transform_sample(cache.image(index), cache.height, cache.width, options.preprocess,
                     augment ? &draw : nullptr, scratch.data(), batch.images.data() + i * plane);
    batch.labels[i] = static_cast<float>(cache.labels[index]);
  }
}

void prepare(Batch& batch, const ImageCache& cache, std::span<const std::size_t> indices) {
  batch.n = static_cast<int>(indices.size());
  batch.c = 3;
  batch.h = cache.height;
  batch.w = cache.width;
  batch.images.resize(indices.size() * cache.image_bytes());
  batch.labels.resize(indices.size());
  batch.indices.assign(indices.begin(), indices.end());
}

}  // namespace

void fill_batch(const ImageCache& cache, std::span<const std::size_t> indices,
                const BatchOptions& options, int epoch, Batch& batch) {
  prepare(batch, cache, indices);
  detail::parallel_for(indices.size(), 8, [&](std::size_t begin, std::size_t end) {
    fill_samples(cache, indices, options, epoch, batch, begin, end);
  });
}

struct BatchStream::Impl {
  Impl(const ImageCache& c, BatchOptions o) : cache(c), options(std::move(o)) {
    if (options.batch_size <= 0) {
      throw Error(fmt::format("batch size {} must be positive", options.batch_size));
    }
    if (options.mode == Mode::evaluate) {
      options.shuffle = false;
      options.drop_last = false;
      options.augment = Augment{};
    }
    if (options.threads > 0) arena = std::make_unique<Arena>(options.threads, false);
  }

  ~Impl() { wait_quietly(); }

  std::size_t batch_count() const {
    const std::size_t n = cache.size();
    const std::size_t bs = static_cast<std::size_t>(options.batch_size);
    return options.drop_last ? n / bs : (n + bs - 1) / bs;
  }

  std::span<const std::size_t> indices_of(std::size_t b) const {
    const std::size_t bs = static_cast<std::size_t>(options.batch_size);
    const std::size_t begin = b * bs;
    return std::span<const std::size_t>(order).subspan(begin, std::min(bs, order.size() - begin));
  }

  void launch(std::size_t b) {
    if (!arena) return;  // prepared synchronously in next()
    auto promise = std::make_shared<std::promise<void>>();
    pending = promise->get_future();
    const auto indices = indices_of(b);
    detail::enqueue(*arena->arena, [this, indices, promise] {
      try {
        fill_batch(cache, indices, options, epoch, prepared);
        promise->set_value();
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
  }

  void wait_quietly() {
    if (pending.valid()) pending.wait();
  }

  const ImageCache& cache;
  BatchOptions options;
  std::unique_ptr<Arena> arena;
  std::vector<std::size_t> order;
  int epoch = 0;
  std::size_t next_batch = 0;
  bool started = false;
  Batch prepared;
  std::future<void> pending;
};

BatchStream::BatchStream(const ImageCache& cache, BatchOptions options)
    : impl_(std::make_unique<Impl>(cache, std::move(options))) {}

BatchStream::~BatchStream() = default;

void BatchStream::start_epoch(int epoch) {
  Impl& s = *impl_;
  s.wait_quietly();
  s.pending = {};
  s.epoch = epoch;
  s.order = epoch_order(s.cache.size(), s.options.seed, epoch,
                        s.options.mode == Mode::train && s.options.shuffle);
  s.next_batch = 0;
  s.started = true;
  if (s.batch_count() > 0) s.launch(0);
}

bool BatchStream::next(Batch& batch) {
  Impl& s = *impl_;
  if (!s.started) start_epoch(0);
  if (s.next_batch >= s.batch_count()) return false;
  if (s.arena) {
    s.pending.get();  // rethrows a failure of the background work
  } else {
    const auto indices = s.indices_of(s.next_batch);
    prepare(s.prepared, s.cache, indices);
    fill_samples(s.cache, indices, s.options, s.epoch, s.prepared, 0, indices.size());
  }
  std::swap(batch, s.prepared);
  ++s.next_batch;
  if (s.next_batch < s.batch_count()) s.launch(s.next_batch);
  return true;
}

std::size_t BatchStream::batches_per_epoch() const { return impl_->batch_count(); }

std::size_t BatchStream::samples_per_epoch() const {
  const std::size_t b = impl_->batch_count();
  if (b == 0) return 0;
  return std::min(impl_->cache.size(), b * static_cast<std::size_t>(impl_->options.batch_size));
}

}  // namespace onnxforge::data
