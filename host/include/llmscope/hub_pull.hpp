// Downloads from the Hugging Face hub into the cache that llmscope/hub.hpp reads, over libcurl:
// the host's side of the hub (plugins never download). A file goes to blobs/<etag>.incomplete,
// resumes from there, is checked and only then renamed into place; refs/<revision> comes last.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "llmscope/hub.hpp"

namespace llmscope::hub {

struct PullOptions {
  std::string endpoint;         // empty: $HF_ENDPOINT, else https://huggingface.co
  std::string token;            // empty: $HF_TOKEN (sent as Authorization: Bearer)
  std::filesystem::path cache;  // empty: cache_dir()
  bool progress = true;         // a progress bar on stderr, when stderr is a terminal
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  // a transfer receiving nothing for this long is abandoned
  int attempts = 4;           // per file; each retry resumes where the last one stopped
  // Asked while a file downloads; true ends the pull with llmscope::Error naming the partial
  // file, which stays in the cache for the next pull to resume (Ctrl-C in `llmscope pull`).
  std::function<bool()> stop_requested;
};

struct PulledFile {
  std::string name;  // path in the repo: "model.safetensors"
  uint64_t size = 0;
  bool downloaded = false;  // false: it was already in the cache
};

struct PullResult {
  std::string commit;
  std::filesystem::path snapshot;  // what load_model(ref) will read
  std::vector<PulledFile> files;
  uint64_t bytes_downloaded = 0;
};

// The repo files llmscope reads: config.json, the tokenizer files, and the weights
// (model.safetensors, or else model.safetensors.index.json; its shards come from the index).
// Throws llmscope::Error when `files` has no config.json or no safetensors weights.
std::vector<std::string> files_to_pull(const ModelRef& ref, const std::vector<std::string>& files);

// Downloads what the cache lacks of `ref` (see files_to_pull) and points refs/<revision> at the
// commit. Files already in the snapshot are skipped; interrupted downloads resume; LFS files
// are checked against their SHA-256. Throws llmscope::Error for an unreachable endpoint, HTTP
// errors (401/403: gated or private, 404: no such model, revision or file) and corrupt files.
PullResult pull(const ModelRef& ref, const PullOptions& options = {});

}  // namespace llmscope::hub
