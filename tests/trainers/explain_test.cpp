// Grad-CAM (trainers/explain.hpp) against closed forms: on Conv -> Relu -> GlobalAveragePool ->
// Dense 1 -> Sigmoid the weights are alpha_c = w_c / (H*W) exactly, on the reference and oneDNN
// backends; the split's suffix gradient against central finite differences (through a frozen
// batch norm and a dropout, which must behave as in inference); a model without a Conv against
// |w| (its saliency); VGG16 (narrow) with a transfer head; and the files of a tiny run folder.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/random.hpp"
#include "eval/io.hpp"
#include "eval/plots.hpp"
#include "graph/builder.hpp"
#include "graph/models.hpp"
#include "graph/passes.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tiny_images.hpp"
#include "trainers/config.hpp"
#include "trainers/explain.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::train {
namespace {

namespace fs = std::filesystem;
using onnxforge::testing::tiny_images;

Tensor random_images(const Shape& shape, std::uint64_t seed) {
  Random rng(seed);
  Tensor t(DType::f32, shape);
  for (auto& v : t.data<float>()) v = static_cast<float>(rng.uniform());
  return t;
}

const Tensor& initializer(const Graph& g, const std::string& name) {
  const auto* init = g.find_initializer(name);
  if (!init) throw std::runtime_error("no initializer " + name);
  return init->value;
}

// Conv 4@3x3 (valid) -> Relu -> GlobalAveragePool -> Flatten -> Dense 1 -> Sigmoid on 3x6x6;
// with `skip`, the image's own channel means join the Dense's input (Concat), so that the part
// after the split reads the image too.
Graph gap_model(bool skip = false) {
  Builder b("gap", 7);
  const auto image = b.input("image", {kDynamic, 3, 6, 6});
  auto x = b.relu(b.conv2d(image, {.filters = 4, .kernel = {3, 3}, .name = "conv"}));
  x = b.flatten(b.global_avg_pool(x));
  if (skip) x = b.concat({x, b.flatten(b.global_avg_pool(image))}, 1);
  x = b.sigmoid(b.dense(x, 1, {.name = "dense"}));
  b.output(x);
  Graph g = b.build();
  // Non-zero biases, so that the ReLU and the logit's offset matter.
  Random rng(3);
  for (auto& v : g.find_initializer("conv/bias")->value.data<float>()) {
    v = static_cast<float>(rng.uniform() - 0.5);
  }
  g.find_initializer("dense/bias")->value.data<float>()[0] = 0.25f;
  return g;
}

std::vector<std::string> backends_here() {
  std::vector<std::string> out{"reference"};
  for (const auto& name : backend_names()) {
    if (name == "onednn") out.push_back(name);
  }
  return out;
}

class GradCamClosedForm : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(GradCamClosedForm, EqualsTheCamOfGlobalAveragePooling) {
  const auto& [backend, skip] = GetParam();
  const Graph model = gap_model(skip);
  const Tensor& kernel = initializer(model, "conv/kernel");  // 4, 3, 3, 3
  const Tensor& bias = initializer(model, "conv/bias");
  const Tensor& w = initializer(model, "dense/kernel");  // 1, 4 (1, 7 with the skip)
  const double b = initializer(model, "dense/bias").value(0);
  const int batch = 4, count = 3;  // a partial batch
  const Tensor images = random_images({batch, 3, 6, 6}, 11);
  {
    GradCam cam(model, {.backend = backend, .batch = batch, .threads = 1});
    EXPECT_EQ(cam.split().conv, "conv");
    EXPECT_FALSE(cam.saliency());
    EXPECT_EQ(cam.split().suffix.is_input("image"), skip);
    EXPECT_NE(cam.method().find("'conv'"), std::string::npos) << cam.method();
    EXPECT_NE(cam.method().find(backend), std::string::npos) << cam.method();
    const CamMaps maps = cam.compute(images, count);
    ASSERT_EQ(maps.count, count);
    ASSERT_EQ(maps.height, 4);
    ASSERT_EQ(maps.width, 4);
    for (int n = 0; n < count; ++n) {
      // A = relu(conv(x)) by hand; logit = sum_c w_c mean(A_c) + b; alpha_c = w_c / 16.
      double a[4][4][4];
      double logit = b;
      for (int c = 0; c < 4; ++c) {
        double mean = 0;
        for (int y = 0; y < 4; ++y) {
          for (int x = 0; x < 4; ++x) {
            double s = bias.value(c);
            for (int k = 0; k < 3; ++k) {
              for (int dy = 0; dy < 3; ++dy) {
                for (int dx = 0; dx < 3; ++dx) {
                  s += kernel.value(((c * 3 + k) * 3 + dy) * 3 + dx) *
                       images.value(((n * 3 + k) * 6 + y + dy) * 6 + x + dx);
                }
              }
            }
            a[c][y][x] = std::max(s, 0.0);
            mean += a[c][y][x] / 16.0;
          }
        }
        logit += w.value(c) * mean;
      }
      for (int k = 0; skip && k < 3; ++k) {
        double mean = 0;
        for (int p = 0; p < 36; ++p) mean += images.value((n * 3 + k) * 36 + p) / 36.0;
        logit += w.value(4 + k) * mean;
      }
      EXPECT_NEAR(maps.logits[static_cast<std::size_t>(n)], logit, 1e-5);
      for (int y = 0; y < 4; ++y) {
        for (int x = 0; x < 4; ++x) {
          double m = 0;
          for (int c = 0; c < 4; ++c) m += w.value(c) / 16.0 * a[c][y][x];
          const std::size_t at = static_cast<std::size_t>(n * 16 + y * 4 + x);
          EXPECT_NEAR(maps.toward_positive[at], std::max(m, 0.0), 1e-6) << n << " " << y << x;
          EXPECT_NEAR(maps.toward_negative[at], std::max(-m, 0.0), 1e-6) << n << " " << y << x;
        }
      }
    }
  }
}

std::vector<std::tuple<std::string, bool>> closed_form_cases() {
  std::vector<std::tuple<std::string, bool>> out;
  for (const auto& backend : backends_here()) {
    for (const bool skip : {false, true}) out.emplace_back(backend, skip);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Backends, GradCamClosedForm, ::testing::ValuesIn(closed_form_cases()),
                         [](const auto& param_info) {
                           return std::get<0>(param_info.param) +
                                  (std::get<1>(param_info.param) ? "_image_skip" : "");
                         });

TEST(GradCam, SplitsAtTheConvOutputWhenItFeedsMoreThanARelu) {
  Builder b("residual", 1);
  const auto conv = b.conv2d(b.input("image", {kDynamic, 3, 6, 6}),
                             {.filters = 3, .padding = Padding::same, .name = "conv"});
  auto x = b.add(b.relu(conv), conv);
  b.output(b.sigmoid(b.dense(b.flatten(x), 1)));
  const CamSplit split = split_for_cam(b.build());
  EXPECT_EQ(split.activation, conv);
  EXPECT_FALSE(split.suffix.is_input("image"));
  EXPECT_EQ(split.prefix.outputs, std::vector<std::string>{conv});
}

// Conv -> BN -> Relu -> MaxPool -> BN -> Dropout -> Flatten -> Dense 3 -> Relu -> Dense 1 ->
// Sigmoid, with batch norm statistics far from any batch's: split after the first Relu.
Graph bn_dropout_model() {
  Builder b("bn_dropout", 5);
  auto x = b.input("image", {kDynamic, 2, 6, 6});
  x = b.conv2d(x, {.filters = 3, .kernel = {3, 3}, .name = "conv"});
  x = b.relu(b.batch_norm(x, {.name = "bn1"}), "conv_relu");
  x = b.max_pool(x, {.kernel = {2, 2}});
  x = b.dropout(b.batch_norm(x, {.name = "bn2"}), 0.5);
  x = b.relu(b.dense(b.flatten(x), 3, {.name = "hidden"}));
  x = b.sigmoid(b.dense(x, 1, {.name = "out"}));
  b.output(x);
  Graph g = b.build();
  Random rng(9);
  for (const char* bn : {"bn1", "bn2"}) {
    for (const char* stat : {"/moving_mean", "/moving_variance", "/gamma", "/beta"}) {
      for (auto& v : g.find_initializer(std::string(bn) + stat)->value.data<float>()) {
        v = static_cast<float>(0.5 + rng.uniform());
      }
    }
  }
  return g;
}

TEST(CutFrom, KeepsWhatIsDownstreamOfAValueWithThatValueAsInput) {
  const Graph model = bn_dropout_model();
  const Graph after = cut_from(model, "conv_relu");
  ASSERT_EQ(after.inputs.size(), 1u);
  EXPECT_EQ(after.inputs[0].name, "conv_relu");
  EXPECT_EQ(after.inputs[0].shape, model.value("conv_relu").shape);
  EXPECT_EQ(after.outputs, model.outputs);
  EXPECT_EQ(after.find_initializer("conv/kernel"), nullptr);
  EXPECT_NE(after.find_initializer("hidden/kernel"), nullptr);
  EXPECT_EQ(after.nodes.size() + cut_at(model, "conv_relu").nodes.size(), model.nodes.size());
  EXPECT_THROW(cut_from(model, "image"), Error);
}

TEST(GradCam, SuffixGradientMatchesFiniteDifferencesWithBatchNormAndDropoutAsInInference) {
  const Graph model = bn_dropout_model();
  const CamSplit split = split_for_cam(model);
  EXPECT_EQ(split.conv, "conv");
  ASSERT_NE(split.prefix.producer(split.activation), nullptr);
  EXPECT_TRUE(split.prefix.producer(split.activation)->is(OpId::Relu)) << split.activation;
  EXPECT_EQ(split.suffix.inputs.size(), 1u);
  for (const auto& node : split.suffix.nodes) EXPECT_FALSE(node.is(OpId::Dropout)) << node.name;
  for (const auto& init : split.suffix.initializers) EXPECT_FALSE(init.trainable) << init.name;

  const int batch = 2;
  const Tensor images = random_images({batch, 2, 6, 6}, 4);
  // The suffix alone, in inference mode: the objective the gradient must be of.
  auto plain = make_backend("reference")->compile(with_batch(split.suffix, batch), {});
  for (const auto& backend : backends_here()) {
    SCOPED_TRACE(backend);
    GradCam cam(model, {.backend = backend, .batch = batch, .threads = 1});
    cam.compute(images, batch);
    const Tensor a = cam.last_activation();
    const Tensor g = cam.last_gradient();
    ASSERT_EQ(a.shape(), g.shape());
    auto logits_at = [&](const Tensor& at) {
      plain->set_input(split.activation, at);
      plain->forward(Mode::inference);
      return plain->fetch(split.logit).to_doubles();
    };
    const std::vector<double> base = logits_at(a);
    // The suffix's logit equals the whole model's (inference) logit.
    auto whole = make_backend("reference")->compile(with_batch(model, batch), {});
    whole->set_input("image", images);
    whole->forward(Mode::inference);
    const Tensor p = whole->fetch(model.outputs[0]);
    for (int n = 0; n < batch; ++n) {
      EXPECT_NEAR(1.0 / (1.0 + std::exp(-base[static_cast<std::size_t>(n)])), p.value(n), 1e-5);
    }
    const double h = 1e-3;
    const std::int64_t per_row = a.size() / batch;
    int checked = 0;
    for (std::int64_t i = 0; i < a.size(); i += 5) {
      if (a.value(i) <= 2 * h) continue;  // a ReLU output at its kink: not smooth there
      Tensor up = a, down = a;
      up.data<float>()[static_cast<std::size_t>(i)] += static_cast<float>(h);
      down.data<float>()[static_cast<std::size_t>(i)] -= static_cast<float>(h);
      const auto row = static_cast<std::size_t>(i / per_row);
      const double fd = (logits_at(up)[row] - logits_at(down)[row]) / (2 * h);
      EXPECT_NEAR(g.value(i), fd, 2e-3 + 1e-2 * std::abs(fd)) << "element " << i;
      ++checked;
    }
    EXPECT_GE(checked, 5);
  }
}

TEST(GradCam, WithoutAConvIsTheInputGradientSaliency) {
  Builder b("linear", 2);
  auto x = b.input("image", {kDynamic, 3, 4, 5});
  b.output(b.sigmoid(b.dense(b.flatten(x), 1, {.name = "dense"})));
  const Graph model = b.build();
  const Tensor& w = initializer(model, "dense/kernel");  // 1, 60
  for (const auto& backend : backends_here()) {
    SCOPED_TRACE(backend);
    GradCam cam(model, {.backend = backend, .batch = 2, .threads = 1});
    EXPECT_TRUE(cam.saliency());
    EXPECT_NE(cam.method().find("saliency"), std::string::npos) << cam.method();
    const CamMaps maps = cam.compute(random_images({2, 3, 4, 5}, 1), 1);
    ASSERT_EQ(maps.height, 4);
    ASSERT_EQ(maps.width, 5);
    for (int p = 0; p < 20; ++p) {
      double want = 0;
      for (int c = 0; c < 3; ++c) want = std::max(want, std::abs(w.value(c * 20 + p)));
      EXPECT_NEAR(maps.toward_positive[static_cast<std::size_t>(p)], want, 1e-6) << p;
      EXPECT_NEAR(maps.toward_negative[static_cast<std::size_t>(p)], want, 1e-6) << p;
    }
  }
}

TEST(GradCam, FindsTheLastConvolutionInsideATransferBackbone) {
  const Graph backbone = prepare_backbone(
      build_model("vgg16", {.input = {3, 32, 32}, .width = 1.0 / 16}), "", {3, 32, 32});
  TransferConfig transfer;
  transfer.head_units = {8};
  const Shape features = backbone.value(backbone.outputs[0]).shape;  // N, C, H, W
  const Graph head = make_head(Shape(features.begin() + 1, features.end()), transfer, 1);
  const Graph model = attach_head(backbone, head);
  const Tensor images = random_images({2, 3, 32, 32}, 6);
  std::vector<float> first;
  for (const auto& backend : backends_here()) {
    SCOPED_TRACE(backend);
    GradCam cam(model, {.backend = backend, .batch = 2, .threads = 1});
    EXPECT_EQ(cam.split().conv, "block5_conv3");
    EXPECT_TRUE(cam.split().prefix.producer(cam.split().activation)->is(OpId::Relu));
    const CamMaps maps = cam.compute(images, 2);
    EXPECT_EQ(maps.height, 2);  // 32 / 2^4
    EXPECT_EQ(maps.width, 2);
    std::vector<float> both = maps.toward_positive;
    both.insert(both.end(), maps.toward_negative.begin(), maps.toward_negative.end());
    if (first.empty()) {
      first = both;
      EXPECT_GT(*std::max_element(first.begin(), first.end()), 0.0f);
      continue;
    }
    ASSERT_EQ(both.size(), first.size());
    const float scale = *std::max_element(first.begin(), first.end());
    for (std::size_t i = 0; i < both.size(); ++i) {
      EXPECT_NEAR(both[i], first[i], 1e-4 * scale + 1e-7) << "onednn vs reference, " << i;
    }
  }
}

TEST(GradCam, UpsamplesBilinearlyWithHalfPixelCentresAndNormalises) {
  const float map[] = {0, 1, 2, 3};  // 2x2
  const auto out = upsample_normalised(map, 2, 2, 4, 4);
  // Source coordinate of output i: (i + 0.5) / 2 - 0.5, clamped: -0.25 -> 0, 0.25, 0.75, 1.25 -> 1.
  const double at[] = {0, 0.25, 0.75, 1};
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      const double want = (at[x] + 2 * at[y]) / 3.0;  // bilinear of x + 2y is exact
      EXPECT_NEAR(out[static_cast<std::size_t>(y * 4 + x)], want, 1e-6) << y << x;
    }
  }
  const float zeros[] = {0, 0, 0, 0};
  for (const float v : upsample_normalised(zeros, 2, 2, 3, 3)) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(jet(0.0), (std::array<std::uint8_t, 3>{0, 0, 128}));
  EXPECT_EQ(jet(1.0), (std::array<std::uint8_t, 3>{128, 0, 0}));
}

// ---- a run folder -------------------------------------------------------------------------------

TEST(ExplainModel, WritesFiguresAndExplainJsonForARunFolder) {
  onnxforge::testing::TempDir dir;
  const fs::path run = dir.path();
  TrainConfig config = parse_config(R"(
name = "tiny"
[model]
input = [3, 8, 8]
[data]
train = "in-memory"
val = "in-memory"
[train]
batch_size = 8
backend = "reference"
dtype = "fp32"
threads = 1
)",
                                    "tiny.toml");
  Builder b("tiny", 3);
  auto x = b.input("image", {kDynamic, 3, 8, 8});
  x = b.relu(b.conv2d(x, {.filters = 4, .kernel = {3, 3}, .name = "last_conv"}));
  x = b.max_pool(x, {.kernel = {2, 2}});
  x = b.sigmoid(b.dense(b.flatten(x), 1));
  b.output(x);
  const Graph model = b.build();
  TrainData data{tiny_images(8, 1, "split1/"), tiny_images(20, 2, "split2/"),
                 tiny_images(12, 3, "split3/")};

  // predictions.csv as the trainer writes it: this model's scores, in order.
  auto program = make_backend("reference")->compile(with_batch(model, 1), {});
  std::vector<std::vector<eval::Prediction>> written;
  for (const auto& [split, cache] : {std::pair{"val", &data.val}, std::pair{"test", &*data.test}}) {
    std::vector<eval::Prediction> rows;
    for (std::size_t i = 0; i < cache->size(); ++i) {
      Tensor image(DType::f32, {1, 3, 8, 8});
      for (int c = 0; c < 3; ++c) {
        for (int p = 0; p < 64; ++p) {
          image.data<float>()[static_cast<std::size_t>(c * 64 + p)] =
              static_cast<float>(cache->image(i)[p * 3 + c] / 255.0);
        }
      }
      program->set_input("image", image);
      program->forward(Mode::inference);
      rows.push_back(
          {cache->paths[i].string(), cache->labels[i], program->fetch(model.outputs[0]).value(0)});
    }
    eval::write_predictions_csv(run / split / "predictions.csv", rows);
    written.push_back(rows);
  }

  const ExplainResult result =
      explain_model(config, model, data, run, {.examples_per_class = 3, .mistakes = 5});
  for (const auto& w : result.warnings) {
    EXPECT_TRUE(w.find("no mistakes") != std::string::npos ||
                w.find("gnuplot") != std::string::npos)
        << w;
  }
  EXPECT_NE(result.method.find("'last_conv'"), std::string::npos) << result.method;
  EXPECT_NE(result.method.find("reference"), std::string::npos) << result.method;
  EXPECT_EQ(result.images_explained, 32u);  // every image: fewer than mean_images per class

  const auto json = nlohmann::json::parse(read_file(run / "explain.json"));
  EXPECT_EQ(json.at("method"), result.method);
  const bool drawn = eval::Plotter(run / "plots").has_gnuplot();
  ASSERT_EQ(json.at("figures").size(), result.figures.size());
  std::vector<std::string> kinds;
  for (const auto& f : json.at("figures")) {
    kinds.push_back(f.at("kind").get<std::string>() + " " + f.at("png").get<std::string>());
    EXPECT_FALSE(f.at("caption").get<std::string>().empty());
    EXPECT_TRUE(fs::exists(run / f.at("png").get<std::string>())) << f.at("png");
  }
  // The data and scripts are written with or without gnuplot.
  for (const char* split : {"val", "test"}) {
    for (const char* kind : {"gradcam", "mean_map"}) {
      const fs::path dat = run / "plots" / fmt::format("explain_{}_{}.dat", split, kind);
      EXPECT_TRUE(fs::exists(dat)) << dat;
    }
  }
  if (drawn) {
    EXPECT_GE(kinds.size(), 4u);
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), "gradcam plots/explain_val_gradcam.png"),
              kinds.end());
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), "mean_map plots/explain_test_mean_map.png"),
              kinds.end());
  }

  // The mistakes gallery: the wrong predictions with the largest |score - label|, in that order.
  for (std::size_t s = 0; s < 2; ++s) {
    const auto& rows = written[s];
    std::vector<std::size_t> wrong;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if ((rows[i].score >= 0.5 ? 1 : 0) != rows[i].label) wrong.push_back(i);
    }
    std::stable_sort(wrong.begin(), wrong.end(), [&](std::size_t a, std::size_t c) {
      return std::abs(rows[a].score - rows[a].label) > std::abs(rows[c].score - rows[c].label);
    });
    wrong.resize(std::min<std::size_t>(wrong.size(), 5));
    const fs::path dat = run / "plots" / fmt::format("explain_{}_mistakes.dat", s ? "test" : "val");
    if (wrong.empty()) {
      EXPECT_FALSE(fs::exists(dat));
      continue;
    }
    const std::string text = read_file(dat);
    std::size_t from = 0;
    for (const auto i : wrong) {
      const std::string caption = fmt::format("# true {}, p(Male)={:.2f}\n",
                                              rows[i].label ? "Male" : "Female", rows[i].score);
      const auto at = text.find(caption, from);
      ASSERT_NE(at, std::string::npos) << caption;
      from = at + caption.size();
    }
    EXPECT_EQ(text.find("# true ", from), std::string::npos) << "more than the 5 mistakes";
  }
}

}  // namespace
}  // namespace onnxforge::train
