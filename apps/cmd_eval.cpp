// onnxforge eval MODEL --data DIR [--label-map ...] [--threshold T] --out DIR
// onnxforge predict MODEL IMAGES_DIR --out predictions.csv
// Score images with a trained model (an .onnx file, e.g. RUN/model.onnx) and write the metrics
// of a labelled folder, or the predictions for an unlabelled one.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "apps/backbone.hpp"
#include "apps/command.hpp"
#include "backends/backend.hpp"
#include "core/error.hpp"
#include "data/loader.hpp"
#include "eval/evaluate.hpp"
#include "importers/onnx_import.hpp"

namespace onnxforge::cli {
namespace {

namespace fs = std::filesystem;

struct ScoreArgs {
  std::string model;
  std::string data;
  std::string label_map;
  std::string out;
  std::string backend = "onednn";
  std::string preprocess = "auto";
  std::string positive;  // empty: label 1
  double threshold = 0.5;
  int batch = 32;
  int threads = 0;
};

// The model, checked to take one N,C,H,W image input and give one output.
Graph load_scoring_model(const ScoreArgs& args) {
  Graph model = load_model(args.model);
  if (model.inputs.size() != 1 || model.outputs.size() != 1) {
    fail("{}: a model with one image input and one output is needed", args.model);
  }
  if (model.inputs[0].shape.size() != 4) fail("{}: the input must be N,C,H,W", args.model);
  return model;
}

// The probability output of `model` for every image of `images`, in cache order.
std::vector<double> score_images(const ScoreArgs& args, const Graph& model,
                                 const data::ImageCache& images) {
  const Graph graph = with_batch(model, args.batch);
  const std::string input = graph.inputs[0].name;
  const std::string output = graph.outputs[0];
  if (element_count(graph.value(output).shape) != args.batch) {
    fail("{}: output '{}' must be one probability per image, got shape {}", args.model, output,
         to_string(graph.value(output).shape));
  }
  CompileOptions compile;
  compile.threads = args.threads;
  auto program = make_backend(args.backend)->compile(graph, compile);
  data::BatchOptions options;
  options.batch_size = args.batch;
  options.mode = data::Mode::evaluate;
  options.preprocess = data::Preprocess::parse(preprocessing_of(model, args.preprocess));
  data::BatchStream stream(images, options);
  stream.start_epoch(0);
  Tensor tensor(DType::f32, graph.value(input).shape);
  std::vector<double> scores;
  data::Batch batch;
  while (stream.next(batch)) {
    auto dst = tensor.data<float>();
    std::fill(dst.begin(), dst.end(), 0.0f);
    std::memcpy(dst.data(), batch.images.data(), batch.images.size() * sizeof(float));
    program->set_input(input, tensor);
    program->forward(Mode::inference);
    const Tensor probability = program->fetch(output);
    for (int i = 0; i < batch.n; ++i) scores.push_back(probability.value(i));
  }
  return scores;
}

// Images are resized to the model's input size.
data::LoadOptions load_options(const Graph& model) {
  const Shape& shape = model.inputs.at(0).shape;
  data::LoadOptions load;
  load.height = static_cast<int>(shape[2]);
  load.width = static_cast<int>(shape[3]);
  return load;
}

void add_common(CLI::App& sub, ScoreArgs& args) {
  sub.add_option("model", args.model, "the model (.onnx, e.g. RUN/model.onnx)")->required();
  sub.add_option("--preprocess", args.preprocess,
                 "auto (the model's own, from its metadata; else unit), unit ([0,1] RGB), "
                 "imagenet, caffe, tf or explicit 'order=rgb scale=1/255 mean=M,M,M std=S,S,S'")
      ->capture_default_str();
  sub.add_option("--threshold", args.threshold, "a score >= threshold predicts the positive class")
      ->capture_default_str();
  sub.add_option("--batch", args.batch, "images per forward pass")->capture_default_str();
  add_compute_options(sub, args.backend, args.threads);
}

void run_eval(const ScoreArgs& args) {
  data::ScanOptions scan;
  if (!args.label_map.empty()) scan.label_map = data::parse_label_map(args.label_map);
  const Graph model = load_scoring_model(args);
  const auto images =
      data::load_images(data::scan_image_folder(args.data, scan), load_options(model));
  const auto scores = score_images(args, model, images);
  eval::MetricsOptions metrics;
  metrics.threshold = args.threshold;
  metrics.class_names = {images.classes.at(0), images.classes.at(1)};
  metrics.positive_label = eval::positive_label_of(args.positive, images.classes, "--positive");
  std::vector<eval::Prediction> predictions;
  for (std::size_t i = 0; i < images.size(); ++i) {
    predictions.push_back({images.paths[i].string(), images.labels[i], scores[i]});
  }
  eval::SplitOptions split;
  split.split_name = fs::path(args.data).filename().string();
  split.model_name = fs::path(args.model).stem().string();
  split.plots_dir = fs::path(args.out) / "plots";
  const auto out = eval::evaluate_split(predictions, metrics, args.out, split);
  for (const auto& w : out.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
  std::printf("%zu images: accuracy %.4f, AUC %s; metrics in %s\n", images.size(),
              out.metrics.accuracy.value_or(NAN),
              out.metrics.auc ? fmt::format("{:.4f}", *out.metrics.auc).c_str() : "n/a",
              (fs::path(args.out) / "metrics.json").string().c_str());
}

void run_predict(const ScoreArgs& args) {
  std::error_code ec;
  if (!fs::is_directory(args.data, ec)) fail("{}: not a folder of images", args.data);
  data::ImageFolder folder;
  folder.root = args.data;
  folder.classes = {"unlabelled"};
  for (auto it = fs::recursive_directory_iterator(
           args.data, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && data::has_image_extension(it->path())) {
      folder.samples.push_back({it->path(), 0});
    }
  }
  std::sort(folder.samples.begin(), folder.samples.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  if (folder.samples.empty()) fail("{}: no .jpg/.jpeg/.png/.bmp image found", args.data);
  const Graph model = load_scoring_model(args);
  const auto images = data::load_images(folder, load_options(model));
  const auto scores = score_images(args, model, images);
  std::vector<std::string> paths;
  for (const auto& p : images.paths) paths.push_back(p.string());
  eval::MetricsOptions metrics;
  metrics.threshold = args.threshold;
  eval::write_unlabelled_predictions_csv(args.out, paths, scores, metrics);
  std::printf("%zu predictions written to %s\n", scores.size(), args.out.c_str());
}

const Registration eval_registration{
    50, "eval",
    "Score a labelled image folder (one folder per class) with a trained model and write "
    "predictions.csv, metrics.json (accuracy, sensitivity, specificity, precision, F1, MCC, AUC, "
    "confusion matrix, bootstrap intervals), ROC and confusion-matrix figures into --out.",
    [](CLI::App& sub) {
      auto args = std::make_shared<ScoreArgs>();
      add_common(sub, *args);
      sub.add_option("--data", args->data, "labelled image folder")->required();
      sub.add_option("--label-map", args->label_map,
                     "folder=class pairs, e.g. man=Male,woman=Female");
      sub.add_option("--positive", args->positive,
                     "the positive class: a class name, or 0/1 for the first or second class in "
                     "label order (default: the second)");
      sub.add_option("--out", args->out, "output folder")->required();
      sub.callback([args] { run_eval(*args); });
    }};

const Registration predict_registration{
    51, "predict",
    "Score unlabelled images (a folder, searched recursively) with a trained model and write "
    "path,score,class per image (score = the model's probability of its positive class, label 1).",
    [](CLI::App& sub) {
      auto args = std::make_shared<ScoreArgs>();
      add_common(sub, *args);
      sub.add_option("images", args->data, "folder of images")->required();
      sub.add_option("--out", args->out, "the predictions CSV to write")->required();
      sub.callback([args] { run_predict(*args); });
    }};

}  // namespace
}  // namespace onnxforge::cli
