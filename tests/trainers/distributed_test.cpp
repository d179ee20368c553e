// Data parallelism without a launcher: the shard arithmetic, sharded sources whose shards put
// together are exactly one process's batches (training, with augmentation) and splits
// (evaluation), and the bucketed gradient allreduce's copy-out / write-back on one rank. The
// runs under mpirun (2 ranks against 1 process, faults, resume) are tests/trainers/mpi_train.sh.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "graph/builder.hpp"
#include "trainers/distributed.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::train {
namespace {

TEST(Shards, RangesCoverTheTotalContiguouslyFirstRanksTakeTheRemainder) {
  for (std::size_t total : {0u, 1u, 3u, 9u, 32u, 33u}) {
    for (int ranks : {1, 2, 3, 4, 7}) {
      std::size_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const ShardRange range = shard_range(total, {r, ranks});
        EXPECT_EQ(range.begin, next);
        EXPECT_EQ(range.count, total / ranks + (static_cast<std::size_t>(r) < total % ranks));
        next += range.count;
      }
      EXPECT_EQ(next, total);
    }
  }
  EXPECT_EQ(shard_range(9, {0, 2}).count, 5u);
  EXPECT_EQ(shard_range(9, {1, 2}).begin, 5u);
}

data::ImageCache numbered_images(int count) {
  data::ImageCache cache;
  cache.height = 6;
  cache.width = 5;
  cache.classes = {"a", "b"};
  std::mt19937 rng(7);
  for (int i = 0; i < count; ++i) {
    for (std::size_t p = 0; p < cache.image_bytes(); ++p) {
      cache.pixels.push_back(static_cast<std::uint8_t>(rng() % 256));
    }
    cache.labels.push_back(i % 3 == 0);
    cache.paths.push_back(fmt::format("img{}", i));
  }
  return cache;
}

// Every batch of an epoch as rows of floats.
std::vector<std::vector<float>> read_epoch(BatchSource& source, int epoch, int rows,
                                           std::int64_t row_size,
                                           std::vector<std::vector<float>>* labels = nullptr) {
  Tensor inputs(DType::f32, {rows, row_size});
  Tensor label_rows(DType::f32, {rows, 1});
  std::vector<std::vector<float>> batches;
  source.start_epoch(epoch);
  for (int n; (n = source.next(inputs, label_rows)) > 0;) {
    const auto v = inputs.data<float>();
    batches.emplace_back(v.begin(), v.begin() + n * row_size);
    if (labels) {
      const auto l = label_rows.data<float>();
      labels->emplace_back(l.begin(), l.begin() + n);
    }
  }
  return batches;
}

TEST(ShardedSources, TrainingShardsConcatenateToOneProcesssBatchesWithAugmentation) {
  const auto cache = numbered_images(23);
  data::BatchOptions options;
  options.batch_size = 7;
  options.mode = data::Mode::train;
  options.drop_last = true;
  options.seed = 11;
  options.threads = 1;
  options.augment.flip_probability = 0.5;
  options.augment.rotation_degrees = 10;
  options.augment.brightness = 0.2;
  const std::int64_t row = 3 * 6 * 5;
  auto single = image_batches(cache, options);
  for (int epoch : {0, 1, 4}) {
    std::vector<std::vector<float>> single_labels;
    const auto expected = read_epoch(*single, epoch, 7, row, &single_labels);
    ASSERT_EQ(expected.size(), 3u);  // 23 / 7, the partial batch dropped
    for (int ranks : {1, 2, 3}) {
      std::vector<std::vector<float>> joined(expected.size()), joined_labels(expected.size());
      for (int r = 0; r < ranks; ++r) {
        auto shard = sharded_image_batches(
            cache, options, {.shard = {r, ranks}, .batch_size = 7, .training = true, .seed = 11});
        EXPECT_EQ(shard->batches_per_epoch(), 3u);
        EXPECT_EQ(shard->size(), 23u);
        std::vector<std::vector<float>> shard_labels;
        const auto got = read_epoch(*shard, epoch, 7, row, &shard_labels);
        ASSERT_EQ(got.size(), expected.size());
        for (std::size_t b = 0; b < got.size(); ++b) {
          EXPECT_EQ(got[b].size(), shard_range(7, {r, ranks}).count * row);
          joined[b].insert(joined[b].end(), got[b].begin(), got[b].end());
          joined_labels[b].insert(joined_labels[b].end(), shard_labels[b].begin(),
                                  shard_labels[b].end());
        }
      }
      EXPECT_EQ(joined, expected) << "epoch " << epoch << ", " << ranks << " ranks";
      EXPECT_EQ(joined_labels, single_labels);
    }
  }
}

TEST(ShardedSources, EvaluationSlicesConcatenateToTheSplitInOrder) {
  const auto cache = numbered_images(11);
  data::BatchOptions options;
  options.batch_size = 4;
  options.mode = data::Mode::evaluate;
  const std::int64_t row = 3 * 6 * 5;
  auto single = image_batches(cache, options);
  std::vector<float> expected;
  for (const auto& b : read_epoch(*single, 0, 4, row))
    expected.insert(expected.end(), b.begin(), b.end());
  for (int ranks : {2, 3}) {
    std::vector<float> joined;
    for (int r = 0; r < ranks; ++r) {
      // Each rank evaluates with its local batch (here 2), over its slice of the 11 images.
      auto slice = sharded_image_batches(cache, options,
                                         {.shard = {r, ranks}, .batch_size = 2, .training = false});
      EXPECT_EQ(slice->size(), 11u);
      EXPECT_EQ(slice->labels(), cache.labels);
      for (const auto& b : read_epoch(*slice, 0, 2, row))
        joined.insert(joined.end(), b.begin(), b.end());
    }
    EXPECT_EQ(joined, expected) << ranks << " ranks";
  }
}

TEST(ShardedSources, FeatureShardsMatchOneProcess) {
  FeatureCache cache({2}, 10, 1 << 20, std::filesystem::temp_directory_path());
  for (std::size_t i = 0; i < 10; ++i) {
    cache.sample(i)[0] = static_cast<float>(i);
    cache.sample(i)[1] = static_cast<float>(100 + i);
    cache.labels.push_back(static_cast<int>(i % 2));
    cache.paths.push_back(fmt::format("f{}", i));
  }
  auto single =
      feature_batches(cache, {.batch_size = 4, .shuffle = true, .drop_last = true, .seed = 3});
  const auto expected = read_epoch(*single, 2, 4, 2);
  std::vector<std::vector<float>> joined(expected.size());
  for (int r = 0; r < 2; ++r) {
    auto shard = sharded_feature_batches(
        cache, {.shard = {r, 2}, .batch_size = 4, .training = true, .seed = 3});
    const auto got = read_epoch(*shard, 2, 4, 2);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t b = 0; b < got.size(); ++b)
      joined[b].insert(joined[b].end(), got[b].begin(), got[b].end());
  }
  EXPECT_EQ(joined, expected);
}

TEST(GradientAllreduce, OneRankWritesBackTheWeightedGradientsThroughManyBuckets) {
  Builder b("mlp", 5);
  auto x = b.input("x", {kDynamic, 3});
  x = b.relu(b.dense(x, 5));
  x = b.dense(x, 1);
  b.output(b.sigmoid(x));
  const TrainingGraph tg = make_training_graph(b.build(), 4);
  CompileOptions compile;
  compile.training = true;
  compile.loss = tg.loss;
  auto program = make_backend("reference")->compile(tg.graph, compile);
  program->set_input(tg.image,
                     Tensor::from<float>({4, 3}, {1, 2, 3, -1, 0.5, 2, 0, 1, -2, 3, 1, 1}));
  program->set_input(tg.labels, Tensor::from<float>({4, 1}, {1, 0, 1, 0}));
  program->forward(Mode::training);
  program->backward();
  std::map<std::string, std::vector<float>> before;
  for (const auto& init : tg.graph.initializers) {
    const Tensor g = program->gradient(init.name);  // alive while its data is read
    before[init.name].assign(g.data<float>().begin(), g.data<float>().end());
  }
  // 8-byte buckets: every parameter gets its own bucket.
  GradientAllreduce allreduce(Communicator::world(), tg.graph, 8);
  EXPECT_EQ(allreduce.buckets(), tg.graph.initializers.size());
  EXPECT_EQ(allreduce.parameters(), 3u * 5 + 5 + 5 + 1);
  double extra[2] = {1.5, 2.0};
  allreduce.run(*program, 0.25, extra);
  EXPECT_EQ(extra[0], 1.5);  // one rank: sums of one
  for (const auto& [name, values] : before) {
    const Tensor gradient = program->gradient(name);
    const auto after = gradient.data<float>();
    ASSERT_EQ(after.size(), values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      EXPECT_FLOAT_EQ(after[i], 0.25f * values[i]) << name;
  }
}

}  // namespace
}  // namespace onnxforge::train
