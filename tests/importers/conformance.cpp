// ONNX conformance runner: imports every test of the ONNX backend test data (node/,
// pytorch-converted/, pytorch-operator/, simple/) whose ops the importer supports, runs it on the
// reference backend and on every other backend of this build, and compares with the test's
// outputs (rtol 1e-3, atol 1e-7, as onnx.backend.test does). Prints passed / failed / skipped
// per backend; exits non-zero when a test fails.
//
//   onnxforge_conformance [--data DIR] [--skip FILE] [--backend NAME]... [--filter TEXT] [-v]
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "core/error.hpp"
#include "importers/onnx_import.hpp"
#include "importers/tensor_io.hpp"

namespace fs = std::filesystem;
using namespace onnxforge;

namespace {

struct Counts {
  int passed = 0, failed = 0, skipped = 0;
};

std::map<std::string, std::string> read_skip_list(const std::string& path) {
  std::map<std::string, std::string> skips;
  if (path.empty()) return skips;
  std::ifstream in(path);
  if (!in) fail("{}: cannot read the skip list", path);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const auto hash = line.find('#');
    if (hash == 0) continue;
    std::istringstream text(line);
    std::string name;
    if (!(text >> name)) continue;
    std::string reason;
    std::getline(text, reason);
    reason.erase(0, reason.find_first_not_of(" \t"));
    if (reason.empty()) fail("{}:{}: '{}' has no reason", path, number, name);
    skips[name] = reason;
  }
  return skips;
}

// Why the importer cannot take this model at all, or "".
std::string unsupported_reason(const fs::path& model_path) {
  std::ifstream in(model_path, std::ios::binary);
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in)) return "";  // let the importer report it
  int opset = -1;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = static_cast<int>(o.version());
  }
  if (opset < kMinOpset || opset > kMaxOpset) return fmt::format("opset {}", opset);
  std::set<std::string> missing;
  for (const auto& node : model.graph().node()) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      missing.insert(node.domain() + "." + node.op_type());
    } else if (!is_supported_onnx_op(node.op_type(), opset)) {
      missing.insert(node.op_type());
    }
  }
  if (!missing.empty()) {
    return fmt::format("unsupported op {} (opset {})", fmt::join(missing, ", "), opset);
  }
  return "";
}

// The model's graph inputs that are not initializers, in order (the test data's input_i order).
std::vector<std::string> graph_input_names(const fs::path& model_path) {
  std::ifstream in(model_path, std::ios::binary);
  onnx::ModelProto model;
  std::vector<std::string> names;
  if (!model.ParseFromIstream(&in)) return names;
  std::set<std::string> initializers;
  for (const auto& t : model.graph().initializer()) initializers.insert(t.name());
  for (const auto& i : model.graph().input()) {
    if (!initializers.count(i.name())) names.push_back(i.name());
  }
  return names;
}

std::vector<fs::path> sorted_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.path().extension() == ".pb") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    auto number = [](const fs::path& p) {
      const auto s = p.stem().string();
      return std::stoi(s.substr(s.find('_') + 1));
    };
    return number(a) < number(b);
  });
  return files;
}

// "" when `got` matches `want`.
std::string compare(const Tensor& got, const Tensor& want, const std::string& name) {
  if (got.shape() != want.shape()) {
    return fmt::format("output '{}': shape {} but expected {}", name, to_string(got.shape()),
                       to_string(want.shape()));
  }
  const double rtol = 1e-3, atol = 1e-7;
  for (std::int64_t i = 0; i < want.size(); ++i) {
    const double g = got.value(i), w = want.value(i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::abs(g - w) <= atol + rtol * std::abs(w))) {
      return fmt::format("output '{}': element {} is {} but expected {}", name, i, g, w);
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data";
  std::string skip_path;
  std::string filter;
  std::vector<std::string> backends;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "conformance: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--data") {
      data = value();
    } else if (arg == "--skip") {
      skip_path = value();
    } else if (arg == "--backend") {
      backends.push_back(value());
    } else if (arg == "--filter") {
      filter = value();
    } else if (arg == "-v" || arg == "--verbose") {
      verbose = true;
    } else {
      std::fprintf(
          stderr, "usage: %s [--data DIR] [--skip FILE] [--backend NAME]... [--filter TEXT] [-v]\n",
          argv[0]);
      return 2;
    }
  }
  try {
    if (!fs::is_directory(data)) {
      std::printf("conformance: %s not found (install libonnx-testdata); nothing to run\n",
                  data.c_str());
      return 0;
    }
    if (backends.empty()) {
      // Every backend of this build that can run here (a GPU backend without a GPU says why).
      for (const auto& name : backend_names()) {
        std::string why;
        if (make_backend(name)->available(&why)) {
          backends.push_back(name);
        } else {
          std::printf("conformance [%s]: skipped, not available here: %s\n", name.c_str(),
                      why.c_str());
        }
      }
    }
    const auto skips = read_skip_list(skip_path);
    std::set<std::string> used_skips;
    std::map<std::string, Counts> counts;
    std::map<std::string, int> skip_reasons;
    std::vector<std::string> failures;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
      const fs::path dir = fs::path(data) / suite;
      if (!fs::is_directory(dir)) continue;
      std::vector<fs::path> tests;
      for (const auto& e : fs::directory_iterator(dir)) {
        if (fs::exists(e.path() / "model.onnx")) tests.push_back(e.path());
      }
      std::sort(tests.begin(), tests.end());
      for (const auto& test : tests) {
        const std::string name = suite + "/" + test.filename().string();
        if (!filter.empty() && name.find(filter) == std::string::npos) continue;
        auto skip_all = [&](const std::string& reason) {
          for (const auto& b : backends) ++counts[b].skipped;
          ++skip_reasons[reason.substr(0, reason.find(' ', 16))];
          if (verbose) std::printf("SKIP %s: %s\n", name.c_str(), reason.c_str());
        };
        if (auto it = skips.find(name); it != skips.end()) {
          used_skips.insert(name);
          skip_all("skip list: " + it->second);
          continue;
        }
        const auto reason = unsupported_reason(test / "model.onnx");
        if (!reason.empty()) {
          skip_all(reason);
          continue;
        }
        // Data sets; the first one fixes the input shapes.
        std::vector<fs::path> sets;
        for (const auto& e : fs::directory_iterator(test)) {
          if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
            sets.push_back(e.path());
          }
        }
        std::sort(sets.begin(), sets.end());
        auto record_failure = [&](const std::string& backend, const std::string& why) {
          ++counts[backend].failed;
          failures.push_back(fmt::format("FAIL [{}] {}: {}", backend, name, why));
          if (verbose) std::printf("%s\n", failures.back().c_str());
        };
        std::vector<std::vector<Tensor>> inputs, outputs;
        try {
          for (const auto& set : sets) {
            std::vector<Tensor> in, out;
            for (const auto& f : sorted_files(set, "input_"))
              in.push_back(read_tensor_pb(f.string()));
            for (const auto& f : sorted_files(set, "output_"))
              out.push_back(read_tensor_pb(f.string()));
            inputs.push_back(std::move(in));
            outputs.push_back(std::move(out));
          }
        } catch (const std::exception& e) {
          for (const auto& b : backends) record_failure(b, std::string("test data: ") + e.what());
          continue;
        }
        // Inputs the IR needs as constants (shapes, axes, pads, bounds) are bound from the data
        // set, one import per data set then.
        const auto input_names = graph_input_names(test / "model.onnx");
        std::set<std::string> bound;
        auto import_for = [&](std::size_t s) {
          ImportOptions options;
          for (std::size_t i = 0; i < input_names.size() && s < inputs.size(); ++i) {
            if (i >= inputs[s].size()) break;
            if (bound.count(input_names[i])) {
              options.constants[input_names[i]] = inputs[s][i];
            } else {
              options.input_shapes[input_names[i]] = inputs[s][i].shape();
            }
          }
          for (int attempt = 0;; ++attempt) {
            try {
              return import_onnx((test / "model.onnx").string(), options);
            } catch (const Error& e) {
              const std::string message = e.what();
              bool retried = false;
              for (std::size_t i = 0; i < input_names.size() && attempt < 8; ++i) {
                const auto needle = "input '" + input_names[i] + "' must be a constant";
                if (message.find(needle) != std::string::npos && s < inputs.size() &&
                    i < inputs[s].size()) {
                  bound.insert(input_names[i]);
                  options.constants[input_names[i]] = inputs[s][i];
                  options.input_shapes.erase(input_names[i]);
                  retried = true;
                }
              }
              if (!retried) throw;
            }
          }
        };
        std::vector<Graph> graphs;
        try {
          graphs.push_back(import_for(0));
          for (std::size_t s = 1; s < inputs.size() && !bound.empty(); ++s) {
            graphs.push_back(import_for(s));
          }
        } catch (const std::exception& e) {
          for (const auto& b : backends) record_failure(b, std::string("import: ") + e.what());
          continue;
        }
        for (const auto& backend_name : backends) {
          try {
            const auto backend = make_backend(backend_name);
            std::string problem;
            bool backend_skipped = false;
            for (std::size_t s = 0; s < inputs.size() && problem.empty(); ++s) {
              const Graph& graph = graphs[std::min(s, graphs.size() - 1)];
              std::unique_ptr<Program> program;
              try {
                program = backend->compile(graph, {});
              } catch (const Error& e) {
                const std::string message = e.what();
                if (backend_name != "reference" &&
                    message.find("cannot run node") != std::string::npos) {
                  backend_skipped = true;
                  if (verbose) {
                    std::printf("SKIP [%s] %s: %s\n", backend_name.c_str(), name.c_str(),
                                message.c_str());
                  }
                  break;
                }
                throw;
              }
              for (std::size_t i = 0; i < inputs[s].size() && i < input_names.size(); ++i) {
                if (graph.is_input(input_names[i]))
                  program->set_input(input_names[i], inputs[s][i]);
              }
              program->forward(Mode::inference);
              for (std::size_t o = 0; o < outputs[s].size() && problem.empty(); ++o) {
                if (o >= graph.outputs.size()) {
                  problem = fmt::format("the graph has {} outputs, the data set {}",
                                        graph.outputs.size(), outputs[s].size());
                  break;
                }
                problem =
                    compare(program->fetch(graph.outputs[o]), outputs[s][o], graph.outputs[o]);
              }
            }
            if (backend_skipped) {
              ++counts[backend_name].skipped;
              ++skip_reasons["backend " + backend_name + " cannot run an op"];
              continue;
            }
            if (problem.empty()) {
              ++counts[backend_name].passed;
              if (verbose) std::printf("PASS [%s] %s\n", backend_name.c_str(), name.c_str());
            } else {
              record_failure(backend_name, problem);
            }
          } catch (const std::exception& e) {
            record_failure(backend_name, e.what());
          }
        }
      }
    }
    for (const auto& f : failures) std::printf("%s\n", f.c_str());
    if (verbose) {
      for (const auto& [reason, n] : skip_reasons)
        std::printf("skipped %4d: %s\n", n, reason.c_str());
    }
    for (const auto& [name, reason] : skips) {
      if (!used_skips.count(name) && filter.empty()) {
        std::printf("note: skip-list entry %s matches no test\n", name.c_str());
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bool ok = true;
    for (const auto& b : backends) {
      const auto& c = counts[b];
      std::printf("conformance [%s]: %d passed, %d failed, %d skipped\n", b.c_str(), c.passed,
                  c.failed, c.skipped);
      ok = ok && c.failed == 0;
    }
    std::printf("conformance: %.1f s\n", seconds);
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conformance: error: %s\n", e.what());
    return 2;
  }
}
