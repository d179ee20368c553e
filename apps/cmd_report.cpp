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
  std::string groups;
  std::string threshold_rule = "youden";
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
      sub.add_option("--groups", args->groups,
                     "groups CSV (path,<attribute>,...; paths relative to its folder) for metrics "
                     "per subgroup (also written to subgroups.json)");
      sub.add_option("--choose-threshold", args->threshold_rule,
                     "how each run's threshold is chosen on validation and applied to test: "
                     "youden, or sensitivity:T (the strictest threshold reaching sensitivity T)")
          ->capture_default_str();
      sub.add_flag("--no-plots", args->no_plots, "skip the gnuplot figures");
      sub.callback([args] {
        eval::ReportOptions options;
        options.threshold_rule =
            eval::parse_threshold_rule(args->threshold_rule, "--choose-threshold");
        if (!args->groups.empty()) {
          std::error_code ec;
          if (!fs::is_regular_file(args->groups, ec))
            throw onnxforge::Error(
                fmt::format("report: groups file {} does not exist", args->groups));
          options.groups = args->groups;
        }
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
        options.title = args->title;
        options.plots = !args->no_plots;
        const auto out = eval::write_report(runs, args->out, options);
        fmt::print("wrote {} and {} ({} figures)\n", out.html.string(), out.markdown.string(),
                   out.figures.size());
        if (out.subgroups) fmt::print("wrote {}\n", out.subgroups->string());
        std::set<std::string> seen;
        for (const auto& w : out.warnings)
          if (seen.insert(w).second) std::fprintf(stderr, "onnxforge: warning: %s\n", w.c_str());
      });
    }};

}  // namespace
