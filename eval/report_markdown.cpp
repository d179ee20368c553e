// report.md from the report's model: figures by relative path.
#include <fmt/format.h>

#include "eval/report_model.hpp"

namespace onnxforge::eval {
namespace {

std::string markdown_table(const ReportTable& t) {
  std::string md = t.caption.empty() ? "|" : fmt::format("**{}**\n\n|", t.caption);
  for (const auto& title : t.header) md += fmt::format(" {} |", title);
  md += "\n|";
  for (std::size_t c = 0; c < t.header.size(); ++c)
    md += c == 0 || !t.numbers ? " --- |" : " ---: |";
  md += "\n";
  for (const auto& row : t.rows) {
    md += "|";
    for (const auto& cell : row) {
      const char* bold = cell.best ? "**" : "";
      md += fmt::format(" {}{}{}{}{} |", bold, cell.text, cell.interval.empty() ? "" : " ",
                        cell.interval, bold);
    }
    md += "\n";
  }
  return md + "\n";
}

std::string text_block(const ReportText& t) {
  return t.text ? fmt::format("```{}\n{}\n```\n\n", t.language, *t.text) : t.missing + "\n\n";
}

std::string figure(const ReportFigure& f) {
  std::string md = !f.png.empty()
                       ? fmt::format("![Figure {}. {}]({})\n\n", f.number, f.caption, f.link)
                       : fmt::format("*Figure {} not available: {}.*\n\n", f.number, f.missing);
  return md + fmt::format("Figure {}. {}\n\n", f.number, f.caption);
}

std::string part(const ReportPart& p) {
  std::string md = fmt::format("## {}\n\n", p.title);
  for (const auto& para : p.intro) md += para + "\n\n";
  if (p.sections.empty() && !p.missing.empty()) md += p.missing + "\n\n";
  for (const auto& sec : p.sections) {
    md += fmt::format("### {}\n\n", sec.title);
    for (const auto& t : sec.tables) md += markdown_table(t);
    for (const auto& n : sec.notes) md += fmt::format("- {}\n", n);
    if (!sec.notes.empty()) md += "\n";
  }
  return md;
}

}  // namespace

std::string render_markdown(const ReportModel& model) {
  std::string facts;
  for (const auto& fact : model.facts) facts += (facts.empty() ? "" : " · ") + fact;
  std::string md = fmt::format("# {}\n\n{}\n\n", model.title, facts);

  md += "## Metrics\n\n";
  for (const auto& split : model.metrics) {
    md += fmt::format("### {}\n\n", split.title);
    for (const auto& t : split.tables) md += markdown_table(t);
    if (!split.interval_note.empty()) md += split.interval_note + "\n\n";
  }
  if (model.metrics.empty()) md += "No metrics available.\n\n";
  for (const auto* p : {&model.calibration, &model.threshold, &model.subgroups})
    if (!p->title.empty()) md += part(*p);

  if (model.training) {
    md += "## Training\n\n" + markdown_table(*model.training);
    md += "Images/s is the seconds-weighted mean of the per-epoch throughput in history.csv.\n\n";
  }

  md += "## Figures\n\n";
  for (const auto& sec : model.figures) {
    md += fmt::format("### {}\n\n", sec.title);
    for (const auto& f : sec.figures) md += figure(f);
    for (const auto& sub : sec.subsections) {
      md += fmt::format("#### {}\n\n", sub.title);
      if (!sub.text.empty()) md += sub.text + "\n\n";
      for (const auto& f : sub.figures) md += figure(f);
    }
  }
  md += fmt::format(
      "Every figure is also in {}/ as PNG and SVG, with the gnuplot script (.gp) and data "
      "(.dat) that drew it.\n\n",
      model.plots_folder);

  if (model.run_details) {
    md += "## Models\n\n";
    for (const auto& run : model.runs) {
      md += fmt::format("### {}\n\n", run.name) + text_block(run.summary);
      if (run.layers) md += markdown_table(*run.layers);
    }
    md += "## Configurations\n\n";
    for (const auto& run : model.runs)
      md += fmt::format("### {}\n\n", run.name) + text_block(run.config);
  }

  md += "## Notes and warnings\n\n";
  if (model.notes.empty()) {
    md += "None.\n\n";
  } else {
    for (const auto& n : model.notes) md += fmt::format("- {}\n", n);
    md += "\n";
  }

  md += fmt::format("## Limitations and ethical concerns\n\n*{}*\n\n", model.limitations_intro);
  for (const auto& c : model.limitations) md += fmt::format("- **{}** {}\n", c.lead, c.text);
  return md + "\n";
}

}  // namespace onnxforge::eval
