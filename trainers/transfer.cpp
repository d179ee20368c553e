#include "trainers/transfer.hpp"

#include <fmt/format.h>

#include <chrono>
#include <set>

#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "graph/passes.hpp"
#include "graph/summary.hpp"
#include "trainers/distributed.hpp"

namespace onnxforge::train {

namespace fs = std::filesystem;

Graph prepare_backbone(const Graph& backbone, const std::string& cut_at, const Shape& chw) {
  if (backbone.inputs.size() != 1) {
    fail("backbone '{}' must have one image input, it has {}", backbone.name,
         backbone.inputs.size());
  }
  Graph g = absorb_input_transpose(cut_at.empty() ? backbone : onnxforge::cut_at(backbone, cut_at));
  g = with_input_shape(std::move(g), g.inputs[0].name, {kDynamic, chw.at(0), chw.at(1), chw.at(2)});
  for (auto& init : g.initializers) init.trainable = false;
  return g;
}

Graph make_head(const Shape& feature_shape, const TransferConfig& transfer, std::uint64_t seed) {
  Builder b("head", seed);
  Shape input{kDynamic};
  input.insert(input.end(), feature_shape.begin(), feature_shape.end());
  auto x = b.input("features", input);
  if (input.size() != 2) x = b.flatten(x, "head_flatten");
  for (std::size_t i = 0; i < transfer.head_units.size(); ++i) {
    // (fmt rather than string concatenation: GCC 12 warns falsely on the latter, -Wrestrict.)
    const std::string suffix = i == 0 ? std::string() : fmt::format("_{}", i);
    x = b.dense(x, transfer.head_units[i], {.name = fmt::format("head_dense{}", suffix)});
    if (transfer.head_batch_norm) {
      x = b.batch_norm(x, {.name = fmt::format("head_batch_norm{}", suffix)});
    }
    const std::string act = fmt::format("head_{}{}", transfer.head_activation, suffix);
    if (transfer.head_activation == "relu") x = b.relu(x, act);
    if (transfer.head_activation == "tanh") x = b.tanh(x, act);
    if (transfer.head_activation == "sigmoid") x = b.sigmoid(x, act);
    if (transfer.head_activation == "leaky_relu") x = b.leaky_relu(x, 0.3, act);
    if (transfer.head_dropout > 0) {
      x = b.dropout(x, transfer.head_dropout, fmt::format("head_dropout{}", suffix));
    }
  }
  x = b.sigmoid(b.dense(x, 1, {.name = "head_output"}), "head_probability");
  b.output(x);
  return b.build();
}

Graph attach_head(const Graph& backbone, const Graph& head) {
  if (backbone.outputs.size() != 1 || head.inputs.size() != 1) {
    fail("attach_head: the backbone needs one output and the head one input");
  }
  const std::string features = backbone.outputs[0];
  const std::string head_input = head.inputs[0].name;
  Graph g = backbone;
  g.name = backbone.name + "+head";
  for (const auto& init : head.initializers) g.initializers.push_back(init);
  for (Node node : head.nodes) {
    for (auto& in : node.inputs) {
      if (in == head_input) in = features;
    }
    g.nodes.push_back(std::move(node));
  }
  g.outputs = head.outputs;
  g.validate();
  return g;
}

void store_parameters(Graph& graph, const Program& program) {
  for (auto& init : graph.initializers) {
    if (program.graph().find_initializer(init.name)) init.value = program.parameter(init.name);
  }
}

namespace {

// Runs the frozen backbone over every image of `source` (inference, batch `batch`). Under MPI
// each rank runs its slice of the images and the rows are then exchanged (allgather).
std::unique_ptr<FeatureCache> extract_features(Program& backbone, const Graph& graph,
                                               BatchSource& source, std::size_t memory_limit,
                                               const fs::path& spill_dir) {
  Communicator& comm = Communicator::world();
  const std::string input = graph.inputs[0].name;
  const std::string output = graph.outputs[0];
  const Shape out_shape = graph.value(output).shape;
  const Shape sample(out_shape.begin() + 1, out_shape.end());
  auto cache = std::make_unique<FeatureCache>(sample, source.size(), memory_limit, spill_dir);
  cache->labels = source.labels();
  cache->paths = source.paths();
  Tensor images(DType::f32, graph.value(input).shape);
  Tensor labels(DType::f32, {out_shape[0], 1});
  source.start_epoch(0);
  std::size_t row = shard_range(source.size(), comm.shard()).begin;
  for (int n; (n = source.next(images, labels)) > 0;) {
    backbone.set_input(input, images);
    backbone.forward(Mode::inference);
    const Tensor features = backbone.fetch(output);
    const auto values = features.data<float>();
    std::copy(values.begin(),
              values.begin() + static_cast<std::ptrdiff_t>(n * cache->sample_size()),
              cache->sample(row));
    row += static_cast<std::size_t>(n);
  }
  comm.allgather_rows(cache->sample(0), cache->count(), cache->sample_size(),
                      "the exchange of backbone features");
  return cache;
}

}  // namespace

int unfreeze(Graph& model, const Graph& backbone, const TransferConfig& transfer) {
  // Batch norms stay frozen (in inference mode, with their running statistics) in both forms.
  std::set<std::string> batch_norm;
  for (const auto& node : model.nodes) {
    if (node.is(OpId::BatchNormalization))
      batch_norm.insert(node.inputs.begin() + 1, node.inputs.end());
  }
  std::set<std::string> names;
  if (transfer.unfreeze_last > 0) {
    std::vector<const Node*> convs;
    for (const auto& node : backbone.nodes) {
      if (node.is(OpId::Conv)) convs.push_back(&node);
    }
    if (convs.size() < static_cast<std::size_t>(transfer.unfreeze_last)) {
      fail("transfer.unfreeze_last = {}: the backbone has {} convolutions", transfer.unfreeze_last,
           convs.size());
    }
    for (auto it = convs.end() - transfer.unfreeze_last; it != convs.end(); ++it) {
      for (std::size_t i = 1; i < (*it)->inputs.size(); ++i) names.insert((*it)->inputs[i]);
    }
  } else {
    for (const auto& init : model.initializers) {
      if (init.name.rfind(transfer.unfreeze, 0) == 0) names.insert(init.name);
    }
  }
  int unfrozen = 0;
  for (auto& init : model.initializers) {
    if (names.count(init.name) && !batch_norm.count(init.name) && is_floating(init.value.dtype()) &&
        init.name.find("moving_") == std::string::npos) {
      init.trainable = true;
      ++unfrozen;
    }
  }
  if (unfrozen == 0) {
    fail("transfer.unfreeze: no parameter name starts with '{}'", transfer.unfreeze);
  }
  return unfrozen;
}

TransferResult train_transfer(const TrainConfig& config, const Graph& backbone,
                              const TrainData& data, const TrainOptions& options) {
  Communicator& comm = Communicator::world();
  const auto print = !comm.root()    ? [](const std::string&) {}
                     : options.print ? options.print
                                     : [](const std::string& line) {
                                         std::fputs((line + "\n").c_str(), stdout);
                                         std::fflush(stdout);
                                       };
  const Shape& out = backbone.value(backbone.outputs.at(0)).shape;
  const Shape feature_shape(out.begin() + 1, out.end());
  const Graph head = make_head(feature_shape, config.transfer, config.train.seed);
  TransferResult result;
  result.model = attach_head(backbone, head);
  if (comm.root()) fs::create_directories(options.run_dir);

  bool backbone_trains = false;
  for (const auto& init : backbone.initializers)
    backbone_trains = backbone_trains || init.trainable;
  result.cached = config.transfer.cache_features && !backbone_trains && !config.augment.any();

  TrainOptions head_options = options;
  head_options.summary = summary(result.model);
  if (result.cached) {
    const auto start = std::chrono::steady_clock::now();
    CompileOptions compile;
    compile.threads = config.train.threads;
    compile.precision = parse_precision(config.train.dtype);
    if (comm.distributed() && compile.threads == 0) compile.threads = default_rank_threads();
    const Graph batched = with_batch(backbone, local_batch_size(config));
    // Under MPI every rank extracts its shard's features with rank 0's per-layer precisions.
    auto program =
        compile_alike(comm, *make_backend(config.train.backend), batched, compile, "the backbone");
    head_options.feature_layers = program->layer_choices();
    const std::size_t limit = static_cast<std::size_t>(config.transfer.cache_memory_mb) << 20;
    const fs::path spill = options.run_dir / "feature_cache";
    auto features_of = [&](const data::ImageCache& split) {
      return extract_features(*program, batched, *shard_in_order(config, split), limit, spill);
    };
    auto train_cache = features_of(data.train);
    auto val_cache = features_of(data.val);
    std::unique_ptr<FeatureCache> test_cache;
    if (data.test) test_cache = features_of(*data.test);
    result.feature_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    print(fmt::format(
        "Backbone features of {} images computed once in {:.1f} s ({} floats each{})",
        train_cache->count() + val_cache->count() + (test_cache ? test_cache->count() : 0),
        result.feature_seconds, train_cache->sample_size(),
        train_cache->spilled() ? ", spilled to disk" : ""));
    TrainSources features;
    features.classes = data.train.classes;
    if (comm.distributed()) {
      const ShardedOptions train{.shard = comm.shard(),
                                 .batch_size = config.train.batch_size,
                                 .training = true,
                                 .seed = config.train.seed};
      const ShardedOptions in_order{.shard = comm.shard(),
                                    .batch_size = local_batch_size(config),
                                    .training = false,
                                    .seed = config.train.seed};
      features.train = sharded_feature_batches(*train_cache, train);
      features.val = sharded_feature_batches(*val_cache, in_order);
      if (test_cache) features.test = sharded_feature_batches(*test_cache, in_order);
    } else {
      features.train = feature_batches(*train_cache, batch_options(config, data::Mode::train));
      const data::BatchOptions in_order = batch_options(config, data::Mode::evaluate);
      features.val = feature_batches(*val_cache, in_order);
      if (test_cache) features.test = feature_batches(*test_cache, in_order);
    }
    result.training = train_model(config, head, features, head_options);
  } else {
    TrainSources images = image_sources(config, data);
    result.training = train_model(config, result.model, images, head_options);
  }
  store_parameters(result.model, *result.training.program);

  if (config.transfer.fine_tune_epochs > 0) {
    Graph tuned = result.model;
    const int unfrozen = unfreeze(tuned, backbone, config.transfer);
    TrainConfig phase2 = config;
    phase2.train.epochs = config.transfer.fine_tune_epochs;
    phase2.optimizer.learning_rate = config.transfer.fine_tune_lr;
    phase2.name = fmt::format("{}-fine-tune", config.name);
    TrainOptions phase2_options = options;
    phase2_options.run_dir = final_run_dir(config, options.run_dir);
    phase2_options.resume = false;
    print(
        fmt::format("Fine-tuning {} parameters ({}) at lr {}; batch norms stay frozen, in "
                    "inference mode",
                    unfrozen,
                    config.transfer.unfreeze_last > 0
                        ? fmt::format("the last {} convolutions", config.transfer.unfreeze_last)
                        : config.transfer.unfreeze + "*",
                    phase2.optimizer.learning_rate));
    result.training = train_model(phase2, tuned, data, phase2_options);
    store_parameters(tuned, *result.training.program);
    result.model = std::move(tuned);
  }
  return result;
}

std::filesystem::path final_run_dir(const TrainConfig& config, const std::filesystem::path& run) {
  const bool fine_tuned = !config.transfer.backbone.empty() && config.transfer.fine_tune_epochs > 0;
  return fine_tuned ? run / "fine_tune" : run;
}

}  // namespace onnxforge::train
