// Figures drawn by gnuplot, run as a subprocess (`gnuplot STEM.gp` inside the plot folder). Each
// figure leaves STEM.gp (the script, to restyle and rerun), STEM.dat (its data), STEM.png
// (pngcairo when gnuplot has it, else png) and STEM.svg. Without gnuplot the scripts and data
// are still written, no image is made, and one warning says how to get plots.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/io.hpp"
#include "eval/metrics.hpp"

namespace onnxforge::eval {

// $ONNXFORGE_GNUPLOT when set (an empty value means "no gnuplot"), else `gnuplot` on PATH.
std::optional<std::filesystem::path> find_gnuplot();

// The one warning printed when gnuplot is missing.
std::string gnuplot_missing_warning();

// One picture of an image grid: 8-bit RGB, row 0 at the top.
struct ImagePanel {
  std::string caption;  // under the picture (one line)
  int height = 0, width = 0;
  std::vector<std::uint8_t> rgb;  // height * width * 3, HWC
};

struct RocSeries {
  std::string label;  // legend text, the AUC is appended
  RocCurve curve;
  std::optional<double> auc;
};

struct ReliabilitySeries {
  std::string label;  // legend text, the ECE is appended
  std::vector<CalibrationBin> bins;
  std::optional<double> ece;
};

class Plotter {
 public:
  explicit Plotter(std::filesystem::path dir);

  bool has_gnuplot() const { return gnuplot_.has_value(); }
  const std::filesystem::path& dir() const { return dir_; }

  // Each returns the PNG's path, or nullopt when no image was made (a warning says why).
  std::optional<std::filesystem::path> roc(std::span<const RocSeries> series,
                                           const std::string& stem, const std::string& title);
  // Rows: true class, columns: predicted class, both in label order (0, 1).
  std::optional<std::filesystem::path> confusion(const ConfusionMatrix& cm, int positive_label,
                                                 const std::array<std::string, 2>& class_names,
                                                 const std::string& stem, const std::string& title);
  // Reliability diagram: fraction of label 1 against the mean score of each non-empty bin, one
  // line per series (points sized by the bin's count), over the diagonal of perfect calibration.
  std::optional<std::filesystem::path> reliability(std::span<const ReliabilitySeries> series,
                                                   const std::string& stem,
                                                   const std::string& title);
  std::optional<std::filesystem::path> loss(const History& history, const std::string& stem,
                                            const std::string& title);
  std::optional<std::filesystem::path> accuracy(const History& history, const std::string& stem,
                                                const std::string& title);

  // Panels side by side, `columns` per row, each under its caption, drawn by gnuplot `with
  // rgbimage` from STEM.dat (x y r g b per pixel, one block per panel): grad-CAM maps, galleries.
  std::optional<std::filesystem::path> image_grid(std::span<const ImagePanel> panels, int columns,
                                                  const std::string& stem,
                                                  const std::string& title);

  // Warnings so far (gnuplot missing: once; a failed gnuplot run: its first error line).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::optional<std::filesystem::path> render(const std::string& stem, const std::string& script,
                                              const std::string& data);
  std::optional<std::filesystem::path> history_plot(const History& history, const std::string& stem,
                                                    const std::string& title, bool loss);

  std::filesystem::path dir_;
  std::optional<std::filesystem::path> gnuplot_;
  std::vector<std::string> warnings_;
  bool warned_missing_ = false;
};

// A gnuplot string literal (single-quoted, '' for a quote, no line breaks).
std::string gnuplot_quote(const std::string& text);

}  // namespace onnxforge::eval
