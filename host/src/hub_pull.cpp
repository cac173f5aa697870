// Downloads from the Hugging Face hub over libcurl into the cache llmscope/hub.hpp reads. A
// download goes to blobs/<etag>.incomplete (resumed with a Range request when a previous try
// left one), is checked against its size and, for LFS files, its SHA-256, and is only then
// renamed into place; refs/<revision> is written last, once every file is there.
#include <curl/curl.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "io/hub_detail.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/hub_pull.hpp"
#include "llmscope/sha256.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope::hub {

namespace fs = std::filesystem;

namespace {

using detail::display_name;
using detail::env;
using detail::is_alnum;
using detail::is_hex;
using detail::trim;

constexpr const char* kDefaultEndpoint = "https://huggingface.co";
constexpr size_t kMaxBodyBytes = size_t{64} << 20;  // API answers; file bodies go to disk
constexpr size_t kMaxErrorBody = 4096;
constexpr int kMaxRelativeRedirects = 5;
constexpr auto kLockWaitLimit = std::chrono::hours(1);

// Tokenizer files the loaders read; the weights are chosen separately (files_to_pull).
const char* const kTokenizerFiles[] = {"tokenizer.json",
                                       "tokenizer_config.json",
                                       "special_tokens_map.json",
                                       "vocab.json",
                                       "merges.txt",
                                       "tokenizer.model",
                                       "vocab.txt"};

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(n);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

// Percent-encodes everything but unreserved characters (and '/' when `keep_slash`).
std::string url_quote(std::string_view text, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string normalize_endpoint(std::string endpoint) {
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0) {
    throw Error("hub endpoint '" + endpoint +
                "' is not an http:// or https:// URL (check HF_ENDPOINT)");
  }
  return endpoint;
}

// ---- HTTP over libcurl --------------------------------------------------------------------

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; the last response of a chain
  std::string body;                            // API answers and error bodies
  std::string redirect_url;                    // absolute Location of a 3xx not followed

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// The request never got an HTTP answer (or the answer broke off).
struct TransferError {
  CURLcode code = CURLE_OK;
  std::string detail;
  bool no_connection = false;  // never connected: DNS, refused, connect timeout
  bool local = false;          // writing the file failed, not the network
  bool stopped = false;        // PullOptions::stop_requested ended it
};

// One line redrawn in place on stderr: name, bar, percentage, bytes and rate.
class ProgressBar {
 public:
  // `from`: bytes already on disk before this transfer (they do not count towards the rate).
  ProgressBar(bool enabled, std::string label, uint64_t from)
      : enabled_(enabled), label_(std::move(label)), first_(from) {
    if (label_.size() > 28) label_ = "..." + label_.substr(label_.size() - 25);
  }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar() { finish(); }

  void update(uint64_t done, uint64_t total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!drawn_) {
      start_ = now;
    } else if (done == last_done_ ||
               (now - last_ < std::chrono::milliseconds(100) && done < total)) {
      return;  // nothing new, or too soon (the last byte is always drawn)
    }
    drawn_ = true;
    last_ = now;
    last_done_ = done;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate =
        seconds > 0.2 && done > first_ ? static_cast<double>(done - first_) / seconds : 0.0;
    constexpr int kWidth = 24;
    const int filled =
        total > 0 ? static_cast<int>(std::min<uint64_t>(done, total) * kWidth / total) : 0;
    const int percent =
        total > 0 ? static_cast<int>(std::min<uint64_t>(done, total) * 100 / total) : 0;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    const std::string speed =
        rate > 0 ? "  " + human_bytes(static_cast<uint64_t>(rate)) + "/s" : "";
    std::fprintf(stderr, "\r%-28s [%s] %3d%%  %s / %s%s\x1b[K", label_.c_str(), bar.c_str(),
                 percent, human_bytes(done).c_str(), total > 0 ? human_bytes(total).c_str() : "?",
                 speed.c_str());
    std::fflush(stderr);
  }

  void finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
    enabled_ = false;
  }

 private:
  bool enabled_;
  std::string label_;
  uint64_t first_;
  bool drawn_ = false;
  uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response in a redirect chain
    response->headers.clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;
  std::string name = trim(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  response->headers[name] = trim(line.substr(colon + 1));
  return n;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t n = size * count;
  if (body->size() + n > kMaxBodyBytes) return 0;  // aborts: no API answer is this large
  body->append(data, n);
  return n;
}

// Where a download's bytes go: appended to `fd`, or (for an error status) kept as text.
struct Sink {
  CURL* curl = nullptr;
  Response* response = nullptr;
  int fd = -1;
  uint64_t offset = 0;  // bytes already in the file when the request went out
  bool started = false;
  bool writing = false;
  std::string failure;  // set when writing failed; aborts the transfer
  bool bad_range = false;
  ProgressBar* bar = nullptr;
  const std::function<bool()>* stop_requested = nullptr;
  bool stopped = false;
};

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The first body byte tells which answer this is: 206 continues the file, 200 replaces it.
void start_sink(Sink& sink) {
  sink.started = true;
  curl_easy_getinfo(sink.curl, CURLINFO_RESPONSE_CODE, &sink.response->status);
  if (sink.response->status == 206) {
    uint64_t first = 0;
    const auto range = sink.response->header("content-range");
    if (std::sscanf(range.c_str(), "bytes %" SCNu64, &first) != 1 || first != sink.offset) {
      sink.bad_range = true;
      return;
    }
    sink.writing = true;
  } else if (sink.response->status == 200) {
    if (sink.offset > 0 && (::ftruncate(sink.fd, 0) != 0)) {
      sink.failure = std::strerror(errno);
      return;
    }
    sink.offset = 0;  // the server ignored the Range: start over
    sink.writing = true;
  }
}

size_t on_download(char* data, size_t size, size_t count, void* user) {
  auto& sink = *static_cast<Sink*>(user);
  const size_t n = size * count;
  if (!sink.started) start_sink(sink);
  if (sink.bad_range || !sink.failure.empty()) return 0;
  if (!sink.writing) {
    auto& body = sink.response->body;
    body.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, body.size())));
    return n;
  }
  if (!write_all(sink.fd, data, n)) {
    sink.failure = std::strerror(errno);
    return 0;
  }
  return n;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t /*upload_total*/,
                curl_off_t /*upload_now*/) {
  auto& sink = *static_cast<Sink*>(user);
  if (sink.stop_requested && *sink.stop_requested && (*sink.stop_requested)()) {
    sink.stopped = true;
    return 1;  // aborts the transfer
  }
  if (sink.writing && sink.bar) {
    sink.bar->update(sink.offset + static_cast<uint64_t>(now),
                     total > 0 ? sink.offset + static_cast<uint64_t>(total) : 0);
  }
  return 0;
}

class Http {
 public:
  Http(const PullOptions& options, const std::string& token) : options_(options) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl_ = curl_easy_init();
    if (!curl_) throw Error("libcurl failed to initialise");
    if (!token.empty())
      headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + token).c_str());
  }
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;
  ~Http() {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(curl_);
  }

  // GET, following redirects; the body is kept in memory.
  Response get(const std::string& url) {
    Response response;
    prepare(url, response);
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response.body);
    perform(response);
    return response;
  }

  // HEAD, following only relative redirects (a renamed repo) as huggingface_hub does: the
  // answer that redirects to a CDN carries the file's metadata (X-Linked-Etag, X-Linked-Size).
  Response head(std::string url) {
    for (int hop = 0;; ++hop) {
      Response response;
      prepare(url, response);
      curl_easy_setopt(curl_, CURLOPT_NOBODY, 1L);
      perform(response);
      const bool relative = response.header("location").rfind('/', 0) == 0;
      if (response.status < 300 || response.status >= 400 || !relative ||
          hop == kMaxRelativeRedirects) {
        return response;
      }
      url = response.redirect_url;
    }
  }

  // GET into `fd` (opened for appending, holding `offset` bytes), asking for the rest with a
  // Range request when offset > 0. Throws TransferError when the transfer breaks off.
  Response download(const std::string& url, int fd, uint64_t offset, ProgressBar* bar) {
    Response response;
    Sink sink;
    sink.curl = curl_;
    sink.response = &response;
    sink.fd = fd;
    sink.offset = offset;
    sink.bar = bar;
    sink.stop_requested = &options_.stop_requested;
    prepare(url, response);
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, on_download);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, &sink);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    const std::string range = std::to_string(offset) + "-";
    if (offset > 0) curl_easy_setopt(curl_, CURLOPT_RANGE, range.c_str());
    try {
      perform(response);
    } catch (TransferError& e) {
      if (sink.stopped) {
        e.stopped = true;
      } else if (!sink.failure.empty()) {
        e.local = true;
        e.detail = sink.failure;
      } else if (sink.bad_range) {
        e.detail = "the server answered the Range request with the wrong bytes ('" +
                   response.header("content-range") + "')";
      }
      throw;
    }
    if (!sink.started) start_sink(sink);  // an empty body
    if (sink.bad_range)
      throw TransferError{CURLE_RANGE_ERROR,
                          "the server answered the Range request with the wrong bytes", false,
                          false};
    if (!sink.failure.empty()) throw TransferError{CURLE_WRITE_ERROR, sink.failure, false, true};
    return response;
  }

 private:
  void prepare(const std::string& url, Response& response) {
    curl_easy_reset(curl_);
    error_[0] = '\0';
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "llmscope/0.1");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl_, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(curl_, CURLOPT_REDIR_PROTOCOLS,
                     static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl_, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_s);
    // Abandon a transfer that receives (on average) under 1 byte/s for the stall time.
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, options_.stall_timeout_s);
    // Custom headers are not sent to another host after a redirect (libcurl >= 7.58), so the
    // token stays with the hub and never reaches a CDN.
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &response);
  }

  void perform(Response& response) {
    const CURLcode code = curl_easy_perform(curl_);
    if (code != CURLE_OK) {
      curl_off_t connected_us = 0;
      curl_easy_getinfo(curl_, CURLINFO_CONNECT_TIME_T, &connected_us);
      TransferError error;
      error.code = code;
      error.detail = error_[0] ? trim(error_) : curl_easy_strerror(code);
      error.no_connection = code == CURLE_COULDNT_RESOLVE_HOST ||
                            code == CURLE_COULDNT_RESOLVE_PROXY || code == CURLE_COULDNT_CONNECT ||
                            (code == CURLE_OPERATION_TIMEDOUT && connected_us == 0);
      throw error;
    }
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &response.status);
    char* redirect = nullptr;
    if (curl_easy_getinfo(curl_, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect) {
      response.redirect_url = redirect;
    }
  }

  const PullOptions& options_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  char error_[CURL_ERROR_SIZE] = {};
};

// An exclusive flock on .locks/models--X/<etag>.lock, the file huggingface_hub's FileLock
// takes, so llmscope and Python never write the same blob at once.
class FileLock {
 public:
  FileLock(const fs::path& path, const std::string& what) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw_file_error(path,
                       std::string("cannot create the download lock: ") + std::strerror(errno));
    const auto give_up = std::chrono::steady_clock::now() + kLockWaitLimit;
    bool told = false;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        std::string why = std::strerror(errno);
        ::close(fd_);
        throw_file_error(path, "cannot lock: " + why);
      }
      if (std::chrono::steady_clock::now() > give_up) {
        ::close(fd_);
        throw_file_error(
            path, "another process has been downloading " + what + " for an hour; giving up");
      }
      if (!told)
        spdlog::info("waiting for another process downloading {} ({})", what, path.string());
      told = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { ::close(fd_); }  // closing releases the lock

 private:
  int fd_ = -1;
};

struct FileMeta {
  std::string etag;  // the blob's name
  std::optional<uint64_t> size;
  std::optional<std::string> sha256;  // LFS files: X-Linked-Etag is the content's SHA-256
};

std::string normalize_etag(std::string etag) {
  if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
  etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
  return etag;
}

std::optional<uint64_t> parse_size(const std::string& text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(text);
}

// Creates (or replaces) snapshots/<commit>/<file> as a relative symlink to the blob, or as a
// copy where the file system has no symlinks.
void link_into_snapshot(const fs::path& pointer, const fs::path& blob) {
  std::error_code ec;
  fs::create_directories(pointer.parent_path(), ec);
  if (ec)
    throw_file_error(pointer.parent_path(), "cannot create the snapshot folder: " + ec.message());
  const fs::path temp = temp_path_beside(pointer);
  fs::remove(temp, ec);
  fs::create_symlink(blob.lexically_relative(pointer.parent_path()), temp, ec);
  if (ec) {
    spdlog::debug("{}: no symlink ({}); copying the blob", pointer.string(), ec.message());
    fs::copy_file(blob, temp, fs::copy_options::overwrite_existing, ec);
    if (ec) throw_file_error(pointer, "cannot create it: " + ec.message());
  }
  fs::rename(temp, pointer, ec);
  if (ec) {
    fs::remove(temp);
    throw_file_error(pointer, "cannot move into place: " + ec.message());
  }
}

class Puller {
 public:
  Puller(const ModelRef& ref, const PullOptions& options)
      : ref_(ref),
        options_(options),
        endpoint_(normalize_endpoint(
            options.endpoint.empty()
                ? (env("HF_ENDPOINT").empty() ? kDefaultEndpoint : env("HF_ENDPOINT"))
                : options.endpoint)),
        token_(options.token.empty() ? env("HF_TOKEN") : options.token),
        cache_(options.cache.empty() ? cache_dir() : options.cache),
        repo_(repo_dir(cache_, ref.repo)),
        http_(options, token_),
        progress_(options.progress && ::isatty(STDERR_FILENO)) {}

  PullResult run() {
    PullResult result;
    std::vector<std::string> siblings;
    result.commit = fetch_info(siblings);
    commit_ = result.commit;
    result.snapshot = snapshot_ = repo_ / "snapshots" / commit_;
    const std::set<std::string> available(siblings.begin(), siblings.end());

    std::vector<std::string> files = files_to_pull(ref_, siblings);
    for (size_t i = 0; i < files.size(); ++i) {
      result.files.push_back(fetch(files[i], result.bytes_downloaded));
      if (files[i] != "model.safetensors.index.json") continue;
      for (const auto& shard : shards_of(snapshot_ / files[i], available)) files.push_back(shard);
    }
    if (ref_.revision != commit_) write_file_atomic(repo_ / "refs" / ref_.revision, commit_);
    return result;
  }

 private:
  std::string api_url() const {
    return endpoint_ + "/api/models/" + url_quote(ref_.repo, true) + "/revision/" +
           url_quote(ref_.revision, false);
  }

  std::string file_url(const std::string& file) const {
    return endpoint_ + "/" + url_quote(ref_.repo, true) + "/resolve/" + commit_ + "/" +
           url_quote(file, true);
  }

  // The commit the revision names, and the repo's file list.
  std::string fetch_info(std::vector<std::string>& siblings) {
    const auto url = api_url();
    Response response;
    try {
      response = http_.get(url);
    } catch (const TransferError& e) {
      unreachable(e);
    }
    if (response.status != 200) http_error(response, url, "");
    const std::string expected =
        url + ": unexpected answer (expected JSON with \"sha\" and \"siblings\")";
    nlohmann::json info;
    try {
      info = nlohmann::json::parse(response.body);
    } catch (const nlohmann::json::exception& e) {
      throw Error(expected + ": " + e.what());
    }
    if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string() ||
        !info.contains("siblings") || !info["siblings"].is_array()) {
      throw Error(expected);
    }
    auto commit = info["sha"].get<std::string>();
    // The commit becomes a folder name: hex only.
    if (!is_hex(commit) || commit.size() > 64)
      throw Error(expected + ": sha '" + commit + "' is not a commit hash");
    for (const auto& sibling : info["siblings"]) {
      if (sibling.is_object() && sibling.contains("rfilename") &&
          sibling["rfilename"].is_string()) {
        siblings.push_back(sibling["rfilename"].get<std::string>());
      }
    }
    return commit;
  }

  // Shard file names from a downloaded index, each one a file of the repo.
  std::vector<std::string> shards_of(const fs::path& index,
                                     const std::set<std::string>& available) const {
    std::ifstream in(index);
    nlohmann::json json;
    try {
      in >> json;
    } catch (const nlohmann::json::exception& e) {
      throw_file_error(index, std::string("not valid JSON: ") + e.what());
    }
    if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
      throw_file_error(index, "expected {\"weight_map\": {tensor name: shard file name, ...}}");
    }
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : json["weight_map"].items()) {
      if (!shard.is_string())
        throw_file_error(index, "weight_map['" + tensor + "'] is not a file name");
      const auto name = shard.get<std::string>();
      if (!available.count(name) || name.find('/') != std::string::npos) {
        throw_file_error(index,
                         "names shard '" + name + "', which " + ref_.str() + " does not have");
      }
      shards.insert(name);
    }
    return {shards.begin(), shards.end()};
  }

  PulledFile fetch(const std::string& file, uint64_t& bytes_downloaded) {
    PulledFile pulled{file, 0, false};
    const fs::path pointer = snapshot_ / file;
    std::error_code ec;
    if (fs::exists(pointer, ec)) {  // follows the symlink: a dangling one is fetched again
      pulled.size = fs::file_size(pointer, ec);
      spdlog::debug("{}: already in the cache", pointer.string());
      return pulled;
    }
    const auto url = file_url(file);
    Response head;
    try {
      head = http_.head(url);
    } catch (const TransferError& e) {
      unreachable(e);
    }
    if (head.status >= 400) http_error(head, url, file);
    const FileMeta meta = file_meta(head, url);
    const fs::path blob = repo_ / "blobs" / meta.etag;
    if (!fs::exists(blob, ec)) {
      FileLock lock(cache_ / ".locks" / repo_.filename() / (meta.etag + ".lock"), file);
      if (!fs::exists(blob, ec)) {
        bytes_downloaded += download_blob(file, url, meta, blob);
        pulled.downloaded = true;
      }
    }
    link_into_snapshot(pointer, blob);
    pulled.size = fs::file_size(blob, ec);
    return pulled;
  }

  static FileMeta file_meta(const Response& head, const std::string& url) {
    FileMeta meta;
    const auto linked = normalize_etag(head.header("x-linked-etag"));
    meta.etag = linked.empty() ? normalize_etag(head.header("etag")) : linked;
    // The ETag becomes a file name: nothing that could leave blobs/.
    const bool safe = !meta.etag.empty() && meta.etag.size() <= 128 &&
                      std::all_of(meta.etag.begin(), meta.etag.end(),
                                  [](char c) { return is_alnum(c) || c == '-' || c == '_'; });
    if (!safe) {
      throw Error(url + ": the server sent no usable ETag ('" + meta.etag +
                  "'), which names the file in the cache");
    }
    if (!linked.empty() && linked.size() == 64) {
      meta.sha256 = linked;
      std::transform(meta.sha256->begin(), meta.sha256->end(), meta.sha256->begin(),
                     [](unsigned char c) { return std::tolower(c); });
      if (!is_hex(*meta.sha256)) meta.sha256.reset();
    }
    meta.size = parse_size(head.header("x-linked-size"));
    if (!meta.size && head.status == 200) meta.size = parse_size(head.header("content-length"));
    return meta;
  }

  // Downloads into blobs/<etag>.incomplete, resuming what is there, checks it and renames it
  // to `blob`. Returns the bytes received.
  uint64_t download_blob(const std::string& file, const std::string& url, const FileMeta& meta,
                         const fs::path& blob) {
    std::error_code ec;
    fs::create_directories(blob.parent_path(), ec);
    if (ec) throw_file_error(blob.parent_path(), "cannot create the cache folder: " + ec.message());
    const fs::path part = blob.string() + ".incomplete";
    const int attempts = std::max(1, options_.attempts);
    uint64_t received = 0;
    for (int attempt = 1;; ++attempt) {
      uint64_t offset = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
      if (meta.size && offset > *meta.size) {
        fs::remove(part, ec);
        offset = 0;
      }
      const std::string size_text = meta.size ? " of " + human_bytes(*meta.size) : "";
      if (offset > 0) {
        spdlog::info("{}: resuming the download at {}{}", file, human_bytes(offset), size_text);
      } else if (!progress_) {
        spdlog::info("downloading {}{}", file,
                     meta.size ? " (" + human_bytes(*meta.size) + ")" : "");
      }
      const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) throw_file_error(part, std::string("cannot write: ") + std::strerror(errno));
      if (meta.size && offset == *meta.size) {  // a previous try got everything: just check it
        ::close(fd);
        break;
      }
      std::optional<TransferError> failed;
      Response response;
      {
        ProgressBar bar(progress_, file, offset);
        try {
          response = http_.download(url, fd, offset, &bar);
        } catch (const TransferError& e) {
          failed = e;
        }
      }
      ::close(fd);
      const uint64_t now = fs::file_size(part, ec);
      if (!ec && now > offset) received += now - offset;
      if (failed && failed->local) throw_file_error(part, "cannot write: " + failed->detail);
      if (failed && failed->stopped) {
        throw Error("stopped downloading " + file + " at " + human_bytes(now) + size_text +
                    "; the part is kept in " + part.string() + ": run `llmscope pull " +
                    display_name(ref_) + "` again to resume");
      }
      if (!failed) {
        if (response.status == 200 || response.status == 206) {
          if (!meta.size || now == *meta.size) break;
          if (now > *meta.size) {
            fs::remove(part, ec);
            throw Error(file + " from " + url + ": received " + std::to_string(now) +
                        " bytes, expected " + std::to_string(*meta.size) +
                        "; the download was deleted");
          }
          failed = TransferError{CURLE_PARTIAL_FILE, "the connection closed early", false, false};
        } else if (response.status == 416) {  // our partial file does not fit the server's: restart
          fs::remove(part, ec);
          failed = TransferError{CURLE_RANGE_ERROR, "HTTP 416 for the resumed range", false, false};
        } else if (response.status != 429 && response.status < 500) {
          http_error(response, url, file);
        } else {
          failed = TransferError{CURLE_OK, "HTTP " + std::to_string(response.status), false, false};
        }
      }
      if (attempt >= attempts) {
        if (failed->no_connection) unreachable(*failed);
        throw Error("downloading " + file + " from " + url + " failed after " +
                    std::to_string(attempts) + " attempts: " + failed->detail +
                    "; run `llmscope pull " + display_name(ref_) + "` again to resume");
      }
      spdlog::warn("{}: download interrupted at {} ({}); retrying ({}/{})", file,
                   human_bytes(fs::exists(part, ec) ? fs::file_size(part, ec) : 0), failed->detail,
                   attempt + 1, attempts);
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(2000, 250 * attempt)));
    }

    const uint64_t size = fs::file_size(part, ec);
    if (meta.size && size != *meta.size) {
      fs::remove(part, ec);
      throw Error(file + " from " + url + ": got " + std::to_string(size) + " bytes, expected " +
                  std::to_string(*meta.size) + "; the download was deleted");
    }
    if (meta.sha256) {
      const auto actual = sha256_file(part);
      if (actual != *meta.sha256) {
        fs::remove(part, ec);
        throw Error(file + " from " + url + ": SHA-256 mismatch (expected " + *meta.sha256 +
                    ", got " + actual +
                    "): the download is corrupt and was deleted; run `llmscope pull " +
                    display_name(ref_) + "` again");
      }
    }
    commit_atomic(part, blob);
    return received;
  }

  [[noreturn]] void unreachable(const TransferError& e) const {
    std::string message =
        "cannot reach " + endpoint_ + ": " + e.detail + " (offline? set HF_ENDPOINT for a mirror)";
    if (auto snapshot = find_snapshot(ref_, cache_)) {
      message += "; the cache already has " + display_name(ref_) + " (" + snapshot->string() + ")";
    }
    throw Error(message);
  }

  [[noreturn]] void http_error(const Response& response, const std::string& url,
                               const std::string& file) const {
    const long status = response.status;
    const std::string code = response.header("x-error-code");
    const std::string server_says = response.header("x-error-message");
    const std::string http = "HTTP " + std::to_string(status) + " from " + url;
    const std::string subject =
        file.empty() ? display_name(ref_) : ref_.repo + "@" + commit_ + ": " + file;
    if (status == 401 || status == 403) {
      const std::string token_hint = token_.empty()
                                         ? "if you have access, set HF_TOKEN to an access token (" +
                                               std::string(kDefaultEndpoint) + "/settings/tokens)"
                                         : "HF_TOKEN was sent: check that its account has access";
      if (code == "GatedRepo") {
        throw Error(subject + ": " + ref_.repo + " is gated (" + http +
                    "); accept its conditions at " + endpoint_ + "/" + ref_.repo + " and " +
                    token_hint);
      }
      throw Error(subject + ": access denied (" + http +
                  "): the model does not exist, or it is private or gated; " + token_hint);
    }
    if (status == 404) {
      if (code == "RevisionNotFound") {
        throw Error(subject + ": no revision '" + ref_.revision + "' in " + ref_.repo + " (" +
                    http + ")");
      }
      if (code == "EntryNotFound" || (!file.empty() && code != "RepoNotFound")) {
        throw Error(subject + ": no such file in " + ref_.repo + "@" + commit_ + " (" + http + ")");
      }
      if (code == "RepoNotFound") {
        throw Error(subject + ": no model '" + ref_.repo + "' at " + endpoint_ + " (" + http +
                    "; names look like gpt2 or EleutherAI/gpt-neo-125m)");
      }
      throw Error(subject + ": no model '" + ref_.repo + "' or no revision '" + ref_.revision +
                  "' at " + endpoint_ + " (" + http + ")");
    }
    std::string detail = server_says.empty() ? trim(response.body.substr(0, 200)) : server_says;
    throw Error(subject + ": " + http + (detail.empty() ? "" : ": " + detail));
  }

  const ModelRef& ref_;
  const PullOptions& options_;
  std::string endpoint_;
  std::string token_;
  fs::path cache_;
  fs::path repo_;
  Http http_;
  bool progress_;
  std::string commit_;
  fs::path snapshot_;
};

}  // namespace

std::vector<std::string> files_to_pull(const ModelRef& ref, const std::vector<std::string>& files) {
  const std::set<std::string> have(files.begin(), files.end());
  if (!have.count("config.json")) {
    throw Error(ref.str() + " has no config.json, so it is not a model llmscope can load");
  }
  std::vector<std::string> out = {"config.json"};
  for (const char* name : kTokenizerFiles) {
    if (have.count(name)) out.emplace_back(name);
  }
  if (have.count("model.safetensors")) {
    out.emplace_back("model.safetensors");
  } else if (have.count("model.safetensors.index.json")) {
    out.emplace_back("model.safetensors.index.json");  // the shards follow from the index
  } else {
    throw Error(ref.str() +
                " has no safetensors weights (model.safetensors or model.safetensors.index.json)" +
                (have.count("pytorch_model.bin")
                     ? std::string(", only pytorch_model.bin, which llmscope does not read")
                     : std::string()));
  }
  return out;
}

PullResult pull(const ModelRef& ref, const PullOptions& options) {
  return Puller(ref, options).run();
}

}  // namespace llmscope::hub
