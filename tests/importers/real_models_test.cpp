// Real exporters' files (tests/importers/real/: tf2onnx, torch.onnx, onnx-simplifier, the model
// zoo's vgg16-7 layout; made once by real/make_corpus.py, listed in real/manifest.json). For every
// file: import, summary(), inference on the reference and oneDNN backends against ONNX Runtime's
// output (stored with the file), export + re-import + inference again, and import cut at the
// last pooling node (the backbone users take).
//
// Tolerance, per element: |a - b| <= 1e-4 * max(1, |b|), a = ours, b = ONNX Runtime.
//
// ONNXFORGE_REAL_MODELS_DIR=<dir with manifest.json> (e.g. ~/.cache/onnxforge-corpus/full, made
// by `make_corpus.py --full`) runs the same checks on the full-size models (RealModelsFull);
// unset, that suite skips.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "graph/ops.hpp"
#include "graph/passes.hpp"
#include "graph/summary.hpp"
#include "importers/onnx_export.hpp"
#include "importers/onnx_import.hpp"
#include "importers/tensor_io.hpp"

namespace onnxforge {
namespace {

namespace fs = std::filesystem;

constexpr double kTolerance = 1e-4;

struct RealModel {
  std::string dir;   // the folder holding manifest.json
  std::string file;  // models/<file>
  std::string stem;
  std::string exporter;
  int opset = 0;
  std::string input_name;
  std::string test_input;       // relative to dir
  std::string expected_output;  // relative to dir
  std::string last_pool_node;
  bool dynamic_batch = false;

  std::string model_path() const { return (fs::path(dir) / "models" / file).string(); }
  std::string path(const std::string& relative) const {
    return (fs::path(dir) / relative).string();
  }
};

void PrintTo(const RealModel& m, std::ostream* os) { *os << m.file; }

std::vector<RealModel> load_manifest(const std::string& dir) {
  std::vector<RealModel> models;
  if (dir.empty()) return models;
  const fs::path manifest = fs::path(dir) / "manifest.json";
  std::ifstream in(manifest);
  if (!in) return models;
  const auto json = nlohmann::json::parse(in);
  for (const auto& e : json.at("models")) {
    RealModel m;
    m.dir = dir;
    m.file = e.at("file").get<std::string>();
    m.stem = fs::path(m.file).stem().string();
    m.exporter = e.at("exporter").get<std::string>();
    m.opset = e.at("opset").get<int>();
    m.input_name = e.at("input").at("name").get<std::string>();
    m.test_input = e.at("test_input").get<std::string>();
    m.expected_output = e.at("expected_output").get<std::string>();
    m.last_pool_node = e.value("last_pool_node", std::string());
    m.dynamic_batch = e.at("dynamic_batch").get<bool>();
    models.push_back(std::move(m));
  }
  return models;
}

std::string committed_dir() { return std::string(ONNXFORGE_SOURCE_DIR) + "/tests/importers/real"; }

std::string full_dir() {
  const char* env = std::getenv("ONNXFORGE_REAL_MODELS_DIR");
  return env != nullptr ? std::string(env) : std::string();
}

std::string test_name(const ::testing::TestParamInfo<RealModel>& info) {
  std::string name = info.param.stem;
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

bool has_backend(const std::string& name) {
  const auto names = backend_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Runs the graph's first output on `backend`; the graph has the input's static shape.
Tensor run(const Graph& graph, const std::string& backend, const std::string& input,
           const Tensor& x) {
  auto program = make_backend(backend)->compile(graph, {});
  program->set_input(input, x);
  program->forward(Mode::inference);
  return program->fetch(graph.outputs.at(0));
}

// Empty when `got` matches `want` within the tolerance; else what differs.
std::string compare(const Tensor& got, const Tensor& want) {
  std::ostringstream out;
  if (got.shape() != want.shape()) {
    out << "shape " << to_string(got.shape()) << ", ONNX Runtime " << to_string(want.shape());
    return out.str();
  }
  std::int64_t bad = 0, first = -1;
  double worst = 0;
  for (std::int64_t i = 0; i < want.size(); ++i) {
    const double a = got.value(i), b = want.value(i);
    const double err = std::abs(a - b) / std::max(1.0, std::abs(b));
    if (!(err <= kTolerance)) {
      if (first < 0) first = i;
      ++bad;
      worst = std::isnan(err) ? err : std::max(worst, err);
    }
  }
  if (bad == 0) return {};
  out << bad << " of " << want.size() << " elements off (worst relative error " << worst
      << "); first at " << first << ": " << got.value(first) << " vs ONNX Runtime "
      << want.value(first);
  return out.str();
}

// The whole check for one file; stops at the first failure, naming the step.
void check_model(const RealModel& m) {
  SCOPED_TRACE(m.file + " (" + m.exporter + ", opset " + std::to_string(m.opset) + ")");
  const Tensor x = read_tensor_pb(m.path(m.test_input));
  const Tensor expected = read_tensor_pb(m.path(m.expected_output));

  Graph graph;
  try {
    graph = import_onnx(m.model_path());
  } catch (const std::exception& e) {
    FAIL() << "import_onnx: " << e.what();
  }
  try {
    EXPECT_FALSE(summary(graph).empty());
  } catch (const std::exception& e) {
    FAIL() << "summary: " << e.what();
  }
  // Imported layers train like built-in ones: every Conv and Dense weight and bias, and the
  // scale and B of every batch norm, are trainable (BN running statistics are not).
  for (const auto& node : graph.nodes) {
    const bool bn = node.is(OpId::BatchNormalization);
    if (!bn && !node.is(OpId::Conv) && !node.is(OpId::Dense)) continue;
    for (std::size_t i = 1; i < node.inputs.size() && i < (bn ? 3u : node.inputs.size()); ++i) {
      const auto* init = graph.find_initializer(node.inputs[i]);
      EXPECT_TRUE(init && init->trainable) << node.name << " input " << i << " is not trainable";
    }
  }
  ASSERT_EQ(graph.inputs.size(), 1u);
  const std::string input = graph.inputs.at(0).name;
  EXPECT_EQ(input, m.input_name);
  EXPECT_EQ(graph.inputs.at(0).shape.at(0) == kDynamic, m.dynamic_batch)
      << "input shape " << to_string(graph.inputs.at(0).shape);

  Graph fixed;
  try {
    fixed = with_input_shape(graph, input, x.shape());
  } catch (const std::exception& e) {
    FAIL() << "with_input_shape " << to_string(x.shape()) << ": " << e.what();
  }
  for (const std::string backend : {"reference", "onednn"}) {
    if (!has_backend(backend)) {
      ADD_FAILURE() << "no " << backend << " backend in this build";
      continue;
    }
    try {
      const std::string diff = compare(run(fixed, backend, input, x), expected);
      EXPECT_TRUE(diff.empty()) << backend << ": " << diff;
    } catch (const std::exception& e) {
      ADD_FAILURE() << backend << ": " << e.what();
    }
  }

  Graph again;
  try {
    again = import_onnx_bytes(export_onnx_bytes(graph));
  } catch (const std::exception& e) {
    FAIL() << "export_onnx + import again: " << e.what();
  }
  try {
    const Graph again_fixed = with_input_shape(again, again.inputs.at(0).name, x.shape());
    const std::string diff =
        compare(run(again_fixed, "reference", again.inputs.at(0).name, x), expected);
    EXPECT_TRUE(diff.empty()) << "reference, after export and import: " << diff;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "reference, after export and import: " << e.what();
  }
}

// Import cut at the last pooling node: the backbone, with one output.
void check_cut(const RealModel& m) {
  SCOPED_TRACE(m.file);
  if (m.last_pool_node.empty()) GTEST_SKIP() << "no pooling node named in the manifest";
  ImportOptions options;
  options.cut_at = m.last_pool_node;
  try {
    const Graph g = import_onnx(m.model_path(), options);
    ASSERT_EQ(g.outputs.size(), 1u);
    EXPECT_GE(g.value(g.outputs[0]).shape.size(), 2u);
  } catch (const std::exception& e) {
    FAIL() << "import_onnx cut_at '" << m.last_pool_node << "': " << e.what();
  }
}

class RealModels : public ::testing::TestWithParam<RealModel> {};

TEST(RealModelsManifest, ListsTheCommittedCorpus) {
  const auto models = load_manifest(committed_dir());
  EXPECT_GE(models.size(), 20u) << committed_dir() << "/manifest.json";
  for (const auto& m : models) EXPECT_TRUE(fs::exists(m.model_path())) << m.model_path();
}

TEST_P(RealModels, ImportsAndMatchesOnnxRuntime) { check_model(GetParam()); }
TEST_P(RealModels, ImportsCutAtLastPool) { check_cut(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Corpus, RealModels, ::testing::ValuesIn(load_manifest(committed_dir())),
                         test_name);

// Full-size models, from ONNXFORGE_REAL_MODELS_DIR.
class RealModelsFull : public ::testing::TestWithParam<RealModel> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RealModelsFull);

TEST(RealModelsFullDir, IsSet) {
  if (full_dir().empty()) {
    GTEST_SKIP() << "set ONNXFORGE_REAL_MODELS_DIR to a folder made by "
                    "`tests/importers/real/make_corpus.py --full` (default "
                    "~/.cache/onnxforge-corpus/full) to run the full-size models";
  }
  EXPECT_FALSE(load_manifest(full_dir()).empty()) << full_dir() << "/manifest.json";
}

TEST_P(RealModelsFull, ImportsAndMatchesOnnxRuntime) { check_model(GetParam()); }
TEST_P(RealModelsFull, ImportsCutAtLastPool) { check_cut(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Full, RealModelsFull, ::testing::ValuesIn(load_manifest(full_dir())),
                         test_name);

}  // namespace
}  // namespace onnxforge
