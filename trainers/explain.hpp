// What a trained model looks at (issue 19: "the report explains each model"): Grad-CAM at the
// last convolution, computed with the backend's own backward pass, and the figures and
// RUN/explain.json the report shows.
//
// The model (one image input, a Sigmoid probability output whose input is the logit of label 1)
// is split at A, the output of its last Conv, or of the Relu after it when the Conv feeds only a
// Relu, possibly through a BatchNormalization it alone feeds (Conv -> BN -> Relu):
//   prefix = cut_at(model, A's node)         runs in inference mode; A is fetched;
//   suffix = cut_from(model, A) up to logit  every parameter frozen (so a BatchNormalization runs
//                                            on its running statistics, as in inference), Dropout
//                                            removed (remove_identities), the loss
//                                            ReduceSum(logits) added; compiled for training with
//                                            input_gradients, one forward(Mode::training) and
//                                            backward() per batch give dLogit_i/dA_i per row (the
//                                            rows do not interact).
// Toward label 1: CAM = ReLU(sum_c alpha_c A_c), alpha_c = mean over (h, w) of dLogit/dA_c; toward
// label 0 the same with -logit, that is ReLU(-sum_c alpha_c A_c), from the same backward. A model
// without a Conv gets input-gradient saliency instead: max over channels of |dLogit/dimage|
// (the same map for both labels). Maps are upsampled bilinearly (half-pixel centres, as OpenCV's
// INTER_LINEAR) to the input size and normalised per image to [0, 1] (divided by their maximum;
// an all-zero map stays zero).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "graph/graph.hpp"
#include "trainers/config.hpp"
#include "trainers/trainer.hpp"

namespace onnxforge::train {

// The split of a model for Grad-CAM (see the top of this file). Graphs keep a dynamic batch.
struct CamSplit {
  std::string conv;        // the last Conv node; empty when the model has none (saliency)
  std::string activation;  // A: the prefix's output, the suffix's input (the image input when no
                           // Conv)
  std::string image;       // the model's image input
  std::string logit;       // the Sigmoid's input: the suffix's output
  Graph prefix;            // image -> A (empty when no Conv)
  Graph suffix;            // A (and the image when a later node still reads it) -> logit; frozen
};
// Throws Error naming the model when it has not one input and a Sigmoid output.
CamSplit split_for_cam(const Graph& model);

// Maps of a batch: per image, height x width values (row-major) at A's resolution.
struct CamMaps {
  int count = 0, height = 0, width = 0;
  std::vector<float> toward_positive;  // toward label 1: ReLU(sum_c alpha_c A_c)
  std::vector<float> toward_negative;  // toward label 0: ReLU(-sum_c alpha_c A_c)
  std::vector<float> logits;           // per image, from the suffix's forward
};

struct GradCamOptions {
  std::string backend = "onednn";
  int batch = 32;
  int threads = 0;
  Precision precision = Precision::f32;  // the prefix's; the suffix always runs in f32
};

class GradCam {
 public:
  GradCam(const Graph& model, const GradCamOptions& options);
  ~GradCam();
  GradCam(const GradCam&) = delete;
  GradCam& operator=(const GradCam&) = delete;

  const CamSplit& split() const { return split_; }
  bool saliency() const { return split_.conv.empty(); }
  int batch() const { return options_.batch; }
  // The maps of the first `count` rows of `images` ([batch, C, H, W], preprocessed as in
  // training).
  CamMaps compute(const Tensor& images, int count);
  // One sentence: how the maps are computed (node, value, backend).
  std::string method() const;
  // A and dLogit/dA of the last compute() (the image and dLogit/dimage for saliency), all rows
  // of the batch.
  const Tensor& last_activation() const { return last_activation_; }
  const Tensor& last_gradient() const { return last_gradient_; }

 private:
  CamSplit split_;
  GradCamOptions options_;
  std::unique_ptr<Program> prefix_, suffix_;
  bool suffix_reads_image_ = false;
  Tensor last_activation_, last_gradient_;
};

// Bilinear resize of one map (half-pixel centres, edges clamped), then divided by its maximum
// (left as zeros when the maximum is not positive). Returns out_height x out_width values.
std::vector<float> upsample_normalised(const float* map, int height, int width, int out_height,
                                       int out_width);

// A colour map (jet: blue 0 -> cyan -> yellow -> red 1) of a value in [0, 1], as RGB bytes.
std::array<std::uint8_t, 3> jet(double value);

struct ExplainOptions {
  int examples_per_class = 4;  // Grad-CAM examples per class and split
  int mistakes = 8;            // most confident mistakes per split
  int mean_images = 300;       // images per class averaged into the mean map
};

struct ExplainFigure {
  std::string caption;
  std::string png;   // relative to the run folder: "plots/<stem>.png"
  std::string kind;  // "gradcam" | "mean_map" | "mistakes"
};

struct ExplainResult {
  std::string method;
  std::vector<ExplainFigure> figures;  // those whose PNG was made
  std::vector<std::string> warnings;   // the plotter's (gnuplot missing, ...) and explain's own
  std::size_t images_explained = 0;    // maps computed over both splits
  double seconds = 0.0;                // the whole call: maps and figures
  double map_seconds = 0.0;            // of which computing the maps
};

// After training: reads RUN/val/predictions.csv and RUN/test/predictions.csv (a split whose file
// or images are missing is skipped with a warning), computes the maps of the images it shows on
// config.train.backend (threads, dtype and batch size of config.train; preprocessing of
// config.data.preprocess, or the model's "onnxforge.preprocess" metadata when that is "auto"),
// and writes per split into RUN/plots/:
//   explain_<split>_gradcam    examples_per_class correct predictions per class, evenly spaced by
//                              confidence from the most confident down, each overlaid with its
//                              map toward its class, caption "Male p=0.93" (p of that class);
//   explain_<split>_mean_map   per class, the mean of the normalised maps toward that class over
//                              up to mean_images images of it (evenly spaced in split order),
//                              scaled to its maximum, as a colour map and over the mean image;
//   explain_<split>_mistakes   the `mistakes` wrong predictions at config.train.threshold with the
//                              largest |score - label|, the input beside its map toward the
//                              predicted class, caption "true Female, p(Male)=0.97";
// and RUN/explain.json (atomically): {"method": "...", "figures": [{"caption", "png", "kind"}]}.
// Predictions are matched to data.val / data.test by order and path.
ExplainResult explain_model(const TrainConfig& config, const Graph& model, const TrainData& data,
                            const std::filesystem::path& run_dir,
                            const ExplainOptions& options = {});

// What `run` and `train` do once a model is trained and evaluated: explain_model (when
// config.report.explain; its warnings and time go to `print`), then RUN/report.html and report.md
// written again (report_options(config)) so that they show the figures.
void explain_and_report(const TrainConfig& config, const Graph& model, const TrainData& data,
                        const std::filesystem::path& run_dir,
                        const std::function<void(const std::string&)>& print);

}  // namespace onnxforge::train
