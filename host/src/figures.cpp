// Figures: the plot model built from tensors and checked (figures_plot.hpp), the colours and
// text helpers every part shares. Rendering is in figures_gnuplot.cpp, token heatmaps in
// figures_token_heatmap.cpp.
#include "llmscope/figures.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <utility>
#include <variant>

#include "base/utf8.hpp"
#include "figures_plot.hpp"
#include "llmscope/error.hpp"

namespace llmscope::figures {

namespace fs = std::filesystem;
using namespace detail;

Figure make_figure(std::shared_ptr<const Plot> plot) { return Figure(std::move(plot)); }

namespace {

// ---- Colours ----

struct Stop {
  double at;
  uint32_t rgb;
};

// matplotlib's viridis, sampled at 11 points.
constexpr Stop kViridis[] = {{0.0, 0x440154}, {0.1, 0x482475}, {0.2, 0x414487}, {0.3, 0x355f8d},
                             {0.4, 0x2a788e}, {0.5, 0x21918c}, {0.6, 0x22a884}, {0.7, 0x44bf70},
                             {0.8, 0x7ad151}, {0.9, 0xbddf26}, {1.0, 0xfde725}};
// ColorBrewer RdBu reversed, with pure white in the middle: blue low, red high.
constexpr Stop kDiverging[] = {{0.0, 0x053061},  {0.1, 0x2166ac}, {0.25, 0x4393c3},
                               {0.4, 0x92c5de},  {0.5, 0xffffff}, {0.6, 0xf4a582},
                               {0.75, 0xd6604d}, {0.9, 0xb2182b}, {1.0, 0x67001f}};

template <size_t N>
uint32_t interpolate(const Stop (&stops)[N], double t) {
  if (!(t >= 0)) t = 0;  // NaN too
  if (t > 1) t = 1;
  size_t i = 1;
  while (i < N - 1 && stops[i].at < t) ++i;
  const Stop& a = stops[i - 1];
  const Stop& b = stops[i];
  double f = (t - a.at) / (b.at - a.at);
  uint32_t rgb = 0;
  for (int shift = 16; shift >= 0; shift -= 8) {
    double ca = (a.rgb >> shift) & 0xff, cb = (b.rgb >> shift) & 0xff;
    auto c = static_cast<uint32_t>(std::lround(ca + (cb - ca) * f));
    rgb |= c << shift;
  }
  return rgb;
}

std::string hex_rgb(uint32_t rgb) {
  char text[8];
  std::snprintf(text, sizeof text, "#%06x", rgb & 0xffffffu);
  return text;
}

uint32_t parse_hex(const char* hex) {
  return static_cast<uint32_t>(std::strtoul(hex + 1, nullptr, 16));
}

}  // namespace

namespace detail {

std::optional<int> point_type(const std::string& marker) {
  static const std::pair<const char*, int> kTypes[] = {
      {"plus", 1}, {"cross", 2}, {"square", 5}, {"circle", 7}, {"triangle", 9}, {"diamond", 13}};
  for (const auto& [name, type] : kTypes) {
    if (marker == name) return type;
  }
  return std::nullopt;
}

uint32_t palette_rgb(Palette palette, double t) {
  return palette == Palette::kViridis ? interpolate(kViridis, t) : interpolate(kDiverging, t);
}

double argb(uint32_t rgb, double alpha) {
  auto transparency = static_cast<uint32_t>(std::lround((1 - alpha) * 255));
  return static_cast<double>((transparency << 24) | (rgb & 0xffffffu));
}

std::string palette_command(Palette palette) {
  std::string command = "set palette defined (";
  auto add = [&](const auto& stops) {
    bool first = true;
    for (const Stop& s : stops) {
      command += (first ? "" : ", ") + std::to_string(s.at) + " '" + hex_rgb(s.rgb) + "'";
      first = false;
    }
  };
  if (palette == Palette::kViridis) {
    add(kViridis);
  } else {
    add(kDiverging);
  }
  return command + ")\n";
}

// ---- Text ----

std::string sanitize_utf8(const std::string& text) { return llmscope::detail::utf8_lossy(text); }

size_t utf8_length(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

std::string tick_label(const std::string& name) {
  constexpr size_t kMax = 28;
  std::string clean = sanitize_utf8(name);
  std::replace(clean.begin(), clean.end(), '\n', ' ');
  if (utf8_length(clean) <= kMax) return clean;
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < clean.size(); ++i) {
    if ((static_cast<unsigned char>(clean[i]) & 0xc0) != 0x80 && ++n == kMax) break;
    out += clean[i];
  }
  return out + "\xe2\x80\xa6";  // …
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string quoted(const std::string& label) { return "'" + label + "'"; }

// ---- Tensors and files ----

std::vector<double> doubles(const at::Tensor& t, const std::string& what) {
  if (!t.defined()) throw Error(what + ": tensor expected, got an undefined tensor");
  if (t.is_complex()) throw Error(what + ": real values expected, got a complex tensor");
  at::Tensor cpu = t.detach().to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  const double* p = cpu.data_ptr<double>();
  return std::vector<double>(p, p + cpu.numel());
}

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

void check_folder(const fs::path& path) {
  fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw_file_error(path, "cannot write: folder " + folder.string() + " does not exist");
}

}  // namespace detail

namespace {

std::vector<double> vector_1d(const at::Tensor& t, const std::string& what) {
  if (!t.defined()) throw Error(what + ": tensor expected, got an undefined tensor");
  if (t.dim() != 1)
    throw Error(what + ": 1-D tensor expected, got shape " + shape_string(t.sizes()));
  return doubles(t, what);
}

// "series 2 ('resid')" for messages; 0-based like every index in llmscope.
std::string item(const char* noun, size_t index, const std::string& label) {
  return std::string(noun) + " " + std::to_string(index) +
         (label.empty() ? "" : " (" + quoted(label) + ")");
}

// ---- Checks ----

void check_options(const Options& o, Kind kind) {
  auto bad = [](const std::string& message) { throw Error("figure: " + message); };
  if (o.width < 64 || o.width > 10000 || o.height < 64 || o.height > 10000) {
    bad("width and height must be between 64 and 10000 pixels, got " + std::to_string(o.width) +
        "x" + std::to_string(o.height));
  }
  if (!(o.font_size >= 4 && o.font_size <= 72))
    bad("font_size must be between 4 and 72, got " + number(o.font_size));
  static const char* const kLegends[] = {"top right", "top left", "bottom right", "bottom left",
                                         "outside",   "below",    "none"};
  if (std::find_if(std::begin(kLegends), std::end(kLegends),
                   [&](const char* l) { return o.legend == l; }) == std::end(kLegends)) {
    bad("unknown legend position '" + o.legend +
        "' (expected top right, top left, bottom right, bottom left, outside, below or none)");
  }
  auto check_limits = [&](const char* name, const std::optional<Range>& lim) {
    if (lim && !(std::isfinite(lim->min) && std::isfinite(lim->max) && lim->min < lim->max)) {
      bad(std::string(name) + " must be finite {min, max} with min < max, got {" +
          number(lim->min) + ", " + number(lim->max) + "}");
    }
  };
  check_limits("xlim", o.xlim);
  check_limits("ylim", o.ylim);
  if (o.logx && kind != Kind::kLine && kind != Kind::kScatter) {
    bad(std::string("logx is not available for ") + kind_name(kind) +
        " figures (only line and scatter)");
  }
  if (o.logy && kind != Kind::kLine && kind != Kind::kScatter && kind != Kind::kHistogram) {
    bad(std::string("logy is not available for ") + kind_name(kind) +
        " figures (only line, scatter and histogram)");
  }
}

void check_alpha(double alpha) {
  if (!(alpha > 0 && alpha <= 1))
    throw Error("figure: alpha must be in (0, 1], got " + number(alpha));
}

void check_point_size(double size) {
  if (!(size > 0 && size <= 50))
    throw Error("figure: point size must be in (0, 50], got " + number(size));
}

// Finite min and max of `values`, or nullopt when none is finite.
std::optional<Range> finite_range(const std::vector<double>& values) {
  std::optional<Range> r;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    if (!r) {
      r = Range{v, v};
    } else {
      r->min = std::min(r->min, v);
      r->max = std::max(r->max, v);
    }
  }
  return r;
}

// The colour range: given, or the data's (symmetric about 0 for diverging), never empty.
Range color_range(const std::vector<double>& values, Palette palette, std::optional<double> vmin,
                  std::optional<double> vmax) {
  for (auto v : {vmin, vmax}) {
    if (v && !std::isfinite(*v))
      throw Error("figure: colour limits must be finite, got " + number(*v));
  }
  Range data = finite_range(values).value_or(Range{0, 0});
  Range r;
  if (palette == Palette::kDiverging && !(vmin && vmax)) {
    double m = vmax   ? std::abs(*vmax)
               : vmin ? std::abs(*vmin)
                      : std::max(std::abs(data.min), std::abs(data.max));
    r = {-m, m};
  } else {
    r = {vmin.value_or(data.min), vmax.value_or(data.max)};
  }
  if (vmin && vmax && !(*vmin < *vmax)) {
    throw Error("figure: vmin must be below vmax, got " + number(*vmin) + " and " + number(*vmax));
  }
  if (r.min >= r.max) {  // constant data, or one limit on the wrong side of the data
    double centre = vmin ? r.min : vmax ? r.max : r.min;
    double half = std::max(std::abs(centre) * 0.05, 0.5);
    r = vmin   ? Range{centre, centre + 2 * half}
        : vmax ? Range{centre - 2 * half, centre}
               : Range{centre - half, centre + half};
  }
  return r;
}

std::vector<double> colors_for(const std::vector<double>& values, const ColorScale& scale,
                               double alpha) {
  std::vector<double> out;
  out.reserve(values.size());
  for (double v : values) {
    double t = (v - scale.range.min) / (scale.range.max - scale.range.min);
    out.push_back(std::isfinite(v) ? argb(palette_rgb(scale.palette, t), alpha)
                                   : argb(0x999999, alpha));
  }
  return out;
}

}  // namespace

// ---- Public helpers ----

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kLine:
      return "line";
    case Kind::kScatter:
      return "scatter";
    case Kind::kHistogram:
      return "histogram";
    case Kind::kHeatmap:
      return "heatmap";
    case Kind::kBar:
      return "bar";
    case Kind::kStrip:
      return "strip";
  }
  return "?";
}

Palette parse_palette(const std::string& name) {
  if (name == "viridis") return Palette::kViridis;
  if (name == "diverging") return Palette::kDiverging;
  throw Error("figure: unknown palette '" + name + "' (expected viridis or diverging)");
}

Kind Figure::kind() const { return plot_->kind; }
const Options& Figure::options() const { return plot_->options; }

// ---- Builders ----

namespace {

std::shared_ptr<Plot> new_plot(Kind kind, const Options& options) {
  check_options(options, kind);
  auto plot = std::make_shared<Plot>();
  plot->kind = kind;
  plot->options = options;
  return plot;
}

}  // namespace

Figure line(const std::vector<LineSeries>& series, const LineOptions& line_options,
            const Options& options) {
  auto plot = new_plot(Kind::kLine, options);
  if (series.empty()) throw Error("figure.line: no series to plot");
  std::optional<std::vector<double>> shared_x;
  if (line_options.x.defined()) shared_x = vector_1d(line_options.x, "figure.line: x");
  LineData d;
  d.markers = line_options.markers;
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string what = "figure.line: " + item("series", i, series[i].label);
    std::vector<double> y = vector_1d(series[i].y, what + " y");
    if (y.empty()) throw Error(what + " is empty");
    std::vector<double> x;
    if (series[i].x.defined()) {
      x = vector_1d(series[i].x, what + " x");
    } else if (shared_x) {
      x = *shared_x;
    } else {
      for (size_t k = 0; k < y.size(); ++k) x.push_back(static_cast<double>(k));
    }
    if (x.size() != y.size()) {
      throw Error(what + ": x has " + std::to_string(x.size()) + " values but y has " +
                  std::to_string(y.size()));
    }
    if (!series[i].marker.empty() && !point_type(series[i].marker)) {
      throw Error(what + ": unknown marker '" + series[i].marker +
                  "' (expected circle, square, triangle, diamond, cross or plus)");
    }
    const std::string& color = series[i].color;
    const bool hex = color.size() == 7 && color[0] == '#' &&
                     std::all_of(color.begin() + 1, color.end(), [](char c) {
                       return std::isxdigit(static_cast<unsigned char>(c));
                     });
    if (!color.empty() && !hex)
      throw Error(what + ": color must be '#rrggbb', got '" + color + "'");
    d.labels.push_back(series[i].label);
    d.point_markers.push_back(series[i].marker);
    d.colors.push_back(color);
    d.dashed.push_back(series[i].dashed);
    d.xs.push_back(std::move(x));
    d.ys.push_back(std::move(y));
  }
  plot->data = std::move(d);
  return make_figure(plot);
}

Figure scatter(const at::Tensor& x, const at::Tensor& y, const ScatterOptions& so,
               const Options& options) {
  auto plot = new_plot(Kind::kScatter, options);
  check_alpha(so.alpha);
  check_point_size(so.point_size);
  ScatterData d;
  d.x = vector_1d(x, "figure.scatter: x");
  d.y = vector_1d(y, "figure.scatter: y");
  if (d.x.size() != d.y.size()) {
    throw Error("figure.scatter: x has " + std::to_string(d.x.size()) + " values but y has " +
                std::to_string(d.y.size()));
  }
  if (d.x.empty()) throw Error("figure.scatter: no points to plot (x and y are empty)");
  d.point_size = so.point_size;
  if (so.color.defined()) {
    std::vector<double> c = vector_1d(so.color, "figure.scatter: color");
    if (c.size() != d.x.size()) {
      throw Error("figure.scatter: color has " + std::to_string(c.size()) +
                  " values but there are " + std::to_string(d.x.size()) + " points");
    }
    d.scale.colorbar = true;
    d.scale.palette = so.palette;
    d.scale.label = so.colorbar_label;
    d.scale.range = color_range(c, so.palette, so.vmin, so.vmax);
    d.argb = colors_for(c, d.scale, so.alpha);
  } else {
    d.argb.assign(d.x.size(), argb(parse_hex(kCycle[0]), so.alpha));
  }
  plot->data = std::move(d);
  return make_figure(plot);
}

Figure histogram(const std::vector<HistogramSeries>& series, const HistogramOptions& ho,
                 const Options& options) {
  auto plot = new_plot(Kind::kHistogram, options);
  if (series.empty()) throw Error("figure.histogram: no series to plot");
  HistogramData d;
  d.alpha = ho.alpha.value_or(series.size() > 1 ? 0.5 : 0.85);
  check_alpha(d.alpha);
  std::vector<std::vector<double>> values;
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string what = "figure.histogram: " + item("series", i, series[i].label);
    std::vector<double> v = doubles(series[i].values, what + " values");
    v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }),
            v.end());
    if (v.empty()) throw Error(what + " has no finite values");
    values.push_back(std::move(v));
    d.labels.push_back(series[i].label);
  }
  if (!ho.edges.empty()) {
    if (ho.edges.size() < 2) throw Error("figure.histogram: edges needs at least 2 values");
    for (size_t b = 0; b < ho.edges.size(); ++b) {
      if (!std::isfinite(ho.edges[b]) || (b > 0 && !(ho.edges[b] > ho.edges[b - 1]))) {
        throw Error("figure.histogram: edges must be finite and strictly increasing (edge " +
                    std::to_string(b) + " is " + number(ho.edges[b]) + ")");
      }
    }
    d.edges = ho.edges;
  } else {
    if (ho.bins < 1 || ho.bins > 100000) {
      throw Error("figure.histogram: bins must be between 1 and 100000, got " +
                  std::to_string(ho.bins));
    }
    Range r{values[0][0], values[0][0]};
    for (const auto& v : values) {
      for (double x : v) {
        r.min = std::min(r.min, x);
        r.max = std::max(r.max, x);
      }
    }
    if (r.min == r.max) r = {r.min - 0.5, r.max + 0.5};  // numpy's rule for constant data
    for (int64_t b = 0; b <= ho.bins; ++b) {
      d.edges.push_back(b == ho.bins ? r.max
                                     : r.min + (r.max - r.min) * static_cast<double>(b) /
                                                   static_cast<double>(ho.bins));
    }
  }
  const size_t bins = d.edges.size() - 1;
  for (const auto& v : values) {
    std::vector<double> counts(bins, 0.0);
    double total = 0;
    for (double x : v) {
      if (x < d.edges.front() || x > d.edges.back())
        continue;  // outside given edges: ignored, as numpy
      size_t b = static_cast<size_t>(std::upper_bound(d.edges.begin(), d.edges.end(), x) -
                                     d.edges.begin());
      b = std::min(b == 0 ? 0 : b - 1, bins - 1);  // the last bin includes its right edge
      counts[b] += 1;
      total += 1;
    }
    if (ho.density && total > 0) {
      for (size_t b = 0; b < bins; ++b) counts[b] /= total * (d.edges[b + 1] - d.edges[b]);
    }
    d.heights.push_back(std::move(counts));
  }
  plot->data = std::move(d);
  return make_figure(plot);
}

Figure heatmap(const at::Tensor& values, const HeatmapOptions& ho, const Options& options) {
  auto plot = new_plot(Kind::kHeatmap, options);
  if (!values.defined()) throw Error("figure.heatmap: tensor expected, got an undefined tensor");
  if (values.dim() != 2) {
    throw Error("figure.heatmap: 2-D tensor [rows, cols] expected, got shape " +
                shape_string(values.sizes()));
  }
  HeatmapData d;
  d.rows = values.size(0);
  d.cols = values.size(1);
  if (d.rows == 0 || d.cols == 0)
    throw Error("figure.heatmap: tensor is empty (shape " + shape_string(values.sizes()) + ")");
  d.values = doubles(values, "figure.heatmap: values");
  for (double& v : d.values) {
    if (!std::isfinite(v)) v = std::nan("");
  }
  if (!ho.xlabels.empty() && static_cast<int64_t>(ho.xlabels.size()) != d.cols) {
    throw Error("figure.heatmap: " + std::to_string(ho.xlabels.size()) + " xlabels for " +
                std::to_string(d.cols) + " columns");
  }
  if (!ho.ylabels.empty() && static_cast<int64_t>(ho.ylabels.size()) != d.rows) {
    throw Error("figure.heatmap: " + std::to_string(ho.ylabels.size()) + " ylabels for " +
                std::to_string(d.rows) + " rows");
  }
  d.xlabels = ho.xlabels;
  d.ylabels = ho.ylabels;
  d.scale.colorbar = true;
  d.scale.palette = ho.palette;
  d.scale.label = ho.colorbar_label;
  d.scale.range = color_range(d.values, ho.palette, ho.vmin, ho.vmax);
  plot->data = std::move(d);
  return make_figure(plot);
}

Figure bar(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
           const Options& options) {
  auto plot = new_plot(Kind::kBar, options);
  if (categories.empty()) throw Error("figure.bar: no categories");
  if (series.empty()) throw Error("figure.bar: no series to plot");
  BarData d;
  d.categories = categories;
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].values.size() != categories.size()) {
      throw Error("figure.bar: " + item("series", i, series[i].label) + " has " +
                  std::to_string(series[i].values.size()) + " values for " +
                  std::to_string(categories.size()) + " categories");
    }
    d.labels.push_back(series[i].label);
    d.values.push_back(series[i].values);
  }
  plot->data = std::move(d);
  return make_figure(plot);
}

Figure strip(const std::vector<StripGroup>& groups, const StripOptions& so,
             const Options& options) {
  auto plot = new_plot(Kind::kStrip, options);
  if (groups.empty()) throw Error("figure.strip: no groups to plot");
  if (!(so.jitter >= 0 && so.jitter <= 0.5))
    throw Error("figure.strip: jitter must be in [0, 0.5], got " + number(so.jitter));
  check_alpha(so.alpha);
  check_point_size(so.point_size);
  StripData d;
  d.point_size = so.point_size;
  std::vector<std::vector<double>> colors(groups.size());
  std::vector<double> all_colors;
  for (size_t g = 0; g < groups.size(); ++g) {
    const std::string what = "figure.strip: " + item("group", g, groups[g].label);
    d.labels.push_back(groups[g].label);
    d.y.push_back(vector_1d(groups[g].values, what + " values"));
    if (d.y.back().empty()) throw Error(what + " has no values");
    if (groups[g].color.defined()) {
      colors[g] = vector_1d(groups[g].color, what + " color");
      if (colors[g].size() != d.y.back().size()) {
        throw Error(what + ": color has " + std::to_string(colors[g].size()) +
                    " values but there are " + std::to_string(d.y.back().size()) + " points");
      }
      all_colors.insert(all_colors.end(), colors[g].begin(), colors[g].end());
      d.scale.colorbar = true;
    }
  }
  if (d.scale.colorbar) {
    d.scale.palette = so.palette;
    d.scale.label = so.colorbar_label;
    d.scale.range = color_range(all_colors, so.palette, so.vmin, so.vmax);
  }
  std::mt19937_64 rng(
      so.seed);  // the engine's output is fixed by the standard; the mapping below too
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<double> x;
    for (size_t k = 0; k < d.y[g].size(); ++k) {
      double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
      x.push_back(static_cast<double>(g) + (2 * u - 1) * so.jitter);
    }
    d.x.push_back(std::move(x));
    if (!colors[g].empty()) {
      d.argb.push_back(colors_for(colors[g], d.scale, so.alpha));
    } else {
      d.argb.emplace_back(d.y[g].size(), argb(parse_hex(kCycle[g % kCycleSize]), so.alpha));
    }
  }
  plot->data = std::move(d);
  return make_figure(plot);
}

}  // namespace llmscope::figures
