// Report: the output folder every run writes — report.html (title, text sections, figures,
// tables, raw HTML such as token heatmaps, and a run manifest), figures/ and data/ (tables as
// CSV, tensors as safetensors). Every file is written atomically; report.html is rewritten on
// each write() (the Lua host writes it after every section), so a run that dies midway still
// leaves a report of what it did, marked incomplete while the status is "running".
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llmscope {

struct RunManifest {
  std::string script;
  std::vector<std::pair<std::string, std::string>> models;  // folder, sha256 of the weights
  std::string dtype, device;
  std::string seed;                // empty when the script set none
  std::string status = "running";  // "ok", "failed: <message>", "interrupted"
  double wall_seconds = 0;
  std::vector<std::pair<std::string, std::string>> extra;  // report.set{key = value}
};

class Report {
 public:
  explicit Report(std::filesystem::path out_dir, std::string title = "llmscope report");

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path figures_dir() const { return dir_ / "figures"; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }

  void set_title(std::string title) { title_ = std::move(title); }
  // Text with light markup: "# " / "## " headings, blank lines between paragraphs, `code`.
  void text(const std::string& text);
  // A figure already rendered into figures_dir() (PNG shown, SVG linked when present).
  void figure(const std::string& name, const std::string& caption);
  // A table: data/<name>.csv (all rows) and an HTML table (the first `shown` rows).
  void table(const std::string& name, const std::vector<std::string>& columns,
             const std::vector<std::vector<std::string>>& rows, const std::string& caption = "",
             size_t shown = 50);
  // A tensor: data/<name>.safetensors, listed with its shape and dtype.
  void tensor(const std::string& name, const at::Tensor& value, const std::string& caption = "");
  // Trusted HTML (a token heatmap); not escaped.
  void html(const std::string& fragment);

  // (Re)writes report.html with the manifest; atomic.
  void write(const RunManifest& manifest) const;
  // Takes the folder for this process until the Report goes away (an flock on <dir>/.lock,
  // created with the folder), so two runs never write one report; throws naming the folder and
  // the other run's process when it is taken.
  void lock();

  // A file-name-safe version of a user's name ("Layer 3 / r" -> "layer-3-r"); throws for empty.
  static std::string slug(const std::string& name);

 private:
  std::filesystem::path dir_;
  std::string title_;
  std::vector<std::string> sections_;  // HTML, in the order the script added them
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::shared_ptr<const int>
      lock_;  // the lock file's descriptor, closed (released) with the last copy
};

// Escapes &, <, >, " and ' for HTML text and attribute values (reports and token heatmaps).
std::string html_escape(const std::string& text);

}  // namespace llmscope
