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
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <variant>

#include "figures_plot.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"

extern char** environ;

namespace llmscope::figures {

namespace fs = std::filesystem;
using namespace detail;

namespace {

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

}  // namespace llmscope::figures
