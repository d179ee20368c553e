// report.html from the report's model: self-contained (CSS inline, figures inlined as base64 PNG).
#include <fmt/format.h>

#include "eval/report_model.hpp"

namespace onnxforge::eval {
namespace {

// `quotes`: also the quotes, for attribute values; element content needs only &, < and >.
std::string escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += quotes ? "&quot;" : "\"";
        break;
      case '\'':
        out += quotes ? "&#39;" : "'";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

const char* kCss = R"css(
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --head:#f0f4f8; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--fg); background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 32px 64px; }
header.top { background: linear-gradient(90deg, #0b3d6e, #0b5cad); color: #fff; padding: 28px 32px; }
header.top h1 { margin: 0 0 4px; font-size: 1.9rem; font-weight: 650; }
header.top p { margin: 0; opacity: .85; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: 4px; margin-top: 40px; color: #0b3d6e; }
h3 { margin-top: 28px; }
table { border-collapse: collapse; width: 100%; margin: 12px 0 8px; font-size: .92rem; }
th, td { border: 1px solid var(--line); padding: 6px 10px; text-align: right; white-space: nowrap; }
th { background: var(--head); font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.best { font-weight: 700; color: var(--accent); }
span.ci { color: var(--muted); font-size: .8rem; font-weight: 400; }
.scroll { overflow-x: auto; }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 12px;
  overflow-x: auto; font-size: .82rem; line-height: 1.35; margin: 8px 0; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; }
.columns h4 { margin: 4px 0; }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); gap: 20px;
  align-items: start; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: .88rem; margin-top: 6px; }
.missing { color: var(--muted); font-style: italic; padding: 24px; text-align: center;
  background: #f6f8fa; border-radius: 6px; }
.note { color: var(--muted); font-size: .9rem; }
ul.warnings li { color: #8a4b00; }
p.caption { font-weight: 600; margin: 16px 0 0; }
ul.notes { color: var(--muted); font-size: .9rem; }
.ethics { background: #fff8e6; border: 1px solid #f0d58c; border-radius: 8px; padding: 4px 20px; }
.ethics li { margin: 8px 0; }
footer { color: var(--muted); font-size: .85rem; margin-top: 48px; }
)css";

// Sets data-figures-loaded="OK/TOTAL" and data-visible="NAMES" on <html> once the page has
// loaded (the render test reads them).
const char* kLoadScript = R"js(
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.documentElement.setAttribute('data-figures-loaded', ok + '/' + images.length);
  // data-visible: the data-check names of the elements laid out with a size on the page.
  var seen = Array.prototype.slice.call(document.querySelectorAll('[data-check]')).filter(
    function (e) { var r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 &&
      getComputedStyle(e).visibility !== 'hidden'; }).map(function (e) {
    return e.getAttribute('data-check'); });
  document.documentElement.setAttribute('data-visible', seen.join(' '));
});
)js";

// A table of numbers scrolls sideways when it is too wide and has a head and a body; a listing
// (the layers) is plain.
std::string html_table(const ReportTable& t, const std::string& check = "") {
  std::string h =
      t.caption.empty() ? "" : fmt::format("<p class=\"caption\">{}</p>\n", html_escape(t.caption));
  const std::string attr =
      check.empty() ? "" : fmt::format(" data-check=\"{}\"", html_escape(check));
  h += t.numbers ? fmt::format("<div class=\"scroll\"{}><table>\n<thead><tr>", attr)
                 : fmt::format("<table{}><tr>", attr);
  for (const auto& title : t.header) h += fmt::format("<th>{}</th>", html_escape(title));
  h += t.numbers ? "</tr></thead>\n<tbody>\n" : "</tr>\n";
  for (const auto& row : t.rows) {
    h += "<tr>";
    for (const auto& cell : row)
      h += fmt::format(
          "<td{}>{}{}</td>", cell.best ? " class=\"best\"" : "", html_escape(cell.text),
          cell.interval.empty()
              ? ""
              : fmt::format("<br><span class=\"ci\">{}</span>", html_escape(cell.interval)));
    h += "</tr>\n";
  }
  h += t.numbers ? "</tbody></table></div>\n" : "</table>\n";
  return h;
}

std::string text_block(const ReportText& t) {
  return t.text ? fmt::format("<pre>{}</pre>", html_escape(*t.text))
                : fmt::format("<p class=\"missing\">{}</p>", html_escape(t.missing));
}

std::string figure(const ReportFigure& f) {
  std::string h = f.key.empty()
                      ? std::string("<figure>")
                      : fmt::format("<figure data-check=\"figure-{}\">", html_escape(f.key));
  if (!f.png.empty())
    h += fmt::format("<img alt=\"{}\" src=\"data:image/png;base64,{}\">", html_escape(f.caption),
                     base64_encode(f.png));
  else
    h += fmt::format("<div class=\"missing\">Figure not available: {}</div>",
                     html_escape(f.missing.empty() ? "not drawn" : f.missing));
  h += fmt::format("<figcaption>Figure {}. {}</figcaption></figure>\n", f.number,
                   html_escape(f.caption));
  return h;
}

// Calibration, Threshold, Subgroups: a heading, the intro, each split's tables and notes. The
// first table carries data-check="<id>-table" (the render test looks for it on screen).
std::string part(const ReportPart& p) {
  std::string h = fmt::format("<h2 id=\"{}\">{}</h2>\n", html_escape(p.id), html_escape(p.title));
  for (const auto& para : p.intro)
    h += fmt::format("<p class=\"note\">{}</p>\n", html_escape(para));
  if (p.sections.empty() && !p.missing.empty())
    h += fmt::format("<p class=\"missing\">{}</p>\n", html_escape(p.missing));
  bool first = true;
  for (const auto& sec : p.sections) {
    h += fmt::format("<h3>{}</h3>\n", html_escape(sec.title));
    for (const auto& t : sec.tables) {
      h += html_table(t, first ? p.id + "-table" : "");
      first = false;
    }
    if (!sec.notes.empty()) {
      h += "<ul class=\"notes\">\n";
      for (const auto& n : sec.notes) h += fmt::format("<li>{}</li>\n", html_escape(n));
      h += "</ul>\n";
    }
  }
  return h;
}

}  // namespace

std::string html_escape(std::string_view text) { return escape(text, /*quotes=*/true); }

std::string base64_encode(std::string_view bytes) {
  static constexpr char table[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto a = static_cast<unsigned char>(bytes[i]),
               b = static_cast<unsigned char>(bytes[i + 1]),
               c = static_cast<unsigned char>(bytes[i + 2]);
    out += table[a >> 2];
    out += table[((a & 3) << 4) | (b >> 4)];
    out += table[((b & 15) << 2) | (c >> 6)];
    out += table[c & 63];
  }
  if (i + 1 == bytes.size()) {
    const auto a = static_cast<unsigned char>(bytes[i]);
    out += table[a >> 2];
    out += table[(a & 3) << 4];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const auto a = static_cast<unsigned char>(bytes[i]),
               b = static_cast<unsigned char>(bytes[i + 1]);
    out += table[a >> 2];
    out += table[((a & 3) << 4) | (b >> 4)];
    out += table[(b & 15) << 2];
    out += '=';
  }
  return out;
}

std::string render_html(const ReportModel& model) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += fmt::format("<title>{}</title>\n<style>{}</style>\n<script>{}</script>\n</head>\n<body>\n",
                   html_escape(model.title), kCss, kLoadScript);
  std::string facts;
  for (const auto& fact : model.facts)
    facts += (facts.empty() ? "" : " &middot; ") + html_escape(fact);
  h += fmt::format("<header class=\"top\"><h1>{}</h1><p>{}</p></header>\n<main>\n",
                   html_escape(model.title), facts);

  h += "<h2>Metrics</h2>\n";
  for (const auto& split : model.metrics) {
    h += fmt::format("<h3>{}</h3>\n", html_escape(split.title));
    for (const auto& t : split.tables) h += html_table(t);
    if (!split.interval_note.empty())
      h += fmt::format("<p class=\"note\">{}{}</p>\n", html_escape(split.interval_note),
                       split.best_marked ? " The best value of each metric is in bold." : "");
  }
  if (model.metrics.empty()) h += "<p class=\"missing\">No metrics available.</p>\n";
  for (const auto* p : {&model.calibration, &model.threshold, &model.subgroups})
    if (!p->title.empty()) h += part(*p);

  if (model.training) {
    h += "<h2>Training</h2>\n" + html_table(*model.training);
    h += "<p class=\"note\">Images/s is the seconds-weighted mean of the per-epoch throughput in "
         "history.csv; training time is the sum of its epoch times.</p>\n";
  }

  h += "<h2>Figures</h2>\n";
  for (const auto& sec : model.figures) {
    h += fmt::format("<h3>{}</h3>\n<div class=\"figures\">\n", html_escape(sec.title));
    for (const auto& f : sec.figures) h += figure(f);
    h += "</div>\n";
    for (const auto& sub : sec.subsections) {
      h += fmt::format("<h4>{}</h4>\n", html_escape(sub.title));
      if (!sub.text.empty()) h += fmt::format("<p class=\"note\">{}</p>\n", html_escape(sub.text));
      h += "<div class=\"figures\">\n";
      for (const auto& f : sub.figures) h += figure(f);
      h += "</div>\n";
    }
  }
  h += fmt::format(
      "<p class=\"note\">Every figure is also in {}/ as PNG and SVG, with the gnuplot "
      "script (.gp) and data (.dat) that drew it: edit the script and run "
      "<code>gnuplot NAME.gp</code> there to restyle it.</p>\n",
      html_escape(model.plots_folder));

  if (model.run_details) {
    h += "<h2>Models</h2>\n";
    for (const auto& run : model.runs) {
      h += fmt::format("<h3>{}</h3>\n{}\n", html_escape(run.name), text_block(run.summary));
      if (run.layers) h += html_table(*run.layers);
    }
    h += "<h2>Configurations</h2>\n<div class=\"columns\">\n";
    for (const auto& run : model.runs)
      h += fmt::format("<div><h4>{}</h4>{}</div>\n", html_escape(run.name), text_block(run.config));
    h += "</div>\n";
  }

  h += "<h2>Notes and warnings</h2>\n";
  if (model.notes.empty()) {
    h += "<p class=\"note\">None.</p>\n";
  } else {
    h += "<ul class=\"warnings\">\n";
    for (const auto& n : model.notes) h += fmt::format("<li>{}</li>\n", html_escape(n));
    h += "</ul>\n";
  }

  h += fmt::format(
      "<h2>Limitations and ethical concerns</h2>\n<div class=\"ethics\">\n<p><em>{}</em></p>\n"
      "<ul>\n",
      html_escape(model.limitations_intro));
  for (const auto& c : model.limitations)
    h += fmt::format("<li><strong>{}</strong> {}</li>\n", escape(c.lead, /*quotes=*/false),
                     escape(c.text, /*quotes=*/false));
  h += "</ul>\n</div>\n";
  h += fmt::format(
      "<footer>onnxforge evaluation report &middot; {}</footer>\n</main>\n</body>\n</html>\n",
      model.generated);
  return h;
}

}  // namespace onnxforge::eval
