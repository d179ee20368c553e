#include "trainers/explain.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "core/files.hpp"
#include "eval/io.hpp"
#include "eval/plots.hpp"
#include "eval/report.hpp"
#include "graph/passes.hpp"

namespace onnxforge::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLossName = "gradcam_logit_sum";

// The one node that reads `value` (and it is no graph output), or null.
const Node* sole_consumer(const Graph& graph, const std::string& value) {
  if (std::count(graph.outputs.begin(), graph.outputs.end(), value) != 0) return nullptr;
  const Node* found = nullptr;
  for (const auto& node : graph.nodes) {
    const auto reads = std::count(node.inputs.begin(), node.inputs.end(), value);
    if (reads == 0) continue;
    if (found || reads > 1) return nullptr;
    found = &node;
  }
  return found;
}

Tensor as_f32(const Tensor& t) { return t.dtype() == DType::f32 ? t : t.to(DType::f32); }

}  // namespace

CamSplit split_for_cam(const Graph& model_in) {
  if (model_in.inputs.size() != 1 || model_in.outputs.size() != 1) {
    fail("explain: model '{}' must have one image input and one output", model_in.name);
  }
  // Dropout goes (inference behaviour in the training-mode forward backward needs).
  const Graph model = remove_identities(model_in, /*dropout=*/true);
  const Node* head = model.producer(model.outputs[0]);
  if (!head || !head->is(OpId::Sigmoid)) {
    fail(
        "explain: model '{}' must end in a Sigmoid (its input is the logit); its output '{}' is {}",
        model.name, model.outputs[0], head ? head->op : "an input");
  }
  CamSplit split;
  split.image = model.inputs[0].name;
  split.logit = head->inputs.at(0);
  Graph to_logit = model;
  to_logit.outputs = {split.logit};
  to_logit = prune(std::move(to_logit));
  // Frozen: no parameter gradients, and a BatchNormalization uses its running statistics.
  for (auto& init : to_logit.initializers) init.trainable = false;

  const Node* conv = nullptr;
  for (const auto& node : to_logit.nodes) {
    if (node.is(OpId::Conv)) conv = &node;
  }
  if (!conv) {
    split.activation = split.image;
    split.suffix = std::move(to_logit);
    return split;
  }
  split.conv = conv->name;
  std::string a = conv->outputs.at(0);
  const Node* next = sole_consumer(to_logit, a);
  if (next && next->is(OpId::BatchNormalization) && next->input(0) == a) {
    const Node* after = sole_consumer(to_logit, next->outputs.at(0));
    if (after && after->is(OpId::Relu)) a = after->outputs.at(0);
  } else if (next && next->is(OpId::Relu)) {
    a = next->outputs.at(0);
  }
  split.activation = a;
  split.prefix = cut_at(to_logit, to_logit.producer(a)->name);
  split.suffix = cut_from(to_logit, a);
  return split;
}

GradCam::GradCam(const Graph& model, const GradCamOptions& options)
    : split_(split_for_cam(model)), options_(options) {
  if (options_.batch < 1) fail("explain: batch {} must be at least 1", options_.batch);
  const auto backend = make_backend(options_.backend);
  if (!saliency()) {
    CompileOptions inference;
    inference.threads = options_.threads;
    inference.precision = options_.precision;
    prefix_ = backend->compile(with_batch(split_.prefix, options_.batch), inference);
  }
  Graph suffix = with_batch(split_.suffix, options_.batch);
  suffix_reads_image_ = !saliency() && suffix.is_input(split_.image);
  // A scalar loss whose gradient with respect to each row's logit is 1.
  suffix.nodes.push_back(Node{kLossName,
                              std::string(op_name(OpId::ReduceSum)),
                              {split_.logit},
                              {kLossName},
                              {{"keepdims", std::int64_t{0}}}});
  suffix.validate();
  CompileOptions training;
  training.training = true;
  training.loss = kLossName;
  training.input_gradients = true;
  training.threads = options_.threads;
  training.precision = Precision::f32;
  suffix_ = backend->compile(suffix, training);
}

GradCam::~GradCam() = default;

CamMaps GradCam::compute(const Tensor& images, int count) {
  if (count < 0 || count > options_.batch) {
    fail("explain: {} images for a batch of {}", count, options_.batch);
  }
  Tensor a;
  if (saliency()) {
    a = images;
  } else {
    prefix_->set_input(split_.image, images);
    prefix_->forward(Mode::inference);
    a = prefix_->fetch(split_.activation);
  }
  suffix_->set_input(split_.activation, a);
  if (suffix_reads_image_) suffix_->set_input(split_.image, images);
  suffix_->forward(Mode::training);
  const Tensor logits = as_f32(suffix_->fetch(split_.logit));
  suffix_->backward();
  last_gradient_ = as_f32(suffix_->gradient(split_.activation));
  last_activation_ = as_f32(a);
  const Tensor& grad = last_gradient_;
  const Tensor& act = last_activation_;
  const Shape& shape = grad.shape();  // N, C, h, w
  if (shape.size() != 4) {
    fail("explain: '{}' has shape {}; maps need N, C, H, W", split_.activation, to_string(shape));
  }
  const auto channels = static_cast<std::size_t>(shape[1]);
  const auto h = static_cast<std::size_t>(shape[2]), w = static_cast<std::size_t>(shape[3]);
  const std::size_t plane = h * w;
  CamMaps maps;
  maps.count = count;
  maps.height = static_cast<int>(h);
  maps.width = static_cast<int>(w);
  maps.toward_positive.assign(static_cast<std::size_t>(count) * plane, 0.0f);
  maps.toward_negative.assign(static_cast<std::size_t>(count) * plane, 0.0f);
  const auto g = grad.data<float>();
  const auto x = act.data<float>();
  std::vector<double> m(plane);
  for (int i = 0; i < count; ++i) {
    maps.logits.push_back(logits.data<float>()[static_cast<std::size_t>(i)]);
    const std::size_t base = static_cast<std::size_t>(i) * channels * plane;
    float* pos = maps.toward_positive.data() + static_cast<std::size_t>(i) * plane;
    float* neg = maps.toward_negative.data() + static_cast<std::size_t>(i) * plane;
    if (saliency()) {
      // max over channels of |dLogit/dimage|: the same evidence for both labels.
      for (std::size_t c = 0; c < channels; ++c) {
        for (std::size_t p = 0; p < plane; ++p) {
          pos[p] = std::max(pos[p], std::abs(g[base + c * plane + p]));
        }
      }
      std::copy(pos, pos + plane, neg);
      continue;
    }
    std::fill(m.begin(), m.end(), 0.0);
    for (std::size_t c = 0; c < channels; ++c) {
      const float* gc = g.data() + base + c * plane;
      const float* ac = x.data() + base + c * plane;
      const double alpha = std::accumulate(gc, gc + plane, 0.0) / static_cast<double>(plane);
      for (std::size_t p = 0; p < plane; ++p) m[p] += alpha * ac[p];
    }
    for (std::size_t p = 0; p < plane; ++p) {
      pos[p] = static_cast<float>(std::max(m[p], 0.0));
      neg[p] = static_cast<float>(std::max(-m[p], 0.0));
    }
  }
  return maps;
}

std::string GradCam::method() const {
  const Shape& a = split_.suffix.value(split_.activation).shape;
  const Shape& in = saliency() ? split_.suffix.value(split_.image).shape
                               : split_.prefix.value(split_.image).shape;
  if (saliency()) {
    return fmt::format(
        "Input-gradient saliency (the model has no convolution): the maximum over channels of "
        "|d logit / d input| at '{}' ({}x{}), from the {} backend's backward pass, scaled to "
        "[0, 1] per image.",
        split_.image, in.at(2), in.at(3), options_.backend);
  }
  const Node* producer = split_.prefix.producer(split_.activation);
  const bool relu = producer && producer->is(OpId::Relu);
  return fmt::format(
      "Grad-CAM at '{}' ({} channels of {}x{}, the output of the last convolution '{}'{}): each "
      "channel weighted by the mean over its positions of d logit / d activation from the {} "
      "backend's backward pass (toward label 0: of -logit), ReLU of the weighted sum, upsampled "
      "bilinearly to {}x{} and scaled to [0, 1] per image.",
      split_.activation, a.at(1), a.at(2), a.at(3), split_.conv, relu ? " after its ReLU" : "",
      options_.backend, in.at(2), in.at(3));
}

std::vector<float> upsample_normalised(const float* map, int height, int width, int out_height,
                                       int out_width) {
  std::vector<float> out(static_cast<std::size_t>(out_height) * out_width);
  // One axis: the two source indices and the weight of the second (half-pixel centres).
  auto axis = [](int in, int size, int i, int& lo, int& hi, double& t) {
    double src = (i + 0.5) * in / size - 0.5;
    src = std::clamp(src, 0.0, static_cast<double>(in - 1));
    lo = static_cast<int>(std::floor(src));
    hi = std::min(lo + 1, in - 1);
    t = src - lo;
  };
  float peak = 0.0f;
  for (int y = 0; y < out_height; ++y) {
    int y0, y1;
    double ty;
    axis(height, out_height, y, y0, y1, ty);
    for (int x = 0; x < out_width; ++x) {
      int x0, x1;
      double tx;
      axis(width, out_width, x, x0, x1, tx);
      const auto at = [&](int yy, int xx) {
        return static_cast<double>(map[static_cast<std::size_t>(yy) * width + xx]);
      };
      const double v = (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x1)) +
                       ty * ((1 - tx) * at(y1, x0) + tx * at(y1, x1));
      out[static_cast<std::size_t>(y) * out_width + x] = static_cast<float>(v);
      peak = std::max(peak, static_cast<float>(v));
    }
  }
  if (peak > 0.0f) {
    for (auto& v : out) v /= peak;
  } else {
    std::fill(out.begin(), out.end(), 0.0f);
  }
  return out;
}

std::array<std::uint8_t, 3> jet(double value) {
  const double v = std::clamp(value, 0.0, 1.0);
  auto channel = [&](double centre) {
    const double c = std::clamp(1.5 - std::abs(4.0 * v - centre), 0.0, 1.0);
    return static_cast<std::uint8_t>(std::lround(255.0 * c));
  };
  return {channel(3.0), channel(2.0), channel(1.0)};
}

// ---- explain_model -----------------------------------------------------------------------------

namespace {

constexpr double kOverlayAlpha = 0.45;  // the colour map's share in an overlay

struct SplitInput {
  std::string name;   // "val" | "test"
  std::string title;  // "validation" | "test"
  std::string Title;  // "Validation" | "Test"
  const data::ImageCache* images = nullptr;
  std::vector<eval::Prediction> predictions;
};

// `count` of `from`, evenly spaced from the first to the last (all when there are fewer).
std::vector<std::size_t> evenly_spaced(const std::vector<std::size_t>& from, std::size_t count) {
  if (from.size() <= count) return from;
  std::vector<std::size_t> out;
  for (std::size_t j = 0; j < count; ++j) {
    const std::size_t at = count == 1 ? 0 : (j * (from.size() - 1) + (count - 1) / 2) / (count - 1);
    out.push_back(from[at]);
  }
  return out;
}

eval::ImagePanel picture(const data::ImageCache& cache, std::size_t index, std::string caption) {
  eval::ImagePanel p{std::move(caption), cache.height, cache.width, {}};
  p.rgb.assign(cache.image(index), cache.image(index) + cache.image_bytes());
  return p;
}

eval::ImagePanel blank(int height, int width, std::string caption = "") {
  return {std::move(caption), height, width,
          std::vector<std::uint8_t>(static_cast<std::size_t>(height) * width * 3, 255)};
}

// `rgb` (HWC) blended with the colour map of `map` (height x width, [0, 1]); no image: the
// colour map alone.
eval::ImagePanel overlay(const std::uint8_t* rgb, const std::vector<float>& map, int height,
                         int width, std::string caption) {
  eval::ImagePanel p{std::move(caption), height, width, {}};
  p.rgb.resize(static_cast<std::size_t>(height) * width * 3);
  for (std::size_t i = 0; i < map.size(); ++i) {
    const auto colour = jet(map[i]);
    for (int c = 0; c < 3; ++c) {
      const double base = rgb ? rgb[i * 3 + c] : colour[c];
      p.rgb[i * 3 + c] = static_cast<std::uint8_t>(
          std::lround((1 - kOverlayAlpha) * base + kOverlayAlpha * colour[c]));
    }
  }
  return p;
}

std::string probability(double p) { return fmt::format("{:.2f}", p); }

}  // namespace

ExplainResult explain_model(const TrainConfig& config_in, const Graph& model, const TrainData& data,
                            const fs::path& run_dir, const ExplainOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ExplainResult result;
  TrainConfig config = config_in;
  if (config.data.preprocess == "auto") {
    const auto it = model.metadata.find("onnxforge.preprocess");
    if (it == model.metadata.end()) {
      fail("explain: data.preprocess is 'auto' and model '{}' records no onnxforge.preprocess",
           model.name);
    }
    config.data.preprocess = it->second;
  }
  const double threshold = config.train.threshold;
  const std::vector<std::string>& classes = data.val.classes;
  if (classes.size() != 2)
    fail("explain: binary models only; the data has {} classes", classes.size());
  const std::array<std::string, 2> names{classes[0], classes[1]};

  // The splits and their predictions, matched to the images by order and path.
  std::vector<SplitInput> splits;
  auto add_split = [&](const std::string& name, const std::string& title,
                       const data::ImageCache* images) {
    const fs::path csv = run_dir / name / "predictions.csv";
    if (!images) return;
    if (!fs::exists(csv)) {
      result.warnings.push_back(fmt::format("explain: no {}: {} skipped", csv.string(), title));
      return;
    }
    std::string capital = title;
    capital[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(capital[0])));
    SplitInput s{name, title, capital, images, eval::read_predictions_csv(csv, names)};
    if (s.predictions.size() != images->size()) {
      result.warnings.push_back(fmt::format("explain: {} has {} rows for {} images: {} skipped",
                                            csv.string(), s.predictions.size(), images->size(),
                                            title));
      return;
    }
    for (std::size_t i = 0; i < images->size(); ++i) {
      const auto& p = s.predictions[i];
      if ((!p.path.empty() && p.path != images->paths[i].string()) ||
          p.label != images->labels[i]) {
        result.warnings.push_back(fmt::format(
            "explain: {} row {} is '{}' (label {}), the image is '{}' (label {}): {} skipped",
            csv.string(), i + 2, p.path, p.label, images->paths[i].string(), images->labels[i],
            title));
        return;
      }
    }
    splits.push_back(std::move(s));
  };
  add_split("val", "validation", &data.val);
  add_split("test", "test", data.test ? &*data.test : nullptr);

  GradCamOptions cam_options;
  cam_options.backend = config.train.backend;
  cam_options.batch = std::max(1, config.train.batch_size);
  cam_options.threads = config.train.threads;
  cam_options.precision = parse_precision(config.train.dtype);
  GradCam cam(model, cam_options);
  result.method = cam.method();
  const std::string target = cam.saliency() ? "saliency" : "Grad-CAM";

  eval::Plotter plotter(run_dir / "plots");
  const int height = data.val.height, width = data.val.width;
  for (const auto& s : splits) {
    const auto& cache = *s.images;
    const auto& preds = s.predictions;
    auto predicted = [&](std::size_t i) { return preds[i].score >= threshold ? 1 : 0; };
    auto confidence = [&](std::size_t i, int label) {
      return label == 1 ? preds[i].score : 1.0 - preds[i].score;
    };
    // Examples: correct ones of each class, most confident first, evenly spaced.
    std::array<std::vector<std::size_t>, 2> examples, averaged;
    std::vector<std::size_t> mistakes;
    for (int label = 0; label < 2; ++label) {
      std::vector<std::size_t> correct, all;
      for (std::size_t i = 0; i < preds.size(); ++i) {
        if (preds[i].label != label || std::isnan(preds[i].score)) continue;
        all.push_back(i);
        if (predicted(i) == label) correct.push_back(i);
      }
      std::stable_sort(correct.begin(), correct.end(), [&](std::size_t a, std::size_t b) {
        return confidence(a, label) > confidence(b, label);
      });
      examples[label] =
          evenly_spaced(correct, static_cast<std::size_t>(std::max(0, options.examples_per_class)));
      averaged[label] =
          evenly_spaced(all, static_cast<std::size_t>(std::max(0, options.mean_images)));
    }
    for (std::size_t i = 0; i < preds.size(); ++i) {
      if (!std::isnan(preds[i].score) && predicted(i) != preds[i].label) mistakes.push_back(i);
    }
    std::stable_sort(mistakes.begin(), mistakes.end(), [&](std::size_t a, std::size_t b) {
      return std::abs(preds[a].score - preds[a].label) > std::abs(preds[b].score - preds[b].label);
    });
    mistakes.resize(
        std::min(mistakes.size(), static_cast<std::size_t>(std::max(0, options.mistakes))));

    // The maps of every image shown, in split order, at A's resolution.
    std::set<std::size_t> wanted(mistakes.begin(), mistakes.end());
    for (int label = 0; label < 2; ++label) {
      wanted.insert(examples[label].begin(), examples[label].end());
      wanted.insert(averaged[label].begin(), averaged[label].end());
    }
    data::ImageCache subset;
    subset.height = cache.height;
    subset.width = cache.width;
    subset.classes = cache.classes;
    for (const auto i : wanted) {
      subset.pixels.insert(subset.pixels.end(), cache.image(i),
                           cache.image(i) + cache.image_bytes());
      subset.labels.push_back(cache.labels[i]);
      subset.paths.push_back(cache.paths[i]);
    }
    const auto map_start = std::chrono::steady_clock::now();
    std::map<std::size_t, std::array<std::vector<float>, 2>> low;  // per image: toward 0, 1
    int map_h = 0, map_w = 0;
    double score_gap = 0.0;
    {
      auto source = images_in_order(config, subset);
      const Shape& input = cam.saliency() ? cam.split().suffix.value(cam.split().image).shape
                                          : cam.split().prefix.value(cam.split().image).shape;
      Shape batch_shape = input;
      batch_shape[0] = cam.batch();
      Tensor images(DType::f32, batch_shape);
      Tensor labels(DType::f32, {cam.batch(), 1});
      source->start_epoch(0);
      auto it = wanted.begin();
      for (int n; (n = source->next(images, labels)) > 0;) {
        const CamMaps maps = cam.compute(images, n);
        map_h = maps.height;
        map_w = maps.width;
        const std::size_t plane = static_cast<std::size_t>(map_h) * map_w;
        for (int r = 0; r < n; ++r, ++it) {
          auto& entry = low[*it];
          const auto from = static_cast<std::size_t>(r) * plane;
          entry[0].assign(maps.toward_negative.begin() + from,
                          maps.toward_negative.begin() + from + plane);
          entry[1].assign(maps.toward_positive.begin() + from,
                          maps.toward_positive.begin() + from + plane);
          const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(maps.logits[r])));
          score_gap = std::max(score_gap, std::abs(p - preds[*it].score));
        }
      }
    }
    result.map_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - map_start).count();
    result.images_explained += low.size();
    if (score_gap > 0.02) {
      result.warnings.push_back(fmt::format(
          "explain: on {} the maps' model scores up to {:.3f} away from predictions.csv: is it "
          "the model that wrote them?",
          s.title, score_gap));
    }
    auto full = [&](std::size_t i, int label) {
      return upsample_normalised(low.at(i)[label].data(), map_h, map_w, height, width);
    };
    // `title` on the figure, `caption` (which says how the pictures were picked) in explain.json.
    auto add_figure = [&](const std::vector<eval::ImagePanel>& panels, int columns,
                          const std::string& kind, const std::string& title,
                          const std::string& caption) {
      const std::string stem = "explain_" + s.name + "_" + kind;
      const auto png = plotter.image_grid(panels, columns, stem, title);
      if (png) result.figures.push_back({caption, "plots/" + png->filename().string(), kind});
    };

    // 1. Examples per class.
    const int columns = std::max(1, options.examples_per_class);
    std::vector<eval::ImagePanel> panels;
    for (int label = 0; label < 2; ++label) {
      for (const auto i : examples[label]) {
        panels.push_back(
            overlay(cache.image(i), full(i, label), height, width,
                    fmt::format("{} p={}", names[label], probability(confidence(i, label)))));
      }
      for (auto k = examples[label].size(); k < static_cast<std::size_t>(columns); ++k) {
        panels.push_back(blank(height, width, k == 0 ? "no correct " + names[label] : ""));
      }
    }
    if (!examples[0].empty() || !examples[1].empty()) {
      add_figure(panels, columns, "gradcam",
                 fmt::format("{}: {} toward the true class", s.Title, target),
                 fmt::format("{}: {} toward the true class of {} correct predictions per class, "
                             "the most confident first, evenly spaced by confidence (p: the "
                             "model's probability of that class).",
                             s.Title, target, columns));
    }

    // 2. The mean map per class.
    panels.clear();
    for (int label = 0; label < 2; ++label) {
      const auto& used = averaged[label];
      if (used.empty()) continue;
      std::vector<double> sum(static_cast<std::size_t>(height) * width, 0.0);
      std::vector<double> mean_image(sum.size() * 3, 0.0);
      for (const auto i : used) {
        const auto m = full(i, label);
        for (std::size_t p = 0; p < m.size(); ++p) sum[p] += m[p];
        const std::uint8_t* px = cache.image(i);
        for (std::size_t p = 0; p < mean_image.size(); ++p) mean_image[p] += px[p];
      }
      // The mean scaled to its maximum, so that its shape shows however spread the maps are.
      std::vector<float> mean(sum.size(), 0.0f);
      std::vector<std::uint8_t> picture_rgb(mean_image.size());
      const double peak = *std::max_element(sum.begin(), sum.end());
      for (std::size_t p = 0; p < sum.size() && peak > 0; ++p) {
        mean[p] = static_cast<float>(sum[p] / peak);
      }
      for (std::size_t p = 0; p < mean_image.size(); ++p) {
        picture_rgb[p] = static_cast<std::uint8_t>(
            std::lround(mean_image[p] / static_cast<double>(used.size())));
      }
      panels.push_back(overlay(nullptr, mean, height, width,
                               fmt::format("{}: mean of {} maps", names[label], used.size())));
      panels.push_back(overlay(picture_rgb.data(), mean, height, width,
                               fmt::format("{}: over the mean image", names[label])));
    }
    if (!panels.empty()) {
      add_figure(panels, 2, "mean_map", fmt::format("{}: mean {} per class", s.Title, target),
                 fmt::format("{}: the mean of the normalised {} maps toward each class over up "
                             "to {} images of that class (evenly spaced in split order), scaled "
                             "to its maximum, alone and over their mean image.",
                             s.Title, target, options.mean_images));
    }

    // 3. The most confident mistakes.
    panels.clear();
    for (const auto i : mistakes) {
      const int label = preds[i].label;
      panels.push_back(picture(
          cache, i,
          fmt::format("true {}, p({})={}", names[label], names[1], probability(preds[i].score))));
      panels.push_back(overlay(cache.image(i), full(i, 1 - label), height, width,
                               fmt::format("toward {}", names[1 - label])));
    }
    if (!panels.empty()) {
      add_figure(panels, 4, "mistakes", fmt::format("{}: most confident mistakes", s.Title),
                 fmt::format("{}: the {} most confident mistakes (wrong at threshold {}, largest "
                             "|p({}) - label| first), each as the model saw it beside its {} "
                             "toward the predicted class.",
                             s.Title, mistakes.size(), threshold, names[1], target));
    } else {
      result.warnings.push_back(fmt::format(
          "explain: no mistakes on {} at threshold {}: no gallery", s.title, threshold));
    }
  }
  for (const auto& w : plotter.warnings()) result.warnings.push_back(w);

  nlohmann::json json{{"method", result.method}, {"figures", nlohmann::json::array()}};
  for (const auto& f : result.figures) {
    json["figures"].push_back({{"caption", f.caption}, {"png", f.png}, {"kind", f.kind}});
  }
  write_file_atomic(run_dir / "explain.json", json.dump(2) + "\n");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void explain_and_report(const TrainConfig& config, const Graph& model, const TrainData& data,
                        const fs::path& run_dir,
                        const std::function<void(const std::string&)>& print) {
  if (config.report.explain) {
    const auto explained = explain_model(config, model, data, run_dir);
    for (const auto& w : explained.warnings) print("warning: explain: " + w);
    print(fmt::format("Grad-CAM and the most confident mistakes: {} figures in {:.1f} s",
                      explained.figures.size(), explained.seconds));
  }
  const std::vector<eval::RunRecord> runs{eval::load_run(run_dir)};
  const auto report = eval::write_report(runs, run_dir, report_options(config));
  for (const auto& w : report.warnings) print("warning: " + w);
}

}  // namespace onnxforge::train
