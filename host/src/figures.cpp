// Figures rendered by gnuplot. A figure is turned into binary data files (native float64
// columns) and a script in a private temporary folder; gnuplot runs on the script as a child
// process (posix_spawn, no shell) and writes a temporary file beside the target, which is
// renamed into place only when gnuplot succeeded. Every label reaches gnuplot as a single-quoted
// string expression (gnuplot_string), where no escape, backquote or macro is interpreted.
#include "llmscope/figures.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <utility>
#include <variant>

#include "base/utf8.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/report.hpp"

extern char** environ;

namespace llmscope::figures {

namespace fs = std::filesystem;

// ---- What a figure draws ----

struct LineData {
  std::vector<std::string> labels, point_markers, colors;
  std::vector<std::vector<double>> xs, ys;
  std::vector<bool> dashed;
  bool markers = false;
};

namespace {

// gnuplot's point type for a marker name (pngcairo/svg numbering), or nullopt.
std::optional<int> point_type(const std::string& marker) {
  static const std::pair<const char*, int> kTypes[] = {
      {"plus", 1}, {"cross", 2}, {"square", 5}, {"circle", 7}, {"triangle", 9}, {"diamond", 13}};
  for (const auto& [name, type] : kTypes) {
    if (marker == name) return type;
  }
  return std::nullopt;
}

}  // namespace

// How values map to colours. Points get their colours computed here, one per point as
// gnuplot's "rgb variable" takes them (0xAARRGGBB, AA = transparency, 0 opaque), so alpha works
// with a palette; the colour bar, when `colorbar`, shows `palette` over `range`.
struct ColorScale {
  bool colorbar = false;
  Palette palette = Palette::kViridis;
  Range range;
  std::string label;
};

struct ScatterData {
  std::vector<double> x, y, argb;
  ColorScale scale;
  double point_size = 1;
};

struct HistogramData {
  std::vector<std::string> labels;
  std::vector<double> edges;                 // shared by every series
  std::vector<std::vector<double>> heights;  // [series][bin]: counts or densities
  double alpha = 0.5;
};

struct HeatmapData {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;  // row-major
  ColorScale scale;
  std::vector<std::string> xlabels, ylabels;
};

struct BarData {
  std::vector<std::string> categories;
  std::vector<std::string> labels;
  std::vector<std::vector<double>> values;  // [series][category]
};

struct StripData {
  std::vector<std::string> labels;
  std::vector<std::vector<double>> x, y, argb;  // [group][point]
  ColorScale scale;
  double point_size = 0.8;
};

struct Plot {
  Kind kind = Kind::kLine;
  Options options;
  std::variant<LineData, ScatterData, HistogramData, HeatmapData, BarData, StripData> data;
};

Figure make_figure(std::shared_ptr<const Plot> plot) { return Figure(std::move(plot)); }

namespace {

// ---- Colours ----

// Tableau 10, matplotlib's default cycle: distinct and readable on white.
constexpr const char* kCycle[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr size_t kCycleSize = sizeof(kCycle) / sizeof(kCycle[0]);

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

uint32_t palette_rgb(Palette palette, double t) {
  return palette == Palette::kViridis ? interpolate(kViridis, t) : interpolate(kDiverging, t);
}

std::string hex_rgb(uint32_t rgb) {
  char text[8];
  std::snprintf(text, sizeof text, "#%06x", rgb & 0xffffffu);
  return text;
}

uint32_t parse_hex(const char* hex) {
  return static_cast<uint32_t>(std::strtoul(hex + 1, nullptr, 16));
}

// gnuplot's transparency byte from an opacity.
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

// Valid UTF-8 (bad bytes become U+FFFD as decode() writes them), so gnuplot and browsers see
// text and a token looks the same in a figure as in the tokenizer's output.
std::string sanitize_utf8(const std::string& text) { return detail::utf8_lossy(text); }

size_t utf8_length(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

// A tick label on one line and at most 28 characters ("…" marks a cut): long or multi-line
// category names would push the plot out of the picture.
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

// ---- Tensors ----

std::vector<double> doubles(const at::Tensor& t, const std::string& what) {
  if (!t.defined()) throw Error(what + ": tensor expected, got an undefined tensor");
  if (t.is_complex()) throw Error(what + ": real values expected, got a complex tensor");
  at::Tensor cpu = t.detach().to(at::kCPU).to(at::kDouble).contiguous().reshape({-1});
  const double* p = cpu.data_ptr<double>();
  return std::vector<double>(p, p + cpu.numel());
}

std::vector<double> vector_1d(const at::Tensor& t, const std::string& what) {
  if (!t.defined()) throw Error(what + ": tensor expected, got an undefined tensor");
  if (t.dim() != 1)
    throw Error(what + ": 1-D tensor expected, got shape " + shape_string(t.sizes()));
  return doubles(t, what);
}

std::string quoted(const std::string& label) { return "'" + label + "'"; }

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

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// ---- Scripts ----

struct DataFile {
  fs::path path;
  std::vector<double> values;  // row-major columns of float64
};

class ScriptWriter {
 public:
  ScriptWriter(const Plot& plot, fs::path data_dir) : plot_(plot), dir_(std::move(data_dir)) {}

  std::string script(const fs::path& output, bool svg) {
    const Options& o = plot_.options;
    const std::string font = "'sans," + number(o.font_size) + "'";
    s_ << "# llmscope figure (" << kind_name(plot_.kind) << ")\n";
    s_ << "set encoding utf8\n";
    if (svg) {
      s_ << "set terminal svg size " << o.width << "," << o.height << " fixed noenhanced font "
         << font << " linewidth 1 background rgb 'white'\n";
    } else {
      s_ << "set terminal pngcairo size " << o.width << "," << o.height << " noenhanced font "
         << font << " linewidth 1 background rgb 'white'\n";
    }
    s_ << "set output " << gnuplot_string(output.string()) << "\n";
    if (!o.title.empty()) {
      s_ << "set title " << gnuplot_string(o.title) << " font 'sans:Bold,"
         << number(o.font_size + 2) << "'\n";
    }
    if (!o.xlabel.empty()) s_ << "set xlabel " << gnuplot_string(o.xlabel) << "\n";
    if (!o.ylabel.empty()) s_ << "set ylabel " << gnuplot_string(o.ylabel) << "\n";
    if (o.xlim) s_ << "set xrange [" << number(o.xlim->min) << ":" << number(o.xlim->max) << "]\n";
    if (o.ylim) s_ << "set yrange [" << number(o.ylim->min) << ":" << number(o.ylim->max) << "]\n";
    if (o.logx) s_ << "set logscale x\n";
    if (o.logy) s_ << "set logscale y\n";
    if (plot_.kind == Kind::kHeatmap) {
      s_ << "set border 15 lw 1 lc rgb '#404040'\nset tics out nomirror scale 0.6\n";
    } else {
      s_ << "set border 3 lw 1 lc rgb '#404040'\nset tics out nomirror scale 0.6\n";
    }
    key();
    std::visit([&](const auto& data) { body(data); }, plot_.data);
    return s_.str();
  }

  std::vector<DataFile> take_files() { return std::move(files_); }

 private:
  // A legend only where some series has a label (scatter, strip and heatmap never have one).
  bool has_labels() const {
    const std::vector<std::string>* labels = nullptr;
    if (const auto* d = std::get_if<LineData>(&plot_.data)) labels = &d->labels;
    if (const auto* d = std::get_if<HistogramData>(&plot_.data)) labels = &d->labels;
    if (const auto* d = std::get_if<BarData>(&plot_.data)) labels = &d->labels;
    return labels && std::any_of(labels->begin(), labels->end(),
                                 [](const std::string& l) { return !l.empty(); });
  }

  void key() {
    const std::string& legend = plot_.options.legend;
    if (legend == "none" || !has_labels()) {
      s_ << "unset key\n";
      return;
    }
    std::string where = legend == "outside" ? "outside right top vertical"
                        : legend == "below" ? "below horizontal"
                                            : "inside " + legend;
    s_ << "set key " << where
       << " reverse Left opaque box lc rgb '#c8c8c8' samplen 2 spacing 1.2 width 1\n";
  }

  // A data file of `columns` float64 columns; returns its quoted name for the plot command.
  std::string data(std::vector<double> values, const std::string& stem) {
    fs::path path = dir_ / (stem + "-" + std::to_string(files_.size()) + ".bin");
    files_.push_back({path, std::move(values)});
    return gnuplot_string(path.string());
  }

  static std::string title_of(const std::string& label) {
    return label.empty() ? "notitle" : "title " + gnuplot_string(label);
  }

  void grid(bool x, bool y) {
    if (!x && !y) return;
    s_ << "set grid " << (x ? "xtics " : "noxtics ") << (y ? "ytics " : "noytics ")
       << "back lt 1 lw 1 lc rgb '#e6e6e6'\n";
  }

  void colorbox(const ColorScale& scale) {
    s_ << palette_command(scale.palette);
    s_ << "set cbrange [" << number(scale.range.min) << ":" << number(scale.range.max) << "]\n";
    s_ << "set colorbox vertical\nset cbtics out nomirror scale 0.6\n";
    if (!scale.label.empty()) s_ << "set cblabel " << gnuplot_string(scale.label) << "\n";
  }

  // Category names as tick labels at 0, 1, ...; tilted when they would not fit side by side.
  void category_tics(char axis, const std::vector<std::string>& names, double plot_pixels) {
    if (names.empty()) return;
    size_t longest = 0;
    for (const auto& n : names) longest = std::max(longest, utf8_length(tick_label(n)));
    const double char_px = plot_.options.font_size * 0.62;
    const bool tilt =
        axis == 'x' && static_cast<double>(longest) * char_px > plot_pixels / names.size() * 0.9;
    s_ << "set " << axis << "tics (";
    for (size_t i = 0; i < names.size(); ++i)
      s_ << (i ? ", " : "") << gnuplot_string(tick_label(names[i])) << " " << i;
    s_ << ")" << (tilt ? " rotate by 45 right" : "") << "\n";
  }

  // Integer tick steps for an axis of `n` cells, about 10 ticks at most.
  static int64_t integer_step(int64_t n) {
    for (int64_t decade = 1;; decade *= 10) {
      for (int64_t m : {1, 2, 5}) {
        if (n <= 10 * m * decade) return m * decade;
      }
    }
  }

  void body(const LineData& d) {
    grid(true, true);
    if (!plot_.options.xlim) s_ << "set autoscale xfix\n";  // the x range ends where the data does
    if (!plot_.options.ylim)
      s_ << "set offsets 0, 0, graph 0.04, graph 0.04\n";  // lines off the frame
    const std::string line_with = d.markers ? "linespoints pt 7 ps 0.6" : "lines";
    s_ << "plot ";
    for (size_t i = 0; i < d.ys.size(); ++i) {
      std::vector<double> v;
      v.reserve(d.ys[i].size() * 2);
      for (size_t k = 0; k < d.ys[i].size(); ++k) {
        v.push_back(d.xs[i][k]);
        v.push_back(d.ys[i][k]);
      }
      std::string with = line_with + " lw 2" + (d.dashed[i] ? " dt 2" : "");
      if (!d.point_markers[i].empty()) {
        with = "points pt " + std::to_string(*point_type(d.point_markers[i])) + " ps 1 lw 1.5";
      }
      const std::string color = d.colors[i].empty() ? kCycle[i % kCycleSize] : d.colors[i];
      s_ << (i ? ", \\\n     " : "") << data(std::move(v), "line")
         << " binary format='%2float64' using 1:2 with " << with << " lc rgb '" << color << "' "
         << title_of(d.labels[i]);
    }
    s_ << "\n";
  }

  // Adds a no-data plot that uses the palette, so gnuplot draws the colour bar for points
  // whose colours were computed here.
  static std::string colorbar_anchor() {
    return ", \\\n     NaN with points lc palette frac 0 notitle";
  }

  // Filled points coloured by the file's third column; with `outline`, a faint grey ring too,
  // so points near the diverging palette's white stay visible on the white background.
  static std::string points(const std::string& file, double size, bool outline) {
    std::string text = file + " binary format='%3float64' using 1:2:3 with points pt 7 ps " +
                       number(size) + " lc rgb variable notitle";
    if (outline) {
      text += ", \\\n     " + file + " binary format='%3float64' using 1:2 with points pt 6 ps " +
              number(size) + " lw 0.5 lc rgb '#a0606060' notitle";
    }
    return text;
  }
  static bool outlined(const ColorScale& scale) {
    return scale.colorbar && scale.palette == Palette::kDiverging;
  }

  void body(const ScatterData& d) {
    grid(true, true);
    if (d.scale.colorbar) colorbox(d.scale);
    std::vector<double> v;
    v.reserve(d.x.size() * 3);
    for (size_t k = 0; k < d.x.size(); ++k) {
      v.push_back(d.x[k]);
      v.push_back(d.y[k]);
      v.push_back(d.argb[k]);
    }
    s_ << "plot " << points(data(std::move(v), "scatter"), d.point_size, outlined(d.scale));
    if (d.scale.colorbar) s_ << colorbar_anchor();
    s_ << "\n";
  }

  void body(const HistogramData& d) {
    grid(false, true);
    if (!plot_.options.ylim && !plot_.options.logy) s_ << "set yrange [0:*]\n";
    if (!plot_.options.xlim) {
      s_ << "set xrange [" << number(d.edges.front()) << ":" << number(d.edges.back()) << "]\n";
    }
    s_ << "plot ";
    for (size_t i = 0; i < d.heights.size(); ++i) {
      std::vector<double> v;
      for (size_t b = 0; b < d.heights[i].size(); ++b) {
        v.push_back((d.edges[b] + d.edges[b + 1]) / 2);
        v.push_back(d.heights[i][b]);
        v.push_back(d.edges[b + 1] - d.edges[b]);
      }
      const char* colour = kCycle[i % kCycleSize];
      s_ << (i ? ", \\\n     " : "") << data(std::move(v), "histogram")
         << " binary format='%3float64' using 1:2:3 with boxes fs transparent solid "
         << number(d.alpha) << " border lc rgb '" << colour << "' lc rgb '" << colour << "' "
         << title_of(d.labels[i]);
    }
    s_ << "\n";
  }

  void body(const HeatmapData& d) {
    const Options& o = plot_.options;
    colorbox(d.scale);
    if (!o.xlim) s_ << "set xrange [-0.5:" << number(static_cast<double>(d.cols) - 0.5) << "]\n";
    if (!o.ylim) s_ << "set yrange [" << number(static_cast<double>(d.rows) - 0.5) << ":-0.5]\n";
    if (d.xlabels.empty()) {
      s_ << "set xtics 0," << integer_step(d.cols) << "\n";
    } else {
      category_tics('x', d.xlabels, o.width * 0.7);
    }
    if (d.ylabels.empty()) {
      s_ << "set ytics 0," << integer_step(d.rows) << "\n";
    } else {
      category_tics('y', d.ylabels, o.height * 0.7);
    }
    s_ << "plot " << data(d.values, "heatmap") << " binary array=(" << d.cols << "," << d.rows
       << ") format='%float64' with image notitle\n";
  }

  void body(const BarData& d) {
    const Options& o = plot_.options;
    grid(false, true);
    const size_t groups = d.values.size();
    const double width = 0.8 / static_cast<double>(groups);
    if (!o.xlim)
      s_ << "set xrange [-0.6:" << number(static_cast<double>(d.categories.size()) - 0.4) << "]\n";
    bool negative = false;
    for (const auto& series : d.values) {
      for (double v : series) negative = negative || v < 0;
    }
    // Bars start at 0; headroom above for the legend, and below when bars go down.
    if (!o.ylim)
      s_ << "set yrange [*<0:0<*]\nset offsets 0, 0, graph 0.06, "
         << (negative ? "graph 0.04" : "0") << "\n";
    if (negative) s_ << "set xzeroaxis lt 1 lw 1 lc rgb '#404040'\n";
    category_tics('x', d.categories, o.width * 0.75);
    s_ << "plot ";
    for (size_t g = 0; g < groups; ++g) {
      std::vector<double> v;
      for (size_t c = 0; c < d.categories.size(); ++c) {
        v.push_back(static_cast<double>(c) - 0.4 + width * (static_cast<double>(g) + 0.5));
        v.push_back(d.values[g][c]);
        v.push_back(width * 0.92);
      }
      const char* colour = kCycle[g % kCycleSize];
      s_ << (g ? ", \\\n     " : "") << data(std::move(v), "bar")
         << " binary format='%3float64' using 1:2:3 with boxes fs solid 0.9 border lc rgb '"
         << colour << "' lc rgb '" << colour << "' " << title_of(d.labels[g]);
    }
    s_ << "\n";
  }

  void body(const StripData& d) {
    const Options& o = plot_.options;
    grid(false, true);
    if (d.scale.colorbar) colorbox(d.scale);
    if (!o.xlim)
      s_ << "set xrange [-0.6:" << number(static_cast<double>(d.labels.size()) - 0.4) << "]\n";
    category_tics('x', d.labels, o.width * 0.75);
    s_ << "plot ";
    for (size_t g = 0; g < d.y.size(); ++g) {
      std::vector<double> v;
      for (size_t k = 0; k < d.y[g].size(); ++k) {
        v.push_back(d.x[g][k]);
        v.push_back(d.y[g][k]);
        v.push_back(d.argb[g][k]);
      }
      s_ << (g ? ", \\\n     " : "")
         << points(data(std::move(v), "strip"), d.point_size, outlined(d.scale));
    }
    if (d.scale.colorbar) s_ << colorbar_anchor();
    s_ << "\n";
  }

  const Plot& plot_;
  fs::path dir_;
  std::ostringstream s_;
  std::vector<DataFile> files_;
};

// ---- Files and processes ----

std::string errno_text(int error) { return std::strerror(error); }

// A private temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "llmscope-figure-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) {
      throw Error("figure: cannot create a temporary folder from " + pattern + ": " +
                  errno_text(errno));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& path, const void* data, size_t size, const fs::path& for_path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw_file_error(for_path, "cannot create " + path.string() + ": " + errno_text(errno));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw_file_error(for_path, "cannot write " + path.string() + ": " + errno_text(errno));
}

void check_folder(const fs::path& path) {
  fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw_file_error(path, "cannot write: folder " + folder.string() + " does not exist");
}

std::optional<fs::path> find_on_path(const std::string& program) {
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string folder = path.substr(start, end - start);
    start = end + 1;
    if (folder.empty()) continue;
    fs::path candidate = fs::path(folder) / program;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

std::string last_lines(const std::string& text, size_t max_chars) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  t.erase(0, t.find_first_not_of('\n'));
  if (t.size() > max_chars) t = "..." + t.substr(t.size() - max_chars);
  return t;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Two fixes to gnuplot's SVG, made on the lines gnuplot writes for them (a label's text never
// starts a line, so labels are untouched): heatmap images stay sharp cells when scaled (not
// blurred by the viewer), and "sans:Bold" (cairo's way of asking for bold, which the svg
// terminal copies verbatim) becomes a real font-weight.
std::string polish_svg(const std::string& svg) {
  std::istringstream in(svg);
  std::string out, line;
  out.reserve(svg.size() + 256);
  while (std::getline(in, line)) {
    if (line.rfind("<image ", 0) == 0) {
      line.insert(7, "style='image-rendering:pixelated' image-rendering='optimizeSpeed' ");
    } else if (line.rfind("\t<g ", 0) == 0) {
      const std::string bold = "font-family=\"sans:Bold\"";
      if (size_t at = line.find(bold); at != std::string::npos) {
        line.replace(at, bold.size(), "font-family=\"sans\" font-weight=\"bold\"");
      }
    }
    out += line;
    out += '\n';
  }
  return out;
}

// Runs `gnuplot -d script` (-d: ignore the user's ~/.gnuplot) with stdin from /dev/null and
// stdout and stderr to `log`; returns a description of the failure, or "" on success.
std::string run_gnuplot(const fs::path& exe, const fs::path& script, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::string arg0 = "gnuplot", arg1 = "-d", arg2 = script.string();
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  pid_t pid = 0;
  int error = ::posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) return "cannot run " + exe.string() + ": " + errno_text(error);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return "cannot wait for gnuplot: " + errno_text(errno);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  std::string output = last_lines(read_text(log), 2000);
  return "gnuplot failed (" + how + ")" + (output.empty() ? "" : ":\n" + output);
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

std::string gnuplot_string(const std::string& text) {
  std::string clean = sanitize_utf8(text);
  std::string out = "'";
  for (char c : clean) {
    if (c == '\'') {
      out += "''";
    } else if (c == '\n') {
      out += "'.\"\\n\".'";
    } else if (c == '\r') {
      // dropped: "\r\n" is one line break
    } else if ((static_cast<unsigned char>(c) < 0x20) || c == 0x7f) {
      out += ' ';  // tabs and other control characters
    } else {
      out += c;
    }
  }
  return out + "'";
}

// ---- Figure ----

Kind Figure::kind() const { return plot_->kind; }
const Options& Figure::options() const { return plot_->options; }

std::string Figure::script(const fs::path& data_dir, const fs::path& output) const {
  ScriptWriter writer(*plot_, data_dir);
  return writer.script(output, lower_extension(output) == ".svg");
}

void Figure::save(const fs::path& path) const {
  const std::string ext = lower_extension(path);
  if (ext != ".png" && ext != ".svg") {
    throw_file_error(path, "unsupported figure format '" + path.extension().string() +
                               "' (expected .png or .svg)");
  }
  std::optional<fs::path> exe = find_on_path("gnuplot");
  if (!exe) {
    throw_file_error(path,
                     "cannot render the figure: gnuplot is not installed (not found on PATH); run "
                     "scripts/setup, or install the Debian package gnuplot-nox");
  }
  check_folder(path);

  TempDir temp;
  const fs::path output = temp_path_beside(path);
  ScriptWriter writer(*plot_, temp.path());
  const std::string text = writer.script(output, ext == ".svg");
  for (const DataFile& file : writer.take_files()) {
    write_bytes(file.path, file.values.data(), file.values.size() * sizeof(double), path);
  }
  const fs::path script = temp.path() / "figure.gp";
  write_bytes(script, text.data(), text.size(), path);

  std::string failure = run_gnuplot(*exe, script, temp.path() / "gnuplot.log");
  std::error_code ec;
  if (failure.empty() && !(fs::file_size(output, ec) > 0 && !ec)) {
    failure =
        "gnuplot wrote no output: " + last_lines(read_text(temp.path() / "gnuplot.log"), 2000);
  }
  if (!failure.empty()) {
    fs::remove(output, ec);
    throw_file_error(path, failure);
  }
  if (ext == ".svg") {
    try {
      std::string svg = polish_svg(read_text(output));
      write_bytes(output, svg.data(), svg.size(), path);
    } catch (...) {
      fs::remove(output, ec);
      throw;
    }
  }
  commit_atomic(output, path);
}

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
  const fs::path temp = temp_path_beside(path);
  try {
    write_bytes(temp, text.data(), text.size(), path);
  } catch (...) {
    std::error_code ec;
    fs::remove(temp, ec);
    throw;
  }
  commit_atomic(temp, path);
}

}  // namespace llmscope::figures
