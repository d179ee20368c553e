#include "workloads/gender/attribute_backbone.hpp"

#include <fmt/format.h>

#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "core/files.hpp"
#include "data/loader.hpp"
#include "data/parallel.hpp"
#include "data/rng.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::gender {

namespace fs = std::filesystem;

const std::vector<SourceAttribute>& source_attributes() {
  // What the person shows, never the scene or the camera: labels about the scene (wild or
  // studio, night, blur) teach features that tell the two domains apart, the opposite of what a
  // backbone for the shifted test domain needs (tried: held-out scene accuracy 0.98, gender
  // transfer at chance on faces/). Colours of hair, skin and clothes are learnt within an epoch
  // and make the features find those regions (whose extent and shape differ between genders);
  // thin details (glasses frames, curls, smiles) are learnt slowly at 100 px.
  static const std::vector<SourceAttribute> attributes = {
      {"glasses", "wears glasses or sunglasses"},
      {"sunglasses", "wears sunglasses"},
      {"older", "age in the upper quarter (forehead lines)"},
      {"grey_hair", "grey or white hair"},
      {"black_hair", "black hair"},
      {"brown_hair", "dark, mid or light brown hair"},
      {"blond_hair", "blond hair"},
      {"auburn_hair", "auburn hair"},
      {"light_skin", "skin tone in the lightest third"},
      {"dark_skin", "skin tone in the darkest third"},
      {"bright_clothes", "clothes brighter than mid grey"},
      {"red_clothes", "clothes mostly red"},
      {"green_clothes", "clothes mostly green"},
      {"blue_clothes", "clothes mostly blue"},
      {"smiling", "mouth corners up"},
      {"facing_right", "head turned to the image's right"},
      {"tilted_right", "head tilted clockwise"},
  };
  return attributes;
}

std::vector<float> source_targets(const FaceAttributes& a) {
  const auto bit = [](bool b) { return b ? 1.0f : 0.0f; };
  const auto& c = a.clothes_rgb;
  const auto dominant = [&](int k) {
    return c[k] > c[(k + 1) % 3] + 20 && c[k] > c[(k + 2) % 3] + 20;
  };
  return {bit(a.glasses),
          bit(a.sunglasses),
          bit(a.age >= 0.75),
          bit(a.hair_colour >= 6),
          bit(a.hair_colour == 0),
          bit(a.hair_colour >= 1 && a.hair_colour <= 3),
          bit(a.hair_colour == 4),
          bit(a.hair_colour == 5),
          bit(a.skin_tone < 1.0 / 3),
          bit(a.skin_tone >= 2.0 / 3),
          bit(c[0] + c[1] + c[2] > 375),
          bit(dominant(0)),
          bit(dominant(1)),
          bit(dominant(2)),
          bit(a.smile > 0.35),
          bit(a.yaw > 0),
          bit(a.roll > 0)};
}

namespace {

std::string source_marker(const SourceFacesOptions& options) {
  return fmt::format("onnxforge source faces v3\nseed={}\ncount={}\n", options.seed, options.count);
}

fs::path source_file(const fs::path& out, int i) { return out / fmt::format("{:06d}.jpg", i); }

// Reads back the attributes of a complete set.
std::vector<FaceAttributes> read_source_attributes(const fs::path& csv, int count) {
  auto out = read_attributes_csv(csv);
  if (static_cast<int>(out.size()) != count) {
    fail("{}: {} rows, expected {}", csv.string(), out.size(), count);
  }
  return out;
}

}  // namespace

std::vector<FaceAttributes> generate_source_faces(const SourceFacesOptions& options) {
  const fs::path marker = options.out / "onnxforge-source.txt";
  if (const auto text = try_read_file(marker); text && *text == source_marker(options)) {
    return read_source_attributes(options.out / "attributes.csv", options.count);
  }
  if (fs::exists(options.out) && !fs::is_empty(options.out) && !fs::exists(marker)) {
    fail("{} is not empty and was not written by onnxforge: choose another folder",
         options.out.string());
  }
  fs::remove_all(options.out);
  fs::create_directories(options.out);
  std::vector<FaceAttributes> drawn(static_cast<std::size_t>(options.count));
  std::vector<std::string> errors(drawn.size());
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  tbb::task_arena arena(threads);
  arena.execute([&] {
    data::detail::parallel_for(drawn.size(), 8, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i != end; ++i) {
        // Split 4 of the seed: other people than gender/train (1), gender/test (2), faces/ (3).
        const std::uint64_t seed = data::derive_seed(options.seed, 4, i);
        const SynthDomain domain = i % 2 == 0 ? SynthDomain::studio : SynthDomain::wild;
        const auto bytes =
            render_synthetic_face(seed, static_cast<int>(i / 2 % 2), domain, &drawn[i]);
        const fs::path file = source_file(options.out, static_cast<int>(i));
        std::ofstream out(file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        if (!out) errors[i] = "cannot write " + file.string();
      }
    });
  });
  for (const auto& error : errors) {
    if (!error.empty()) fail("source faces: {}", error);
  }
  std::string csv = attributes_csv_header();
  for (std::size_t i = 0; i < drawn.size(); ++i) {
    csv += attributes_csv_row(source_file(options.out, static_cast<int>(i)).filename().string(),
                              "source", i % 2 == 0 ? SynthDomain::studio : SynthDomain::wild,
                              drawn[i].gender, false, drawn[i]);
  }
  write_file_atomic(options.out / "attributes.csv", csv);
  write_file_atomic(marker, source_marker(options));
  // What the file says (rounded as written), so that a reused set gives the same labels.
  return read_source_attributes(options.out / "attributes.csv", options.count);
}

void check_pretraining(const BackbonePretraining& options, const std::string& prefix) {
  if (!(options.width > 0 && options.width <= 1)) {
    fail("{}width must be in (0, 1], got {}", prefix, options.width);
  }
  if (options.images < 100 || options.epochs < 1 || options.batch_size < 1) {
    fail("{}images must be at least 100 and {}epochs at least 1 (got {} and {})", prefix, prefix,
         options.images, options.epochs);
  }
}

std::string PretrainedBackbone::description() const {
  std::string learnt;
  double sum = 0, majority = 0;
  const auto& attributes = source_attributes();
  for (std::size_t i = 0; i < attributes.size() && i < held_out_accuracy.size(); ++i) {
    learnt += fmt::format("{}{} {:.2f}", i ? ", " : "", attributes[i].name, held_out_accuracy[i]);
    sum += held_out_accuracy[i];
    majority += majority_accuracy[i];
  }
  const double k = static_cast<double>(std::max<std::size_t>(1, held_out_accuracy.size()));
  return fmt::format(
      "a width-{} VGG16{} pretrained by onnxforge ({} epochs, {:.0f} s) on a synthetic source "
      "task: {} yes/no attributes of the person (glasses, age, hair colour, skin tone, clothes, "
      "expression, pose) of {} "
      "synthetic faces of other people than the gender data (half studio, half wild camera and "
      "scenes, with shifts, zoom, brightness and contrast augmentation), none of them drawn from "
      "the gender. Held-out "
      "accuracy per attribute: {} (mean {:.3f}; always answering the majority: {:.3f}). NOT "
      "ImageNet weights: no pretrained VGG16 can be downloaded on this machine; give a real one "
      "with --backbone.",
      options.width, options.batch_norm ? " with batch normalization" : "", options.epochs, seconds,
      held_out_accuracy.size(), options.images, learnt, sum / k, majority / k);
}

namespace {

// VGG16 features, then Dense 128 ReLU and Dense K: the logits of the source attributes.
Graph source_model(const train::TrainConfig& config, const BackbonePretraining& options) {
  ModelOptions vgg;
  vgg.input = config.model.input;
  vgg.width = options.width;
  vgg.seed = options.seed;
  vgg.batch_norm = options.batch_norm;
  Graph features = build_model("vgg16", vgg);
  const Shape& out = features.value(features.outputs.at(0)).shape;
  Builder b("attribute_head", options.seed + 1);
  auto x = b.input("features", Shape(out.begin(), out.end()));
  x = b.flatten(x, "head_flatten");
  x = b.relu(b.dense(x, 128, {.name = "head_dense"}), "head_relu");
  x = b.dense(x, static_cast<std::int64_t>(source_attributes().size()), {.name = "head_logits"});
  b.output(x);
  Graph model = train::attach_head(features, b.build());
  model.name = fmt::format("vgg16{}-w{}-attributes", options.batch_norm ? "bn" : "", options.width);
  return model;
}

}  // namespace

PretrainedBackbone pretrain_attribute_backbone(
    const train::TrainConfig& base, const BackbonePretraining& options, const fs::path& source_dir,
    const std::function<void(const std::string&)>& print) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t k = source_attributes().size();
  SourceFacesOptions source;
  source.out = source_dir;
  source.seed = options.seed;
  source.count = options.images;
  source.threads = base.train.threads;
  const auto drawn = generate_source_faces(source);

  data::ImageFolder folder;
  folder.root = source_dir;
  folder.classes = {"source"};
  for (int i = 0; i < options.images; ++i)
    folder.samples.push_back({source_file(source_dir, i), 0});
  data::LoadOptions load;
  load.height = static_cast<int>(base.model.input.at(1));
  load.width = static_cast<int>(base.model.input.at(2));
  load.threads = base.train.threads;
  load.warn = {};
  const data::ImageCache images = data::load_images(folder, load);
  if (images.size() != drawn.size()) {
    fail("source faces in {}: {} of {} images decoded", source_dir.string(), images.size(),
         drawn.size());
  }
  std::vector<float> targets;
  targets.reserve(drawn.size() * k);
  for (const auto& a : drawn) {
    const auto t = source_targets(a);
    targets.insert(targets.end(), t.begin(), t.end());
  }
  const std::size_t held_out = drawn.size() / 10, trained_on = drawn.size() - held_out;

  // The model, its logits' binary cross-entropy against the K targets, on a fixed batch.
  const int batch = options.batch_size;
  Graph model = source_model(base, options);
  Graph graph = with_batch(model, batch);
  const std::string image = graph.inputs.at(0).name, logits = graph.outputs.at(0);
  graph.inputs.push_back({"labels", DType::f32, {batch, static_cast<std::int64_t>(k)}});
  graph.nodes.push_back({"loss",
                         std::string(op_name(OpId::BinaryCrossEntropyWithLogits)),
                         {logits, "labels"},
                         {"loss"},
                         {}});
  graph.validate();
  CompileOptions compile;
  compile.training = true;
  compile.loss = "loss";
  compile.threads = base.train.threads;
  compile.seed = options.seed;
  // Plain VGG16 (no batch norm) starts on a plateau that bf16 rounding makes longer: fp32 unless
  // bf16 was asked for explicitly.
  compile.precision = base.train.dtype == "bf16" ? Precision::bf16 : Precision::f32;
  const auto program = make_backend(base.train.backend)->compile(graph, compile);

  OptimizerSpec adam;
  adam.kind = OptimizerSpec::Kind::adam;
  adam.learning_rate = options.learning_rate;
  data::BatchOptions batches;
  batches.batch_size = batch;
  batches.seed = options.seed;
  batches.preprocess = data::Preprocess::unit();
  // Framing and exposure vary; no flips or rotations (they would change the pose labels).
  batches.augment.shift_fraction = 0.08;
  batches.augment.zoom = 0.1;
  batches.augment.brightness = 0.2;
  batches.augment.contrast = 0.2;
  Tensor x(DType::f32, graph.value(image).shape);
  Tensor y(DType::f32, {batch, static_cast<std::int64_t>(k)});
  // Only the first `trained_on` images train: a stream over their indices.
  std::vector<std::size_t> train_indices(trained_on);
  for (std::size_t i = 0; i < trained_on; ++i) train_indices[i] = i;
  const std::size_t steps_per_epoch = trained_on / static_cast<std::size_t>(batch);
  data::Batch filled;
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    const auto order = data::epoch_order(trained_on, options.seed, epoch, true);
    double loss_sum = 0;
    for (std::size_t step = 0; step < steps_per_epoch; ++step) {
      const std::span<const std::size_t> rows(order.data() + step * batch,
                                              static_cast<std::size_t>(batch));
      data::fill_batch(images, rows, batches, epoch, filled);
      std::copy(filled.images.begin(), filled.images.end(), x.data<float>().begin());
      auto yd = y.data<float>();
      for (int r = 0; r < batch; ++r) {
        std::copy_n(targets.begin() + static_cast<std::ptrdiff_t>(rows[r] * k), k,
                    yd.begin() + static_cast<std::ptrdiff_t>(r * k));
      }
      program->set_input(image, x);
      program->set_input("labels", y);
      program->forward(Mode::training);
      loss_sum += program->fetch("loss").value(0);
      program->backward();
      program->update(adam);
      if ((step + 1) % 50 == 0 || step + 1 == steps_per_epoch) {
        print(fmt::format("      pretraining epoch {}/{} step {}/{}: loss {:.4f}", epoch + 1,
                          options.epochs, step + 1, steps_per_epoch,
                          loss_sum / static_cast<double>(step + 1)));
      }
    }
  }

  // Held-out accuracy per attribute (the last 10%, never trained on), in inference mode.
  PretrainedBackbone result;
  result.options = options;
  std::vector<double> correct(k, 0), positives(k, 0);
  data::BatchOptions in_order = batches;
  in_order.mode = data::Mode::evaluate;
  for (std::size_t first = trained_on; first < drawn.size(); first += batch) {
    const std::size_t n = std::min<std::size_t>(batch, drawn.size() - first);
    std::vector<std::size_t> rows(n);
    for (std::size_t r = 0; r < n; ++r) rows[r] = first + r;
    data::fill_batch(images, rows, in_order, 0, filled);
    auto xd = x.data<float>();
    std::fill(xd.begin(), xd.end(), 0.0f);
    std::copy(filled.images.begin(), filled.images.end(), xd.begin());
    program->set_input(image, x);
    program->forward(Mode::inference);
    const Tensor out = program->fetch(logits);
    for (std::size_t r = 0; r < n; ++r) {
      for (std::size_t j = 0; j < k; ++j) {
        const float target = targets[(first + r) * k + j];
        const bool predicted = out.value(static_cast<std::int64_t>(r * k + j)) > 0;
        correct[j] += predicted == (target > 0.5f) ? 1 : 0;
        positives[j] += target;
      }
    }
  }
  for (std::size_t j = 0; j < k; ++j) {
    const double n = static_cast<double>(std::max<std::size_t>(1, held_out));
    result.held_out_accuracy.push_back(correct[j] / n);
    result.majority_accuracy.push_back(std::max(positives[j], n - positives[j]) / n);
  }
  train::store_parameters(model, *program);
  result.model = std::move(model);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

BackboneFile default_backbone(
    const fs::path& dir, const train::TrainConfig& base, const BackbonePretraining& options,
    const std::function<void(const std::string&)>& print,
    const std::function<void(const Graph&, const fs::path&)>& export_onnx) {
  BackboneFile file;
  file.onnx = dir / fmt::format("vgg16{}-w{}-attributes-{}x{}.onnx", options.batch_norm ? "bn" : "",
                                options.width, options.images, options.epochs);
  const fs::path note = fs::path(file.onnx).replace_extension(".txt");
  if (const auto text = try_read_file(note); text && fs::exists(file.onnx)) {
    file.description = *text;
    file.reused = true;
    return file;
  }
  const auto pretrained = pretrain_attribute_backbone(base, options, dir / "source", print);
  fs::create_directories(dir);
  export_onnx(pretrained.model, file.onnx);
  file.description = pretrained.description();
  // Written last: a backbone without its description is pretrained again.
  write_file_atomic(note, file.description);
  return file;
}

}  // namespace onnxforge::gender
