// Token heatmaps: each token of a text on the diverging palette (white at 0), as HTML a report
// embeds or save_html writes as a page.
#include "llmscope/figures.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "figures_plot.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/report.hpp"

namespace llmscope::figures {

namespace fs = std::filesystem;
using namespace detail;

// ---- Token heatmaps ----

namespace {

// A token as visible text: newlines as ↵ (then the break itself), tabs as → (then the tab).
std::string visible_token(const std::string& token) {
  std::string out;
  for (char c : sanitize_utf8(token)) {
    if (c == '\n') {
      out += "\xe2\x86\xb5\n";  // ↵
    } else if (c == '\t') {
      out += "\xe2\x86\x92\t";  // →
    } else if (c == '\r') {
      out += "\xe2\x90\x8d";  // ␍
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += "\xef\xbf\xbd";
    } else {
      out += c;
    }
  }
  return html_escape(out);
}

std::string css_rgb(uint32_t rgb) {
  return "rgb(" + std::to_string((rgb >> 16) & 0xff) + "," + std::to_string((rgb >> 8) & 0xff) +
         "," + std::to_string(rgb & 0xff) + ")";
}

std::string short_number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", v);
  return text;
}

}  // namespace

std::string token_heatmap_html(const std::vector<std::string>& tokens, const at::Tensor& values,
                               const TokenHeatmapOptions& options) {
  if (!values.defined())
    throw Error("figure.token_heatmap: values tensor expected, got an undefined tensor");
  if (!(values.dim() == 1 || (values.dim() == 2 && values.size(0) == 1))) {
    throw Error("figure.token_heatmap: values must be [n] or [1, n], got shape " +
                shape_string(values.sizes()));
  }
  std::vector<double> v = doubles(values, "figure.token_heatmap: values");
  if (v.size() != tokens.size()) {
    throw Error("figure.token_heatmap: " + std::to_string(tokens.size()) + " tokens but " +
                std::to_string(v.size()) + " values");
  }
  for (auto limit : {options.vmin, options.vmax}) {
    if (limit && !std::isfinite(*limit))
      throw Error("figure.token_heatmap: vmin and vmax must be finite");
  }
  double top = 0;
  for (double x : v) {
    if (std::isfinite(x)) top = std::max(top, std::abs(x));
  }
  if (options.vmax && !(*options.vmax > 0))
    throw Error("figure.token_heatmap: vmax must be positive, got " + number(*options.vmax));
  if (options.vmin && !(*options.vmin < 0))
    throw Error("figure.token_heatmap: vmin must be negative, got " + number(*options.vmin));
  const double positive = options.vmax   ? *options.vmax
                          : options.vmin ? -*options.vmin
                                         : (top > 0 ? top : 1);
  const double negative = options.vmin ? -*options.vmin : positive;

  // t in [-1, 1] through the diverging palette: white at 0, red positive, blue negative.
  auto colour = [&](double x, uint32_t* text) {
    double t = !std::isfinite(x) ? 0
               : x >= 0          ? std::min(x / positive, 1.0)
                                 : -std::min(-x / negative, 1.0);
    *text = std::abs(t) > 0.6 ? 0xffffff : 0x111111;
    return palette_rgb(Palette::kDiverging, (t + 1) / 2);
  };

  std::string html;
  html +=
      "<div class=\"llmscope-token-heatmap\" style=\"font-family: 'DejaVu Sans Mono', Menlo, "
      "Consolas, "
      "monospace; font-size: 14px; line-height: 1.9; color: #111; background: #fff; padding: "
      "8px;\">\n";
  if (!options.title.empty()) {
    html +=
        "<div style=\"font-family: sans-serif; font-weight: bold; font-size: 16px; margin-bottom: "
        "6px; "
        "white-space: pre-wrap;\">" +
        html_escape(sanitize_utf8(options.title)) + "</div>\n";
  }
  html += "<div style=\"white-space: pre-wrap; word-break: break-word;\">";
  for (size_t i = 0; i < tokens.size(); ++i) {
    uint32_t text = 0;
    uint32_t bg = colour(v[i], &text);
    const std::string tip = "[" + std::to_string(i) + "] " + html_escape(sanitize_utf8(tokens[i])) +
                            " = " + short_number(v[i]);
    html += "<span title=\"" + tip + "\" style=\"background:" + css_rgb(bg) +
            ";color:" + css_rgb(text) +
            ";border-radius:2px;padding:1px 0;box-shadow:inset -1px 0 0 rgba(0,0,0,0.18);\">" +
            visible_token(tokens[i]) + "</span>";
  }
  html += "</div>\n";
  // The scale: the two saturated ends and white at 0.
  uint32_t unused = 0;
  html +=
      "<div style=\"font-family: sans-serif; font-size: 12px; color: #555; margin-top: "
      "6px;\">scale: "
      "<span style=\"background:" +
      css_rgb(colour(-negative, &unused)) + ";color:#fff;padding:0 4px;\">" +
      short_number(-negative) +
      "</span> <span style=\"background:#fff;border:1px solid #ccc;padding:0 4px;\">0"
      "</span> <span style=\"background:" +
      css_rgb(colour(positive, &unused)) + ";color:#fff;padding:0 4px;\">" +
      short_number(positive) + "</span></div>\n";
  html += "</div>\n";
  return html;
}

void save_html(const fs::path& path, const std::string& html) {
  check_folder(path);
  std::string text = html;
  std::string head = html.substr(0, 256);
  std::transform(head.begin(), head.end(), head.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (head.find("<html") == std::string::npos && head.find("<!doctype") == std::string::npos) {
    text = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" +
           html_escape(path.stem().string()) +
           "</title>\n</head>\n<body style=\"margin: 16px; background: #fff;\">\n" + html +
           "</body>\n</html>\n";
  }
  write_file_atomic(path, text);
}

}  // namespace llmscope::figures
