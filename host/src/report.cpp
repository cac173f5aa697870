#include "llmscope/report.hpp"

#include <torch/version.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope {
namespace {

// Inline `code` spans inside already-escaped text.
std::string with_code_spans(const std::string& escaped) {
  std::string out;
  bool open = false;
  for (char c : escaped) {
    if (c == '`') {
      out += open ? "</code>" : "<code>";
      open = !open;
    } else {
      out += c;
    }
  }
  if (open) out += "</code>";
  return out;
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

const char* kStyle = R"(
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 1000px; margin: 2em auto;
       padding: 0 1em; color: #222; background: #fff; line-height: 1.5; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2, h3 { margin-top: 1.6em; }
figure { margin: 1.5em 0; text-align: center; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .95em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: .3em; }
code { background: #f4f4f4; padding: 0 .2em; border-radius: 3px; }
.manifest td, .manifest th { text-align: left; }
.muted { color: #777; font-size: .9em; }
)";

// Marks the page once loaded: data-images="<loaded>/<total>", for checks by a headless browser.
const char* kImageCheck = R"(<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + images.length);
});
</script>)";

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
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
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Report::Report(std::filesystem::path out_dir, std::string title)
    : dir_(std::move(out_dir)), title_(std::move(title)) {}

std::string Report::slug(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_') {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
  if (out.empty())
    throw Error("report: name '" + name + "' has no letters or digits to make a file name from");
  return out;
}

void Report::text(const std::string& text) {
  std::istringstream in(text);
  std::string line, paragraph, html;
  auto flush = [&] {
    if (!paragraph.empty()) html += "<p>" + with_code_spans(html_escape(paragraph)) + "</p>\n";
    paragraph.clear();
  };
  while (std::getline(in, line)) {
    if (line.rfind("### ", 0) == 0 || line.rfind("## ", 0) == 0 || line.rfind("# ", 0) == 0) {
      flush();
      size_t level = line.find(' ');
      // "# " in a section is h2: the report's own title is the page's only h1.
      std::string tag = "h" + std::to_string(std::min<size_t>(level + 1, 4));
      html += "<" + tag + ">" + with_code_spans(html_escape(line.substr(level + 1))) + "</" + tag +
              ">\n";
    } else if (line.find_first_not_of(" \t\r") == std::string::npos) {
      flush();
    } else {
      paragraph += (paragraph.empty() ? "" : " ") + line;
    }
  }
  flush();
  sections_.push_back(html);
}

void Report::figure(const std::string& name, const std::string& caption) {
  const auto png = "figures/" + name + ".png", svg = "figures/" + name + ".svg";
  if (!std::filesystem::exists(dir_ / png)) throw_file_error(dir_ / png, "figure was not rendered");
  std::string html = "<figure><img src=\"" + html_escape(png) + "\" alt=\"" +
                     html_escape(caption.empty() ? name : caption) + "\">";
  html += "<figcaption>" + html_escape(caption);
  if (std::filesystem::exists(dir_ / svg))
    html += " <a class=\"muted\" href=\"" + html_escape(svg) + "\">(SVG)</a>";
  html += "</figcaption></figure>\n";
  sections_.push_back(html);
}

void Report::table(const std::string& name, const std::vector<std::string>& columns,
                   const std::vector<std::vector<std::string>>& rows, const std::string& caption,
                   size_t shown) {
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != columns.size()) {
      throw Error("report.table '" + name + "': row " + std::to_string(i) + " has " +
                  std::to_string(rows[i].size()) + " values for " + std::to_string(columns.size()) +
                  " columns");
    }
  }
  const auto file = "data/" + slug(name) + ".csv";
  std::string csv;
  for (size_t c = 0; c < columns.size(); ++c) csv += (c ? "," : "") + csv_field(columns[c]);
  csv += "\n";
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) csv += (c ? "," : "") + csv_field(row[c]);
    csv += "\n";
  }
  write_file_atomic(dir_ / file, csv);

  std::string html = "<table><caption>" + html_escape(caption.empty() ? name : caption) +
                     " <a class=\"muted\" href=\"" + html_escape(file) +
                     "\">(CSV)</a></caption>\n<tr>";
  for (const auto& c : columns) html += "<th>" + html_escape(c) + "</th>";
  html += "</tr>\n";
  for (size_t r = 0; r < rows.size() && r < shown; ++r) {
    html += "<tr>";
    for (const auto& value : rows[r]) html += "<td>" + html_escape(value) + "</td>";
    html += "</tr>\n";
  }
  html += "</table>\n";
  if (rows.size() > shown) {
    html += "<p class=\"muted\">" + std::to_string(shown) + " of " + std::to_string(rows.size()) +
            " rows shown; all in the CSV.</p>\n";
  }
  sections_.push_back(html);
}

void Report::tensor(const std::string& name, const at::Tensor& value, const std::string& caption) {
  const auto file = "data/" + slug(name) + ".safetensors";
  save_safetensors(dir_ / file, {{name, value}}, {{"producer", "llmscope report"}});
  sections_.push_back("<p>Tensor <code>" + html_escape(name) + "</code> " +
                      html_escape(shape_string(value.sizes())) + " " +
                      html_escape(std::string(c10::toString(value.scalar_type()))) +
                      ": <a href=\"" + html_escape(file) + "\">" + html_escape(file) + "</a>" +
                      (caption.empty() ? "" : " — " + html_escape(caption)) + "</p>\n");
}

void Report::html(const std::string& fragment) { sections_.push_back(fragment + "\n"); }

void Report::lock() {
  if (lock_) return;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw_file_error(dir_, "cannot create the report folder: " + ec.message());
  const auto path = dir_ / ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw_file_error(path, std::string("cannot open the lock: ") + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    throw Error(dir_.string() + " is in use by another llmscope run" +
                (n > 0 ? " (process " + std::string(holder, static_cast<size_t>(n)) + ")" : "") +
                "; choose another --out, or wait for it to finish");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; it only makes the message above more helpful.
  }
  lock_ = std::shared_ptr<const int>(new int(fd), [](const int* held) {
    ::close(*held);
    delete held;
  });
}

void Report::write(const RunManifest& manifest) const {
  std::time_t started = std::chrono::system_clock::to_time_t(started_);
  std::tm local{};
  localtime_r(&started, &local);
  std::ostringstream when;
  when << std::put_time(&local, "%Y-%m-%d %H:%M:%S %Z");

  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>" +
                     html_escape(title_) + "</title>\n<style>" + kStyle + "</style>\n" +
                     kImageCheck + "\n</head><body>\n<h1>" + html_escape(title_) + "</h1>\n";
  if (manifest.status == "running") {
    // Written while the run went on: if it stopped here, this is what it completed.
    page +=
        "<p class=\"incomplete\"><strong>Incomplete:</strong> the run had not finished when "
        "this report was last written.</p>\n";
  }
  for (const auto& section : sections_) page += section;

  std::vector<std::pair<std::string, std::string>> rows = {{"script", manifest.script},
                                                           {"status", manifest.status}};
  for (const auto& [folder, hash] : manifest.models)
    rows.emplace_back("model", folder + " (sha256 " + hash + ")");
  if (manifest.models.empty()) rows.emplace_back("model", "none loaded");
  rows.emplace_back("dtype", manifest.dtype);
  rows.emplace_back("device", manifest.device);
  rows.emplace_back("seed", manifest.seed.empty() ? "not set" : manifest.seed);
  rows.emplace_back("started", when.str());
  std::ostringstream wall;
  wall << std::fixed << std::setprecision(2) << manifest.wall_seconds << " s";
  rows.emplace_back("wall time", wall.str());
  rows.emplace_back("llmscope", "0.1.0");
  rows.emplace_back("libtorch", TORCH_VERSION);
  for (const auto& kv : manifest.extra) rows.push_back(kv);
  page += "<h2>Run manifest</h2>\n<table class=\"manifest\">\n";
  for (const auto& [key, value] : rows)
    page += "<tr><th>" + html_escape(key) + "</th><td>" + html_escape(value) + "</td></tr>\n";
  page += "</table>\n</body></html>\n";
  write_file_atomic(dir_ / "report.html", page);
}

}  // namespace llmscope
