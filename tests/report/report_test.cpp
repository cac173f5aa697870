// The Report class: what each call writes, escaping, and atomic, complete files.
#include <gmock/gmock.h>

#include <fstream>
#include <sstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/report.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Report, WritesTextTablesTensorsAndManifest) {
  auto dir = testing::scratch_dir("report");
  Report report(dir, "Layer <sweep> & more");
  report.text("# Findings\nNeuron `91` fires on \"quotes\" <b>not bold</b>.\n\nSecond paragraph.");
  report.table("Per layer r", {"layer", "r, Pearson"}, {{"0", "0.5"}, {"1", "a \"quoted\", value"}},
               "Correlations");
  report.tensor("acts", at::arange(6, at::kFloat).view({2, 3}));
  report.html("<div class=\"tokens\">raw</div>");
  RunManifest manifest;
  manifest.script = "lesson.lua";
  manifest.status = "ok";
  manifest.models = {{"models/tiny", "abc123"}};
  manifest.seed = "7";
  manifest.dtype = "float32";
  manifest.device = "cpu";
  report.write(manifest);

  auto html = read(dir / "report.html");
  EXPECT_THAT(html, HasSubstr("<title>Layer &lt;sweep&gt; &amp; more</title>"));
  EXPECT_THAT(html, HasSubstr("<h2>Findings</h2>"));
  EXPECT_THAT(
      html,
      HasSubstr("Neuron <code>91</code> fires on &quot;quotes&quot; &lt;b&gt;not bold&lt;/b&gt;."));
  EXPECT_THAT(html, HasSubstr("<p>Second paragraph.</p>"));
  EXPECT_THAT(html, HasSubstr("href=\"data/per-layer-r.csv\""));
  EXPECT_THAT(html, HasSubstr("<div class=\"tokens\">raw</div>"));
  EXPECT_THAT(html, HasSubstr("models/tiny (sha256 abc123)"));
  EXPECT_THAT(html, HasSubstr("<th>seed</th><td>7</td>"));
  EXPECT_THAT(html, HasSubstr("libtorch"));
  EXPECT_EQ(read(dir / "data/per-layer-r.csv"),
            "layer,\"r, Pearson\"\n0,0.5\n1,\"a \"\"quoted\"\", value\"\n");
  auto tensors = SafetensorsFile::open(dir / "data/acts.safetensors");
  EXPECT_TRUE(tensors.tensor("acts").equal(at::arange(6, at::kFloat).view({2, 3})));
  // Nothing half-written is left behind.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    EXPECT_THAT(entry.path().string(), Not(HasSubstr(".tmp-")));
  }
}

TEST(Report, LongTablesShowTheirHeadAndKeepEverythingInTheCsv) {
  auto dir = testing::scratch_dir("long");
  Report report(dir);
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < 120; ++i) rows.push_back({std::to_string(i)});
  report.table("many", {"i"}, rows, "", 10);
  report.write({});
  EXPECT_THAT(read(dir / "report.html"), HasSubstr("10 of 120 rows shown"));
  auto csv = read(dir / "data/many.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 121);
}

TEST(Report, ErrorsNameTheProblem) {
  auto dir = testing::scratch_dir("errors");
  Report report(dir);
  EXPECT_THAT(
      [&] {
        report.table("t", {"a", "b"}, {{"1"}});
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("row 0 has 1 values for 2 columns")));
  EXPECT_THAT([&] { report.figure("missing", ""); },
              ::testing::ThrowsMessage<Error>(HasSubstr("figure was not rendered")));
  EXPECT_THAT([&] { Report::slug("///"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("no letters or digits")));
  EXPECT_EQ(Report::slug("Layer 3 / r"), "layer-3-r");
}

TEST(Report, RewritingKeepsTheReportComplete) {
  auto dir = testing::scratch_dir("rewrite");
  Report report(dir, "t");
  report.text("first");
  report.write({});
  report.text("second");
  RunManifest failed;
  failed.status = "failed: script.lua:3: boom";
  report.write(failed);
  auto html = read(dir / "report.html");
  EXPECT_THAT(html, HasSubstr("first"));
  EXPECT_THAT(html, HasSubstr("second"));
  EXPECT_THAT(html, HasSubstr("failed: script.lua:3: boom"));
  EXPECT_THAT(html, HasSubstr("</html>"));
}

}  // namespace
}  // namespace llmscope
