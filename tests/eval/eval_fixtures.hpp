// Tiny deterministic fixtures for the eval tests: temporary folders, predictions, run folders.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/io.hpp"
#include "eval/metrics.hpp"
#include "tests/support/temp_dir.hpp"

namespace onnxforge::eval::testing {

using onnxforge::testing::TempDir;

// n predictions, labels alternating 0/1, scores separated by `separation` with a deterministic
// wobble (no randomness: the same on every machine).
inline std::vector<Prediction> synthetic_predictions(int n, double separation) {
  std::vector<Prediction> out;
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    const double wobble = std::sin(i * 12.9898) * 1.7;
    const double logit = separation * (label == 1 ? 1 : -1) + wobble;
    out.push_back({"faces/img_" + std::to_string(i) + ".jpg", label, 1 / (1 + std::exp(-logit))});
  }
  return out;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  write_file_atomic(path, text);
}

// A run folder as DESIGN.md describes it; `complete` = false leaves out summary.txt and test/.
inline void make_run(const std::filesystem::path& dir, const std::string& model, double separation,
                     bool complete = true) {
  write_text(dir / "config.toml",
             "[model]\nname = \"" + model + "\"\n\n[train]\nepochs = 4\nbatch_size = 32\n");
  if (complete)
    write_text(dir / "summary.txt",
               "layer        output         params\nconv1        32x98x98          896\n"
               "dense        1                 129\ntotal                         1025\n");
  std::string history = history_header();
  for (int e = 1; e <= 4; ++e)
    history += history_row({static_cast<double>(e), 0.7 / e, 0.6 + 0.08 * e, 0.75 / e + 0.05,
                            0.58 + 0.07 * e, 1e-3, 10.0 + e, 500.0 + 20 * e});
  write_text(dir / "history.csv", history);
  MetricsOptions options;
  options.bootstrap_resamples = 100;
  for (const char* split : {"val", "test"}) {
    if (!complete && std::string(split) == "test") continue;
    const auto predictions = synthetic_predictions(60, separation);
    write_predictions_csv(dir / split / "predictions.csv", predictions);
    write_metrics_json(dir / split / "metrics.json", compute_metrics(predictions, options),
                       {{"split", split}});
  }
}

}  // namespace onnxforge::eval::testing
