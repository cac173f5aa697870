// Figures: line, scatter, histogram, heatmap, bar and strip plots rendered by gnuplot (run as a
// subprocess on a script and binary data files that llmscope writes), and token heatmaps as
// HTML. A Figure is an immutable, cheaply copyable value: build it with one of the functions
// below, then save() it as PNG or SVG. Tensors of any dtype and device are read as CPU doubles
// when the figure is built, so it does not keep them alive.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace llmscope::figures {

enum class Kind { kLine, kScatter, kHistogram, kHeatmap, kBar, kStrip };
const char* kind_name(Kind kind);  // "line", "scatter", "histogram", "heatmap", "bar", "strip"

// Colour maps for values: viridis (sequential), or diverging blue-white-red, white at the middle
// of the range (heatmaps default the range to ±max|v| with it, so white is 0).
enum class Palette { kViridis, kDiverging };
Palette parse_palette(const std::string& name);  // "viridis" | "diverging"; throws Error

struct Range {
  double min = 0;
  double max = 1;
};

// Options every kind shares. Labels are plain text (UTF-8, any characters, "\n" breaks lines).
struct Options {
  std::string title, xlabel, ylabel;
  // "top right" (default), "top left", "bottom right", "bottom left", "outside" (right of the
  // plot), "below", or "none".
  std::string legend = "top right";
  std::optional<Range> xlim, ylim;
  bool logx = false;  // line and scatter plots
  bool logy = false;  // line, scatter and histogram
  int width = 900;    // pixels (SVG: its size in user units)
  int height = 600;
  double font_size = 12;  // points
};

// One internal, immutable description of what to draw, shared by copies of a Figure.
struct Plot;

class Figure {
 public:
  Kind kind() const;
  const Options& options() const;

  // Renders to `path`: PNG (pngcairo) or SVG, chosen by the extension (.png / .svg, any case).
  // The file appears atomically (rendered to a temporary file in the same folder, then
  // renamed). Throws llmscope::Error naming `path` with gnuplot's own message when it fails,
  // and saying to run scripts/setup when gnuplot is not installed.
  void save(const std::filesystem::path& path) const;

  // The gnuplot script save() would run, with data files under `data_dir` (for debugging).
  std::string script(const std::filesystem::path& data_dir,
                     const std::filesystem::path& output) const;

 private:
  explicit Figure(std::shared_ptr<const Plot> plot) : plot_(std::move(plot)) {}
  std::shared_ptr<const Plot> plot_;
  friend Figure make_figure(std::shared_ptr<const Plot> plot);
};

// ---- Line plots ----
struct LineSeries {
  std::string label;  // empty: no legend entry
  at::Tensor y;       // [n]
  at::Tensor x;       // [n]; undefined: the figure's shared x, or 0..n-1
  // Points only, no line, with this marker: "circle", "square", "triangle", "diamond",
  // "cross" (x) or "plus"; empty draws the line. Classes of points in one scatter (significant
  // or not) are series with markers.
  std::string marker;
  std::string color;    // "#rrggbb"; empty: the next colour of the cycle
  bool dashed = false;  // a dashed line (reference lines such as a threshold)
};
struct LineOptions {
  at::Tensor x;          // shared x for every series without its own; undefined: 0..n-1
  bool markers = false;  // a point at each value as well as the line
};
Figure line(const std::vector<LineSeries>& series, const LineOptions& line = {},
            const Options& options = {});

// ---- Scatter plots ----
struct ScatterOptions {
  at::Tensor
      color;  // [n] values mapped through `palette`, with a colour bar; undefined: one colour
  Palette palette = Palette::kViridis;
  std::optional<double> vmin,
      vmax;  // colour limits; default: the values' range (diverging: ±max|v|)
  std::string colorbar_label;
  double alpha = 0.7;       // opacity of each point, (0, 1]; lower it for dense clouds
  double point_size = 1.0;  // gnuplot point size (1 ≈ 6 px)
};
Figure scatter(const at::Tensor& x, const at::Tensor& y, const ScatterOptions& scatter = {},
               const Options& options = {});

// ---- Histograms ----
struct HistogramSeries {
  std::string label;
  at::Tensor values;  // any shape; flattened, non-finite values ignored
};
struct HistogramOptions {
  int64_t bins = 30;            // equal bins over the range of all series (shared by all)
  std::vector<double> edges;    // explicit increasing bin edges; overrides `bins`
  bool density = false;         // false: counts; true: each series integrates to 1
  std::optional<double> alpha;  // fill opacity; default 0.85 for one series, 0.5 for several
};
Figure histogram(const std::vector<HistogramSeries>& series, const HistogramOptions& histogram = {},
                 const Options& options = {});

// ---- Heatmaps (imshow) ----
struct HeatmapOptions {
  Palette palette = Palette::kViridis;
  std::optional<double> vmin, vmax;  // colour limits; default: data range (diverging: ±max|v|)
  std::vector<std::string> xlabels;  // one per column, or empty for numeric ticks
  std::vector<std::string> ylabels;  // one per row, or empty
  std::string colorbar_label;
};
// `values` is 2-D [rows, cols]; row 0 is drawn at the top, as imshow does.
Figure heatmap(const at::Tensor& values, const HeatmapOptions& heatmap = {},
               const Options& options = {});

// ---- Bar charts (grouped when there are several series) ----
struct BarSeries {
  std::string label;
  std::vector<double> values;  // one per category
};
Figure bar(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
           const Options& options = {});

// ---- Jittered strip plots: one strip of points per group ----
struct StripGroup {
  std::string label;
  at::Tensor values;  // [n]
  at::Tensor color;   // [n] values mapped through the palette; undefined: the group's colour
};
struct StripOptions {
  double jitter = 0.2;  // points spread uniformly over ±jitter around the strip's centre
  uint64_t seed = 0;    // the same seed gives the same jitter
  Palette palette = Palette::kViridis;  // for `color` values, as scatter plots do
  std::optional<double> vmin, vmax;
  std::string colorbar_label;
  double alpha = 0.7;
  double point_size = 0.8;
};
Figure strip(const std::vector<StripGroup>& groups, const StripOptions& strip = {},
             const Options& options = {});

// ---- Token heatmaps (HTML) ----
struct TokenHeatmapOptions {
  std::string title;
  // Colour scale: red for positive, blue for negative, white at 0. Default: symmetric, ±max|v|.
  // With only vmax the scale is ±vmax; with vmin as well, negatives saturate at vmin.
  std::optional<double> vmin, vmax;
};
// A self-contained HTML fragment (a <div> with inline styles and no scripts): each token's
// background is coloured by its value, with the position and value in a tooltip; whitespace is
// kept and newlines are shown as ↵. `values` has one element per token ([n] or [1, n]).
std::string token_heatmap_html(const std::vector<std::string>& tokens, const at::Tensor& values,
                               const TokenHeatmapOptions& options = {});

// Writes `html` to `path` atomically; a fragment is wrapped in a complete UTF-8 page first.
void save_html(const std::filesystem::path& path, const std::string& html);

// ---- Helpers (exposed for tests) ----

// `text` as a gnuplot string expression that evaluates to exactly `text`: single-quoted pieces
// (no backslash escapes, backquote or macro substitution there) joined with "\n" for newlines.
std::string gnuplot_string(const std::string& text);

}  // namespace llmscope::figures
