// `onnxforge report RUN_DIR... --out DIR`: report.html and report.md for one run folder, or a
// comparison of several.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "apps/command.hpp"
#include "core/error.hpp"
#include "eval/report.hpp"

namespace {

namespace fs = std::filesystem;
namespace eval = onnxforge::eval;

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out;
  std::string title;
  bool no_plots = false;
};

const onnxforge::cli::Registration registration{
    61, "report",
    "Write report.html (self-contained) and report.md for one run folder or a comparison of "
    "several: metric tables with intervals, training time, every figure, model summaries, "
    "configurations and a section on limitations and ethics. Missing pieces show as not "
    "available.",
    [](CLI::App& sub) {
      auto args = std::make_shared<ReportArgs>();
      sub.add_option("RUN_DIR", args->runs,
                     "run folders (config.toml, summary.txt, history.csv, val/, test/)")
          ->required();
      sub.add_option("--out", args->out, "output folder (report.html, report.md, plots/)")
          ->required();
      sub.add_option("--title", args->title, "report title");
      sub.add_flag("--no-plots", args->no_plots, "skip the gnuplot figures");
      sub.callback([args] {
        std::vector<eval::RunRecord> runs;
        std::set<std::string> names;
        for (const auto& dir : args->runs) {
          std::error_code ec;
          if (!fs::is_directory(dir, ec))
            throw onnxforge::Error(fmt::format("report: run folder {} does not exist", dir));
          auto run = eval::load_run(dir);
          // Two folders with the same name (a/run, b/run) get their parent's name too.
          if (!names.insert(run.name).second) {
            run.name = fs::absolute(dir).lexically_normal().parent_path().filename().string() +
                       "/" + run.name;
            names.insert(run.name);
          }
          runs.push_back(std::move(run));
        }
        eval::ReportOptions options;
        options.title = args->title;
        options.plots = !args->no_plots;
        const auto out = eval::write_report(runs, args->out, options);
        fmt::print("wrote {} and {} ({} figures)\n", out.html.string(), out.markdown.string(),
                   out.figures.size());
        std::set<std::string> seen;
        for (const auto& w : out.warnings)
          if (seen.insert(w).second) std::fprintf(stderr, "onnxforge: warning: %s\n", w.c_str());
      });
    }};

}  // namespace
