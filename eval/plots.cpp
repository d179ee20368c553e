#include "eval/plots.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.hpp"

extern char** environ;

namespace onnxforge::eval {
namespace fs = std::filesystem;

std::optional<fs::path> find_gnuplot() {
  if (const char* forced = std::getenv("ONNXFORGE_GNUPLOT")) {
    if (*forced == '\0') return std::nullopt;
    fs::path p(forced);
    if (::access(p.c_str(), X_OK) == 0) return p;
    return std::nullopt;
  }
  const char* path_env = std::getenv("PATH");
  if (!path_env) return std::nullopt;
  std::stringstream dirs(path_env);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / "gnuplot";
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

std::string gnuplot_missing_warning() {
  return "gnuplot not found on PATH: metrics were written but no plots (their .gp scripts and "
         "data were); install it with `apt-get install gnuplot-nox` and rerun";
}

std::string gnuplot_quote(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\'')
      out += "''";
    else if (ch == '\n' || ch == '\r')
      out += ' ';
    else
      out += ch;
  }
  out += '\'';
  return out;
}

namespace {

// Text inside a double-quoted gnuplot string (where \n is a line break).
std::string gnuplot_escape_double_quoted(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\\' || ch == '"') out += '\\';
    out += (ch == '\n' || ch == '\r') ? ' ' : ch;
  }
  return out;
}

}  // namespace

Plotter::Plotter(fs::path dir) : dir_(std::move(dir)), gnuplot_(find_gnuplot()) {}

namespace {

// Runs `gnuplot script` in `dir`, stdin from /dev/null, stdout+stderr to `log`. Returns the exit
// status, or -1 when it could not start.
int run_gnuplot(const fs::path& gnuplot, const fs::path& dir, const std::string& script,
                const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::string program = gnuplot.string();
  std::string arg = script;
  char* argv[] = {program.data(), arg.data(), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string first_error_line(const fs::path& log) {
  try {
    std::stringstream lines(read_file(log));
    std::string line, first;
    while (std::getline(lines, line)) {
      if (line.find_first_not_of(" \t^") == std::string::npos) continue;
      if (first.empty()) first = line;
      if (line.find("rror") != std::string::npos) return line;
    }
    return first;
  } catch (const std::exception&) {
    return "no log";
  }
}

// The part of every script that writes STEM.png and STEM.svg from the same plot command.
std::string output_loop(const std::string& stem, const std::string& plot_command, int width,
                        int height) {
  return fmt::format(
      "do for [format in \"png svg\"] {{\n"
      "  if (format eq \"png\") {{\n"
      "    if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {{\n"
      "      set terminal pngcairo size {0},{1} noenhanced font \"Sans,12\"\n"
      "    }} else {{\n"
      "      set terminal png size {0},{1} noenhanced\n"
      "    }}\n"
      "  }} else {{\n"
      "    set terminal svg size {0},{1} dynamic noenhanced font \"Sans,12\" "
      "background rgb \"white\"\n"
      "  }}\n"
      "  set output {2}.\".\".format\n"
      "  {3}\n"
      "  unset output\n"
      "}}\n",
      width, height, gnuplot_quote(stem), plot_command);
}

std::string header(const std::string& stem, const std::string& what) {
  return fmt::format(
      "# onnxforge figure: {}\n"
      "# Restyle freely, then run `gnuplot {}.gp` in this folder: it rewrites {}.png and {}.svg.\n"
      "set datafile missing '?'\n",
      what, stem, stem, stem);
}

// The header of a figure on [0, 1] x [0, 1] (ROC, reliability): square, gridded, tics 0.1.
std::string unit_square_header(const std::string& stem, const std::string& title,
                               const std::string& xlabel, const std::string& ylabel,
                               const std::string& key) {
  return header(stem, title) + fmt::format(
                                   "set title {}\n"
                                   "set xlabel {}\n"
                                   "set ylabel {}\n"
                                   "set xrange [0:1]\nset yrange [0:1.001]\nset size square\n"
                                   "set key {} box opaque\n"
                                   "set grid lc rgb '#dddddd'\n"
                                   "set xtics 0.1\nset ytics 0.1\n",
                                   gnuplot_quote(title), gnuplot_quote(xlabel),
                                   gnuplot_quote(ylabel), key);
}

std::string dat(double value) { return std::isfinite(value) ? fmt::format("{:.10g}", value) : "?"; }

}  // namespace

std::optional<fs::path> Plotter::render(const std::string& stem, const std::string& script,
                                        const std::string& data) {
  write_file_atomic(dir_ / (stem + ".dat"), data);
  write_file_atomic(dir_ / (stem + ".gp"), script);
  if (!gnuplot_) {
    if (!warned_missing_) warnings_.push_back(gnuplot_missing_warning());
    warned_missing_ = true;
    return std::nullopt;
  }
  const fs::path log = dir_ / (stem + ".gnuplot.log");
  const int rc = run_gnuplot(*gnuplot_, dir_, stem + ".gp", log);
  const fs::path png = dir_ / (stem + ".png");
  std::error_code ec;
  if (rc != 0 || !fs::exists(png, ec) || fs::file_size(png, ec) == 0) {
    warnings_.push_back(fmt::format("gnuplot failed on {} (exit {}): {}",
                                    (dir_ / (stem + ".gp")).string(), rc, first_error_line(log)));
    return std::nullopt;
  }
  fs::remove(log, ec);
  return png;
}

std::optional<fs::path> Plotter::roc(std::span<const RocSeries> series, const std::string& stem,
                                     const std::string& title) {
  std::string data, plots;
  int block = 0;
  for (const auto& s : series) {
    const bool drawable = s.auc && !s.curve.fpr.empty() && std::isfinite(s.curve.fpr.back()) &&
                          std::isfinite(s.curve.tpr.back());
    if (!drawable) {
      plots += fmt::format("keyentry title {}, ",
                           gnuplot_quote(s.label + " (AUC undefined: one class only)"));
      continue;
    }
    data += fmt::format("# {}\n# fpr tpr\n", s.label);
    for (std::size_t i = 0; i < s.curve.fpr.size(); ++i)
      data += fmt::format("{} {}\n", dat(s.curve.fpr[i]), dat(s.curve.tpr[i]));
    data += "\n\n";
    plots += fmt::format("'{}.dat' index {} using 1:2 with lines lw 2.5 title {}, ", stem, block++,
                         gnuplot_quote(fmt::format("{} (AUC = {:.4f})", s.label, *s.auc)));
  }
  if (data.empty()) data = "# no curve: every series lacks one class\n";
  plots += "x with lines dt 2 lw 1.5 lc rgb '#888888' title 'chance (AUC = 0.5)'";
  std::string script = unit_square_header(stem, title, "False positive rate (1 - specificity)",
                                          "True positive rate (sensitivity)", "bottom right");
  script += output_loop(stem, "plot " + plots, 760, 700);
  return render(stem, script, data);
}

std::optional<fs::path> Plotter::reliability(std::span<const ReliabilitySeries> series,
                                             const std::string& stem, const std::string& title) {
  std::size_t largest = 1;
  for (const auto& s : series)
    for (const auto& b : s.bins) largest = std::max(largest, b.count);
  std::string data, plots;
  int block = 0;
  for (const auto& s : series) {
    std::string rows;
    for (const auto& b : s.bins)
      if (b.count > 0 && b.mean_score && b.fraction_label_1)
        rows += fmt::format("{} {} {} {}\n", dat(*b.mean_score), dat(*b.fraction_label_1), b.count,
                            dat(0.6 + 1.6 * std::sqrt(static_cast<double>(b.count) /
                                                      static_cast<double>(largest))));
    if (rows.empty()) {
      plots += fmt::format("keyentry title {}, ", gnuplot_quote(s.label + " (no scores)"));
      continue;
    }
    data +=
        fmt::format("# {}\n# mean_score fraction_label_1 count pointsize\n{}\n\n", s.label, rows);
    const std::string label = s.ece ? fmt::format("{} (ECE = {:.4f})", s.label, *s.ece) : s.label;
    plots += fmt::format(
        "'{}.dat' index {} using 1:2:4 with linespoints lw 2 pt 7 ps variable title {}, ", stem,
        block++, gnuplot_quote(label));
  }
  if (data.empty()) data = "# no bin holds a score\n";
  plots += "x with lines dt 2 lw 1.5 lc rgb '#888888' title 'perfect calibration'";
  std::string script =
      unit_square_header(stem, title, "Mean score in the bin (predicted probability)",
                         "Fraction of label 1 in the bin", "top left");
  script += output_loop(stem, "plot " + plots, 760, 700);
  return render(stem, script, data);
}

std::optional<fs::path> Plotter::confusion(const ConfusionMatrix& cm, int positive_label,
                                           const std::array<std::string, 2>& class_names,
                                           const std::string& stem, const std::string& title) {
  // counts[true][predicted] in label order.
  std::int64_t counts[2][2];
  const int pos = positive_label == 0 ? 0 : 1, neg = 1 - pos;
  counts[pos][pos] = cm.tp;
  counts[pos][neg] = cm.fn;
  counts[neg][neg] = cm.tn;
  counts[neg][pos] = cm.fp;
  const double total = static_cast<double>(cm.tp + cm.fp + cm.tn + cm.fn);
  std::string data = "# predicted true fraction_of_true_class count\n";
  std::string labels;
  int label_id = 1;
  for (int t = 0; t < 2; ++t) {
    const double row = static_cast<double>(counts[t][0] + counts[t][1]);
    for (int p = 0; p < 2; ++p) {
      const double c = static_cast<double>(counts[t][p]);
      const double of_row = row > 0 ? c / row : 0, of_all = total > 0 ? c / total : 0;
      data += fmt::format("{} {} {} {}\n", p, t, dat(of_row), counts[t][p]);
      labels += fmt::format(
          "set label {} \"{}\\n{:.1f}% of true {}\\n{:.1f}% of all\" at {},{} center front "
          "font \",14\"\n",
          label_id++, counts[t][p], of_row * 100,
          gnuplot_escape_double_quoted(class_names[static_cast<std::size_t>(t)]), of_all * 100, p,
          t);
    }
    data += "\n";
  }
  std::string script = header(stem, title);
  script += fmt::format(
      "set title {}\n"
      "unset key\nunset colorbox\nset size square\n"
      "set xrange [-0.5:1.5]\nset yrange [1.5:-0.5]\n"
      "set xtics ({} 0, {} 1) scale 0\nset ytics ({} 0, {} 1) scale 0\n"
      "set xlabel 'Predicted class'\nset ylabel 'True class'\n"
      "set cbrange [0:1]\n"
      "set palette defined (0 '#f7fbff', 0.5 '#9ecae1', 1 '#3182bd')\n"
      "{}",
      gnuplot_quote(title), gnuplot_quote(class_names[0]), gnuplot_quote(class_names[1]),
      gnuplot_quote(class_names[0]), gnuplot_quote(class_names[1]), labels);
  script += output_loop(stem, fmt::format("plot '{}.dat' using 1:2:3 with image", stem), 640, 600);
  return render(stem, script, data);
}

std::optional<fs::path> Plotter::history_plot(const History& history, const std::string& stem,
                                              const std::string& title, bool loss) {
  std::string data =
      loss ? "# epoch train_loss val_loss\n" : "# epoch train_accuracy val_accuracy\n";
  bool any_train = false, any_val = false;
  for (const auto& e : history.epochs) {
    const double train = loss ? e.train_loss : e.train_accuracy;
    const double val = loss ? e.val_loss : e.val_accuracy;
    any_train = any_train || std::isfinite(train);
    any_val = any_val || std::isfinite(val);
    data += fmt::format("{} {} {}\n", dat(e.epoch), dat(train), dat(val));
  }
  const char* what = loss ? "loss" : "accuracy";
  if (!any_train && !any_val) {
    warnings_.push_back(fmt::format("no {} values in the history: no {} plot", what, stem));
    return std::nullopt;
  }
  std::string plots;
  if (any_train)
    plots +=
        fmt::format("'{}.dat' using 1:2 with linespoints lw 2 pt 7 ps 0.8 title 'training'", stem);
  if (any_val)
    plots += fmt::format(
        "{}'{}.dat' using 1:3 with linespoints lw 2 pt 5 ps 0.8 title "
        "'validation'",
        any_train ? ", " : "", stem);
  std::string script = header(stem, title);
  script += fmt::format(
      "set title {}\nset xlabel 'Epoch'\nset ylabel '{}'\n"
      "set key {} right box opaque\nset grid lc rgb '#dddddd'\n"
      "set xtics 1\nset mxtics 1\n"
      "if ({} > 20) {{ set xtics autofreq }}\n",
      gnuplot_quote(title), loss ? "Loss" : "Accuracy", loss ? "top" : "bottom",
      history.epochs.size());
  script += output_loop(stem, "plot " + plots, 800, 500);
  return render(stem, script, data);
}

std::optional<fs::path> Plotter::loss(const History& history, const std::string& stem,
                                      const std::string& title) {
  return history_plot(history, stem, title, true);
}

std::optional<fs::path> Plotter::accuracy(const History& history, const std::string& stem,
                                          const std::string& title) {
  return history_plot(history, stem, title, false);
}

std::optional<fs::path> Plotter::image_grid(std::span<const ImagePanel> panels, int columns,
                                            const std::string& stem, const std::string& title) {
  if (panels.empty()) {
    warnings_.push_back(fmt::format("no pictures for {}: no figure", stem));
    return std::nullopt;
  }
  columns = std::max(1, std::min<int>(columns, static_cast<int>(panels.size())));
  const int rows = (static_cast<int>(panels.size()) + columns - 1) / columns;
  int cell_w = 1, cell_h = 1;
  for (const auto& p : panels) {
    if (p.width <= 0 || p.height <= 0 ||
        p.rgb.size() != static_cast<std::size_t>(p.width) * p.height * 3) {
      throw Error(fmt::format("{}: picture '{}' has {} bytes for {}x{} RGB", stem, p.caption,
                              p.rgb.size(), p.width, p.height));
    }
    cell_w = std::max(cell_w, p.width);
    cell_h = std::max(cell_h, p.height);
  }
  // Panel i sits in cell (i % columns, i / columns); y grows downwards, as in the images.
  const int gap = std::max(4, cell_w / 12), caption_h = std::max(14, cell_h / 6);
  const int pitch_x = cell_w + gap, pitch_y = cell_h + caption_h + gap;
  std::string data = "# x y r g b (one block per picture)\n";
  std::string labels;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const auto& p = panels[i];
    const int x0 = static_cast<int>(i % columns) * pitch_x + (cell_w - p.width) / 2;
    const int y0 = static_cast<int>(i / columns) * pitch_y + (cell_h - p.height) / 2;
    data += fmt::format("# {}\n", p.caption);
    for (int y = 0; y < p.height; ++y) {
      for (int x = 0; x < p.width; ++x) {
        const std::uint8_t* px = &p.rgb[(static_cast<std::size_t>(y) * p.width + x) * 3];
        data += fmt::format("{} {} {} {} {}\n", x0 + x, y0 + y, px[0], px[1], px[2]);
      }
    }
    data += "\n\n";
    labels += fmt::format("set label {} {} at {},{} center front font \",10\"\n", i + 1,
                          gnuplot_quote(p.caption),
                          static_cast<int>(i % columns) * pitch_x + cell_w / 2.0,
                          static_cast<int>(i / columns) * pitch_y + cell_h + caption_h * 0.55);
  }
  const int total_w = columns * pitch_x - gap, total_h = rows * pitch_y - gap;
  std::string script = header(stem, title);
  script += fmt::format(
      "set title {}\nunset key\nunset border\nunset tics\nunset colorbox\n"
      "set xrange [-0.5:{}]\nset yrange [{}:-0.5]\nset size ratio -1\n"
      "set lmargin 1\nset rmargin 1\nset bmargin 1\n{}",
      gnuplot_quote(title), total_w - 0.5, total_h - 0.5, labels);
  // About 2 screen pixels per image pixel for 100 px pictures, at most 1600 px wide.
  const int out_w = std::min(1600, std::max(400, total_w * 2 + 40));
  const int out_h =
      std::max(200, static_cast<int>(out_w * static_cast<double>(total_h) / total_w) + 60);
  std::string plot = "plot ";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    plot +=
        fmt::format("{}'{}.dat' index {} using 1:2:3:4:5 with rgbimage", i ? ", " : "", stem, i);
  }
  script += output_loop(stem, plot, out_w, out_h);
  return render(stem, script, data);
}

}  // namespace onnxforge::eval
