// Figures: every kind renders to PNG and SVG through gnuplot, labels cannot break the gnuplot
// script, bad input fails with a message that says what was wrong, and token heatmaps are safe
// HTML. These tests need gnuplot (scripts/setup installs gnuplot-nox).
#include "llmscope/figures.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "golden.hpp"
#include "llmscope/error.hpp"

namespace llmscope::figures {
namespace {

namespace fs = std::filesystem;
using llmscope::testing::scratch_dir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

uint32_t big_endian(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

// A PNG whose IHDR says width x height.
::testing::AssertionResult is_png(const fs::path& path, uint32_t width, uint32_t height) {
  std::string bytes = read_file(path);
  if (bytes.size() < 33)
    return ::testing::AssertionFailure() << path << " has only " << bytes.size() << " bytes";
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0)
    return ::testing::AssertionFailure() << path << " is not a PNG";
  if (bytes.compare(12, 4, "IHDR") != 0)
    return ::testing::AssertionFailure() << path << " has no IHDR first";
  uint32_t w = big_endian(bytes, 16), h = big_endian(bytes, 20);
  if (w != width || h != height) {
    return ::testing::AssertionFailure()
           << path << " is " << w << "x" << h << ", expected " << width << "x" << height;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult is_svg(const fs::path& path, const std::string& must_contain) {
  std::string text = read_file(path);
  if (text.find("<?xml") != 0 && text.find("<svg") == std::string::npos) {
    return ::testing::AssertionFailure() << path << " does not start like XML";
  }
  size_t open = text.find("<svg");
  size_t close = text.rfind("</svg>");
  if (open == std::string::npos || close == std::string::npos || close < open) {
    return ::testing::AssertionFailure() << path << " has no <svg>...</svg>";
  }
  if (text.find(must_contain) == std::string::npos) {
    return ::testing::AssertionFailure() << path << " does not contain '" << must_contain << "'";
  }
  return ::testing::AssertionSuccess();
}

// Only `names` (and nothing half-written) in `dir`.
std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

using llmscope::testing::error_of;

Options titled(const std::string& title) {
  Options o;
  o.title = title;
  o.xlabel = "x axis";
  o.ylabel = "y axis";
  return o;
}

// One small figure of every kind.
std::vector<std::pair<std::string, Figure>> every_kind(const Options& o) {
  at::Tensor x = at::linspace(0, 6.28, 50);
  std::vector<std::pair<std::string, Figure>> figures;
  figures.emplace_back("line", line({{"sin", x.sin()}, {"cos", x.cos()}}, {x}, o));
  ScatterOptions so;
  so.color = at::arange(200, at::kFloat);
  so.alpha = 0.5;
  figures.emplace_back("scatter", scatter(at::randn({200}), at::randn({200}), so, o));
  figures.emplace_back("histogram",
                       histogram({{"a", at::randn({500})}, {"b", at::randn({500}) + 1}}, {}, o));
  HeatmapOptions ho;
  ho.palette = Palette::kDiverging;
  ho.xlabels = {"c0", "c1", "c2", "c3"};
  figures.emplace_back("heatmap", heatmap(at::randn({3, 4}), ho, o));
  figures.emplace_back("bar",
                       bar({"one", "two", "three"}, {{"g1", {1, 2, 3}}, {"g2", {2, -1, 0.5}}}, o));
  figures.emplace_back("strip",
                       strip({{"a", at::randn({40}), {}}, {"b", at::randn({30}), {}}}, {}, o));
  return figures;
}

TEST(Figures, EveryKindRendersPngOfTheRequestedSize) {
  auto dir = scratch_dir("png");
  Options o = titled("every kind");
  o.width = 640;
  o.height = 480;
  for (const auto& [name, figure] : every_kind(o)) {
    fs::path path = dir / (name + ".png");
    ASSERT_NO_THROW(figure.save(path)) << name;
    EXPECT_TRUE(is_png(path, 640, 480)) << name;
    EXPECT_GT(fs::file_size(path), 2000u) << name;  // a drawn figure, not an empty canvas
    EXPECT_STREQ(kind_name(figure.kind()), name.c_str());
  }
  // Nothing but the figures: no temporary files left beside them.
  EXPECT_EQ(files_in(dir).size(), 6u);
}

TEST(Figures, DefaultSizeIs900By600) {
  auto dir = scratch_dir("default");
  Figure f = line({{"", at::arange(5)}});
  f.save(dir / "f.png");
  EXPECT_TRUE(is_png(dir / "f.png", 900, 600));
}

TEST(Figures, EveryKindRendersSvgWithItsTitle) {
  auto dir = scratch_dir("svg");
  for (const auto& [name, figure] : every_kind(titled("Title of " + std::string("the figure")))) {
    fs::path path = dir / (name + ".SVG");  // the extension is case-insensitive
    ASSERT_NO_THROW(figure.save(path)) << name;
    EXPECT_TRUE(is_svg(path, "Title of the figure")) << name;
    EXPECT_TRUE(is_svg(path, "x axis")) << name;
  }
}

TEST(Figures, LabelsCannotBreakTheScript) {
  auto dir = scratch_dir("escape");
  const fs::path marker = dir / "pwned";
  const std::string nasty = "It's \"quoted\" \\back\\slash `touch " + marker.string() +
                            "` @macro $0 ; set output '/tmp/x'\nsecond line ünïcødé → ✓ _sub^sup";
  Options o = titled(nasty);
  o.xlabel = "x'\"\\";
  o.ylabel = "tab\there\r\nbell\x07 bad\xff byte";
  Figure f = bar({nasty, "b'", "c\\"}, {{nasty, {1, 2, 3}}}, o);
  ASSERT_NO_THROW(f.save(dir / "f.svg"));
  ASSERT_NO_THROW(f.save(dir / "f.png"));
  EXPECT_FALSE(fs::exists(marker)) << "a backquote in a label ran a command";
  std::string svg = read_file(dir / "f.svg");
  EXPECT_NE(svg.find("\\back\\slash `touch"), std::string::npos);
  EXPECT_NE(svg.find("@macro $0 ; set output"), std::string::npos);
  EXPECT_NE(svg.find("second line ünïcødé → ✓ _sub^sup"),
            std::string::npos);  // noenhanced: no markup
  EXPECT_EQ(svg.find("It's \"quoted\" \\back\\slash `touch " + marker.string() +
                     "` @macro $0 ; set output '/tmp/x'\n"),
            std::string::npos)
      << "the newline must become a line break, not stay inside one text";
  EXPECT_NE(svg.find("bad\xef\xbf\xbd byte"), std::string::npos) << "invalid UTF-8 becomes U+FFFD";
}

TEST(Figures, GnuplotStringIsSingleQuotedWithNewlinesJoined) {
  EXPECT_EQ(gnuplot_string(""), "''");
  EXPECT_EQ(gnuplot_string("plain"), "'plain'");
  EXPECT_EQ(gnuplot_string("it's"), "'it''s'");
  EXPECT_EQ(gnuplot_string("a\nb"), "'a'.\"\\n\".'b'");
  EXPECT_EQ(gnuplot_string("back\\slash \"q\" `x` @m"), "'back\\slash \"q\" `x` @m'");
  EXPECT_EQ(gnuplot_string("tab\tcr\r\n"), "'tab cr'.\"\\n\".''");
}

TEST(Figures, ScriptUsesTheOptions) {
  Options o = titled("T");
  o.legend = "bottom left";
  o.logy = true;
  o.xlim = Range{1, 10};
  o.width = 300;
  o.height = 200;
  o.font_size = 9;
  std::string script = line({{"a", at::arange(1, 10)}}, {}, o).script("/data", "/out/f.png");
  EXPECT_NE(script.find("pngcairo size 300,200"), std::string::npos) << script;
  EXPECT_NE(script.find("font 'sans,9'"), std::string::npos) << script;
  EXPECT_NE(script.find("background rgb 'white'"), std::string::npos) << script;
  EXPECT_NE(script.find("set logscale y"), std::string::npos) << script;
  EXPECT_NE(script.find("set xrange [1:10]"), std::string::npos) << script;
  EXPECT_NE(script.find("set key inside bottom left"), std::string::npos) << script;
  EXPECT_NE(script.find("set output '/out/f.png'"), std::string::npos) << script;
  std::string svg = line({{"a", at::arange(3)}}, {}, o).script("/data", "/out/f.svg");
  EXPECT_NE(svg.find("set terminal svg size 300,200"), std::string::npos) << svg;
  o.legend = "none";
  EXPECT_NE(line({{"a", at::arange(3)}}, {}, o).script("/d", "/o.png").find("unset key"),
            std::string::npos);
}

TEST(Figures, AnyDtypeAndLayoutIsRead) {
  auto dir = scratch_dir("dtypes");
  at::Tensor ints = at::arange(12, at::kInt);
  at::Tensor halves = at::arange(12, at::kFloat).to(at::kHalf);
  at::Tensor strided = at::arange(24, at::kDouble).reshape({12, 2}).select(1, 1);  // non-contiguous
  at::Tensor bools = at::arange(12).remainder(2).to(at::kBool);
  EXPECT_NO_THROW(line({{"int", ints}, {"half", halves}, {"strided", strided}, {"bool", bools}})
                      .save(dir / "a.png"));
  EXPECT_NO_THROW(heatmap(at::arange(12, at::kLong).reshape({3, 4}).t()).save(dir / "h.png"));
}

TEST(Figures, FiguresAreCopyableValues) {
  auto dir = scratch_dir("copy");
  Figure a = line({{"a", at::arange(4)}}, {}, titled("first"));
  Figure b = a;
  a = bar({"x"}, {{"", {1}}});
  EXPECT_EQ(b.kind(), Kind::kLine);
  EXPECT_EQ(b.options().title, "first");
  EXPECT_EQ(a.kind(), Kind::kBar);
  b.save(dir / "b.svg");
  EXPECT_TRUE(is_svg(dir / "b.svg", "first"));
}

TEST(Figures, StripJitterFollowsTheSeed) {
  auto dir = scratch_dir("seed");
  std::vector<StripGroup> groups = {{"a", at::arange(30, at::kFloat), {}},
                                    {"b", at::arange(30, at::kFloat), at::arange(30, at::kFloat)}};
  StripOptions s;
  s.seed = 7;
  strip(groups, s).save(dir / "a.png");
  strip(groups, s).save(dir / "b.png");
  s.seed = 8;
  strip(groups, s).save(dir / "c.png");
  EXPECT_EQ(read_file(dir / "a.png"), read_file(dir / "b.png"));
  EXPECT_NE(read_file(dir / "a.png"), read_file(dir / "c.png"));
}

TEST(Figures, HistogramAcceptsEdgesAndDensity) {
  auto dir = scratch_dir("hist");
  HistogramOptions h;
  h.edges = {-3, -1, 0, 0.5, 3};
  h.density = true;
  EXPECT_NO_THROW(histogram({{"a", at::randn({1000})}}, h).save(dir / "h.png"));
  h.edges = {0, 1, 1};
  EXPECT_NE(error_of([&] {
              histogram({{"a", at::randn({10})}}, h);
            }).find("strictly increasing"),
            std::string::npos);
  h.edges = {};
  h.bins = 0;
  EXPECT_NE(error_of([&] {
              histogram({{"a", at::randn({10})}}, h);
            }).find("bins must be"),
            std::string::npos);
}

TEST(Figures, BadInputSaysWhatWasWrong) {
  auto has = [](const std::string& message, const std::string& fragment) {
    return message.find(fragment) != std::string::npos
               ? ::testing::AssertionSuccess()
               : ::testing::AssertionFailure() << "'" << message << "' lacks '" << fragment << "'";
  };
  at::Tensor five = at::arange(5);
  EXPECT_TRUE(has(error_of([] { line({}); }), "figure.line: no series"));
  EXPECT_TRUE(has(error_of([&] {
                    line({{"a", five}}, {at::arange(4)});
                  }),
                  "series 0 ('a'): x has 4 values but y has 5"));
  EXPECT_TRUE(has(error_of([] {
                    line({{"a", at::zeros({2, 3})}});
                  }),
                  "1-D tensor expected, got shape [2, 3]"));
  EXPECT_TRUE(has(error_of([] { line({{"e", at::zeros({0})}}); }), "series 0 ('e') is empty"));
  EXPECT_TRUE(has(error_of([] { line({{"u", at::Tensor()}}); }), "undefined tensor"));
  EXPECT_TRUE(has(error_of([&] { scatter(five, at::arange(6)); }), "x has 5 values but y has 6"));
  EXPECT_TRUE(has(error_of([] { scatter(at::zeros({0}), at::zeros({0})); }), "no points"));
  ScatterOptions so;
  so.color = at::arange(3);
  EXPECT_TRUE(
      has(error_of([&] { scatter(five, five, so); }), "color has 3 values but there are 5 points"));
  so = {};
  so.alpha = 0;
  EXPECT_TRUE(has(error_of([&] { scatter(five, five, so); }), "alpha must be in (0, 1]"));
  EXPECT_TRUE(has(error_of([] { histogram({}); }), "no series"));
  EXPECT_TRUE(has(error_of([] {
                    histogram({{"nan", at::full({3}, NAN)}});
                  }),
                  "series 0 ('nan') has no finite values"));
  EXPECT_TRUE(has(error_of([] { heatmap(at::zeros({4})); }),
                  "2-D tensor [rows, cols] expected, got shape [4]"));
  EXPECT_TRUE(has(error_of([] { heatmap(at::zeros({2, 2, 2})); }), "got shape [2, 2, 2]"));
  EXPECT_TRUE(has(error_of([] { heatmap(at::zeros({0, 3})); }), "empty"));
  HeatmapOptions ho;
  ho.xlabels = {"a"};
  EXPECT_TRUE(has(error_of([&] { heatmap(at::zeros({2, 3}), ho); }), "1 xlabels for 3 columns"));
  ho = {};
  ho.vmin = 1;
  ho.vmax = 0;
  EXPECT_TRUE(has(error_of([&] { heatmap(at::zeros({2, 3}), ho); }), "vmin must be below vmax"));
  EXPECT_TRUE(has(error_of([] {
                    bar({"a", "b"}, {{"s", {1}}});
                  }),
                  "series 0 ('s') has 1 values for 2 categories"));
  EXPECT_TRUE(has(error_of([] { bar({}, {{"s", {}}}); }), "no categories"));
  EXPECT_TRUE(has(error_of([] { bar({"a"}, {}); }), "no series"));
  EXPECT_TRUE(has(error_of([] { strip({}); }), "no groups"));
  EXPECT_TRUE(has(error_of([] {
                    strip({{"g", at::zeros({0}), {}}});
                  }),
                  "group 0 ('g') has no values"));
  StripOptions st;
  st.jitter = 2;
  EXPECT_TRUE(has(error_of([&] { strip({{"g", five, {}}}, st); }), "jitter must be in [0, 0.5]"));

  Options o;
  o.legend = "middle";
  EXPECT_TRUE(has(error_of([&] {
                    line({{"a", five}}, {}, o);
                  }),
                  "unknown legend position 'middle'"));
  o = {};
  o.width = 10;
  EXPECT_TRUE(has(error_of([&] { line({{"a", five}}, {}, o); }), "width and height"));
  o = {};
  o.xlim = Range{2, 1};
  EXPECT_TRUE(has(error_of([&] {
                    line({{"a", five}}, {}, o);
                  }),
                  "xlim must be finite {min, max} with min < max"));
  o = {};
  o.logx = true;
  EXPECT_TRUE(has(error_of([&] {
                    heatmap(at::zeros({2, 2}), {}, o);
                  }),
                  "logx is not available for heatmap"));
  EXPECT_TRUE(has(error_of([] { parse_palette("jet"); }), "unknown palette 'jet'"));
}

TEST(Figures, SaveChecksTheTarget) {
  auto dir = scratch_dir("target");
  Figure f = line({{"a", at::arange(3)}});
  std::string message = error_of([&] { f.save(dir / "f.jpg"); });
  EXPECT_NE(message.find("f.jpg: unsupported figure format '.jpg' (expected .png or .svg)"),
            std::string::npos)
      << message;
  message = error_of([&] { f.save(dir / "missing" / "f.png"); });
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
  EXPECT_TRUE(files_in(dir).empty());
}

TEST(Figures, GnuplotFailureIsReportedAndLeavesNoFile) {
  auto dir = scratch_dir("fail");
  Options o;
  o.logy = true;  // every y is negative: gnuplot refuses ("all points y value undefined")
  Figure f = line({{"neg", -at::arange(1, 5)}}, {}, o);
  std::string message = error_of([&] { f.save(dir / "f.png"); });
  EXPECT_EQ(message.find((dir / "f.png").string() + ": gnuplot failed"), 0u) << message;
  EXPECT_NE(message.find("undefined"), std::string::npos) << message;
  EXPECT_TRUE(files_in(dir).empty());
}

TEST(Figures, MissingGnuplotSaysToRunSetup) {
  auto dir = scratch_dir("nognuplot");
  fs::create_directories(dir / "empty-bin");
  const char* old = std::getenv("PATH");
  std::string saved = old ? old : "";
  setenv("PATH", (dir / "empty-bin").c_str(), 1);
  std::string message = error_of([&] { line({{"a", at::arange(3)}}).save(dir / "f.png"); });
  if (old) {
    setenv("PATH", saved.c_str(), 1);
  } else {
    unsetenv("PATH");
  }
  EXPECT_NE(message.find((dir / "f.png").string() + ": "), std::string::npos) << message;
  EXPECT_NE(message.find("gnuplot is not installed"), std::string::npos) << message;
  EXPECT_NE(message.find("scripts/setup"), std::string::npos) << message;
  EXPECT_NE(message.find("gnuplot-nox"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(dir / "f.png"));
}

// ---- Token heatmaps ----

TEST(TokenHeatmap, ColoursByValueWithTooltipsAndEscapedText) {
  std::vector<std::string> tokens = {"<script>", " a&b", "\n", "\"q'", "zero"};
  std::string html =
      token_heatmap_html(tokens, at::tensor({2.0, -2.0, 1.0, -1.0, 0.0}), {"Title <b>", {}, {}});
  EXPECT_EQ(html.find("<script>"), std::string::npos) << html;
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(html.find(" a&amp;b"), std::string::npos);
  EXPECT_NE(html.find("&quot;q&#39;"), std::string::npos);
  EXPECT_NE(html.find("Title &lt;b&gt;"), std::string::npos);
  EXPECT_NE(html.find("\xe2\x86\xb5\n"), std::string::npos)
      << "newline shown as a visible mark, then a break";
  EXPECT_NE(html.find("white-space: pre-wrap"), std::string::npos);
  EXPECT_NE(html.find("title=\"[0] &lt;script&gt; = 2\""), std::string::npos) << html;
  EXPECT_NE(html.find("title=\"[1]  a&amp;b = -2\""), std::string::npos) << html;
  // The symmetric scale is ±2: the two ends are the palette's darkest red and blue; 0 is white.
  EXPECT_NE(html.find("= 2\" style=\"background:rgb(103,0,31)"), std::string::npos) << html;
  EXPECT_NE(html.find("= -2\" style=\"background:rgb(5,48,97)"), std::string::npos) << html;
  EXPECT_NE(html.find("= 0\" style=\"background:rgb(255,255,255)"), std::string::npos) << html;
}

TEST(TokenHeatmap, ChecksItsInput) {
  auto msg = [](const std::function<void()>& f) { return error_of(f); };
  EXPECT_NE(msg([] {
              token_heatmap_html({"a", "b"}, at::zeros({3}));
            }).find("2 tokens but 3 values"),
            std::string::npos);
  EXPECT_NE(msg([] {
              token_heatmap_html({"a"}, at::zeros({2, 2}));
            }).find("[n] or [1, n], got shape [2, 2]"),
            std::string::npos);
  EXPECT_NO_THROW(token_heatmap_html({"a", "b"}, at::zeros({1, 2})));
  EXPECT_NE(msg([] {
              token_heatmap_html({"a"}, at::zeros({1}), {"", {}, -1.0});
            }).find("vmax must be positive"),
            std::string::npos);
}

TEST(TokenHeatmap, SaveHtmlWrapsAFragmentInAPage) {
  auto dir = scratch_dir("html");
  std::string fragment = token_heatmap_html({"hé", "llo"}, at::tensor({0.5, -0.25}));
  save_html(dir / "t.html", fragment);
  std::string page = read_file(dir / "t.html");
  EXPECT_EQ(page.find("<!DOCTYPE html>"), 0u);
  EXPECT_NE(page.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(page.find(fragment), std::string::npos);
  save_html(dir / "p.html", "<!doctype html><html><body>x</body></html>");
  EXPECT_EQ(read_file(dir / "p.html"), "<!doctype html><html><body>x</body></html>");
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"p.html", "t.html"}));
}

}  // namespace
}  // namespace llmscope::figures
