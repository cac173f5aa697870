// The plot model behind llmscope/figures.hpp: what a Figure draws, one struct per kind, built
// and checked by figures.cpp and drawn by figures_gnuplot.cpp; and the helpers those and the
// token heatmaps (figures_token_heatmap.cpp) share.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "llmscope/figures.hpp"

namespace llmscope::figures {

// ---- What a figure draws ----

struct LineData {
  std::vector<std::string> labels, point_markers, colors;
  std::vector<std::vector<double>> xs, ys;
  std::vector<bool> dashed;
  bool markers = false;
};

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

Figure make_figure(std::shared_ptr<const Plot> plot);

namespace detail {

// Tableau 10, matplotlib's default cycle: distinct and readable on white.
inline constexpr const char* kCycle[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
inline constexpr size_t kCycleSize = sizeof(kCycle) / sizeof(kCycle[0]);

// gnuplot's point type for a marker name (pngcairo/svg numbering), or nullopt.
std::optional<int> point_type(const std::string& marker);

// The palette's colour at t in [0, 1] (clamped; NaN is 0) as 0xRRGGBB.
uint32_t palette_rgb(Palette palette, double t);
// gnuplot's "rgb variable" value: 0xAARRGGBB with AA the transparency of `alpha`.
double argb(uint32_t rgb, double alpha);
// "set palette defined (...)" for the palette's colour stops.
std::string palette_command(Palette palette);

// Valid UTF-8 (bad bytes become U+FFFD as decode() writes them), so gnuplot and browsers see
// text and a token looks the same in a figure as in the tokenizer's output.
std::string sanitize_utf8(const std::string& text);
size_t utf8_length(const std::string& text);
// A tick label on one line and at most 28 characters ("…" marks a cut): long or multi-line
// category names would push the plot out of the picture.
std::string tick_label(const std::string& name);
std::string number(double value);  // %.17g: round-trips every double
std::string quoted(const std::string& label);

// Any real tensor as CPU doubles, flattened; throws Error naming `what` otherwise.
std::vector<double> doubles(const at::Tensor& t, const std::string& what);
std::string lower_extension(const std::filesystem::path& path);
// Throws Error naming `path` when its folder does not exist (figures never create folders).
void check_folder(const std::filesystem::path& path);

}  // namespace detail

}  // namespace llmscope::figures
