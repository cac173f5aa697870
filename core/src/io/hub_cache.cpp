// The Hugging Face cache: model names, the folder layout huggingface_hub writes, and finding a
// model's snapshot in it. Downloading into the cache is the host's (host/src/hub_pull.cpp).
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/hub_detail.hpp"
#include "llmscope/error.hpp"
#include "llmscope/hub.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope::hub {

namespace fs = std::filesystem;

namespace detail {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool is_hex(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

std::string trim(std::string_view text) {
  size_t first = 0, last = text.size();
  while (first < last && std::isspace(static_cast<unsigned char>(text[first]))) ++first;
  while (last > first && std::isspace(static_cast<unsigned char>(text[last - 1]))) --last;
  return std::string(text.substr(first, last - first));
}

std::string display_name(const ModelRef& ref) {
  return ref.revision == "main" ? ref.repo : ref.str();
}

}  // namespace detail

namespace {

using detail::env;
using detail::is_alnum;
using detail::is_hex;
using detail::trim;

constexpr size_t kMaxNamePart = 96;  // huggingface_hub's limit for each part of a repo id

fs::path home_dir() {
  if (auto home = env("HOME"); !home.empty()) return home;
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) return pw->pw_dir;
  throw Error(
      "cannot find the home folder for the Hugging Face cache ($HOME is not set); set "
      "HF_HUB_CACHE");
}

fs::path expand_user(const std::string& path) {
  if (path == "~") return home_dir();
  if (path.rfind("~/", 0) == 0) return home_dir() / path.substr(2);
  return path;
}

bool is_commit_hash(std::string_view text) { return text.size() == 40 && is_hex(text); }

// huggingface_hub's rule for each part of a repo id: letters, digits, "-_."; no "--" or "..";
// "-" and "." neither first nor last.
bool valid_name_part(std::string_view part) {
  if (part.empty() || part.size() > kMaxNamePart) return false;
  if (part.front() == '-' || part.front() == '.' || part.back() == '-' || part.back() == '.')
    return false;
  if (part.find("--") != std::string_view::npos || part.find("..") != std::string_view::npos)
    return false;
  return std::all_of(part.begin(), part.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// A revision becomes a path under refs/, so no empty, "." or ".." components and no odd bytes.
bool valid_revision(std::string_view revision) {
  if (revision.empty() || revision.size() > 255) return false;
  for (char c : revision) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c)) || c == '\\' || c == '@') {
      return false;
    }
  }
  size_t start = 0;
  while (start <= revision.size()) {
    size_t end = revision.find('/', start);
    if (end == std::string_view::npos) end = revision.size();
    auto part = revision.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

std::optional<ModelRef> try_parse(std::string_view text) {
  ModelRef ref;
  const size_t at = text.find('@');
  std::string_view repo = text.substr(0, at);
  if (at != std::string_view::npos) {
    auto revision = text.substr(at + 1);
    if (!valid_revision(revision)) return std::nullopt;
    ref.revision = std::string(revision);
  }
  const size_t slash = repo.find('/');
  if (slash == std::string_view::npos) {
    if (!valid_name_part(repo)) return std::nullopt;
  } else if (!valid_name_part(repo.substr(0, slash)) || !valid_name_part(repo.substr(slash + 1))) {
    return std::nullopt;
  }
  ref.repo = std::string(repo);
  return ref;
}

// What a user types to get this model: "gpt2" for main, "gpt2@v1" otherwise.

std::optional<std::string> read_ref(const fs::path& repo, const std::string& revision) {
  std::ifstream in(repo / "refs" / revision);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  auto commit = trim(text.str());
  if (!is_hex(commit)) return std::nullopt;
  return commit;
}

// Revisions with a refs/ file, as huggingface_hub names them ("main", "refs/pr/1").
std::vector<std::string> cached_revisions(const fs::path& repo) {
  std::vector<std::string> out;
  std::error_code ec;
  const fs::path refs = repo / "refs";
  for (auto it = fs::recursive_directory_iterator(refs, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec))
      out.push_back(it->path().lexically_relative(refs).generic_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string ModelRef::str() const { return repo + "@" + revision; }

bool is_model_ref(std::string_view text) { return try_parse(text).has_value(); }

ModelRef parse_model_ref(std::string_view text) {
  if (auto ref = try_parse(text)) return *ref;
  throw Error("'" + std::string(text) +
              "' is not a model name (expected NAME or ORG/NAME, optionally @REVISION: gpt2, "
              "EleutherAI/gpt-neo-125m@main)");
}

fs::path cache_dir() {
  if (auto path = env("HF_HUB_CACHE"); !path.empty()) return expand_user(path);
  if (auto path = env("HUGGINGFACE_HUB_CACHE"); !path.empty()) return expand_user(path);
  if (auto path = env("HF_HOME"); !path.empty()) return expand_user(path) / "hub";
  if (auto path = env("XDG_CACHE_HOME"); !path.empty())
    return expand_user(path) / "huggingface" / "hub";
  return home_dir() / ".cache" / "huggingface" / "hub";
}

fs::path repo_dir(const fs::path& cache, const std::string& repo) {
  std::string folder = "models--";
  for (char c : repo) folder += c == '/' ? std::string("--") : std::string(1, c);
  return cache / folder;
}

std::vector<std::string> cached_models(const fs::path& cache) {
  std::vector<std::string> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(cache, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const auto folder = it->path().filename().string();
    if (folder.rfind("models--", 0) != 0) continue;
    std::error_code empty_ec;
    if (fs::is_empty(it->path() / "snapshots", empty_ec) || empty_ec) continue;
    std::string name;
    for (size_t i = 8; i < folder.size(); ++i) {
      if (folder.compare(i, 2, "--") == 0) {
        name += '/';
        ++i;
      } else {
        name += folder[i];
      }
    }
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<fs::path> find_snapshot(const ModelRef& ref, const fs::path& cache) {
  const fs::path repo = repo_dir(cache, ref.repo);
  std::error_code ec;
  if (is_commit_hash(ref.revision) && fs::is_directory(repo / "snapshots" / ref.revision, ec)) {
    return repo / "snapshots" / ref.revision;
  }
  auto commit = read_ref(repo, ref.revision);
  if (!commit || !fs::is_directory(repo / "snapshots" / *commit, ec)) return std::nullopt;
  return repo / "snapshots" / *commit;
}

fs::path resolve_model(const ModelRef& ref, const fs::path& cache) {
  const std::string name = detail::display_name(ref);
  const std::string pull = "`llmscope pull " + name + "`";
  const fs::path repo = repo_dir(cache, ref.repo);
  std::error_code ec;
  if (!fs::is_directory(repo, ec)) {
    auto cached = cached_models(cache);
    std::string listed = "the cache holds no models yet";
    if (!cached.empty()) {
      constexpr size_t kListed = 12;
      const bool more = cached.size() > kListed;
      if (more) cached.resize(kListed);
      listed = "cached: " + join(cached) + (more ? ", ..." : "");
    }
    throw Error("'" + name + "' is neither a model folder nor a model in the Hugging Face cache (" +
                cache.string() + "); download it with " + pull + " (" + listed + ")");
  }
  auto snapshot = find_snapshot(ref, cache);
  if (!snapshot) {
    if (auto commit = read_ref(repo, ref.revision)) {
      throw Error(name + ": " + (repo / "refs" / ref.revision).string() + " names commit " +
                  *commit + ", but its snapshot folder is missing; " + pull +
                  " downloads it again");
    }
    auto revisions = cached_revisions(repo);
    throw Error(name + ": revision '" + ref.revision + "' is not in the Hugging Face cache (" +
                repo.string() + "; cached revisions: " +
                (revisions.empty() ? "none" : join(revisions)) + "); download it with " + pull);
  }
  const fs::path& dir = *snapshot;
  if (!fs::exists(dir / "config.json", ec)) {
    throw Error(name + ": the cached snapshot " + dir.string() + " has no config.json; " + pull +
                " fetches the missing files");
  }
  if (!fs::exists(dir / "model.safetensors", ec) &&
      !fs::exists(dir / "model.safetensors.index.json", ec)) {
    const bool bin = fs::exists(dir / "pytorch_model.bin", ec);
    throw Error(name + ": the cached snapshot " + dir.string() + " has no safetensors weights" +
                (bin ? " (only pytorch_model.bin, which llmscope does not read)" : "") + "; " +
                pull + " downloads them when the repo has them");
  }
  return dir;
}

}  // namespace llmscope::hub
