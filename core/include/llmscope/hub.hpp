// The Hugging Face hub: model names ("gpt2", "EleutherAI/gpt-neo-125m@main") resolve to snapshot
// folders in the cache laid out exactly as huggingface_hub writes it, and pull() downloads the
// files llmscope reads into that same layout, so Python and llmscope share one cache.
//
//   <cache>/models--ORG--NAME/refs/<revision>          commit hash of a branch or tag
//   <cache>/models--ORG--NAME/snapshots/<commit>/FILE  relative symlink ../../blobs/<etag>
//   <cache>/models--ORG--NAME/blobs/<etag>             file contents (LFS files: etag = SHA-256)
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmscope::hub {

// NAME or ORG/NAME, optionally @REVISION (a branch, tag or commit hash).
struct ModelRef {
  std::string repo;  // "gpt2", "EleutherAI/gpt-neo-125m"
  std::string revision = "main";
  std::string str() const;  // "gpt2@main"
};

// Whether `text` has the shape of a model name rather than of a path: no leading '/', '.' or
// '~', at most one '/' before the '@', letters, digits and "-_." only.
bool is_model_ref(std::string_view text);
// Throws llmscope::Error saying what a model name looks like.
ModelRef parse_model_ref(std::string_view text);

// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (huggingface_hub's order).
std::filesystem::path cache_dir();
// <cache>/models--ORG--NAME ("models--gpt2" for names without an org).
std::filesystem::path repo_dir(const std::filesystem::path& cache, const std::string& repo);
// Names of the models with at least one snapshot in `cache`, sorted.
std::vector<std::string> cached_models(const std::filesystem::path& cache);

// The snapshot folder `ref` names in `cache`, or nothing when the cache does not have it.
std::optional<std::filesystem::path> find_snapshot(const ModelRef& ref,
                                                   const std::filesystem::path& cache);
// The snapshot folder of `ref`, checked to hold a config.json and safetensors weights. Throws
// llmscope::Error saying what is missing (model, revision, snapshot or files) and suggesting
// `llmscope pull NAME`; lists the cached models when the name is unknown.
std::filesystem::path resolve_model(const ModelRef& ref,
                                    const std::filesystem::path& cache = cache_dir());

struct PullOptions {
  std::string endpoint;         // empty: $HF_ENDPOINT, else https://huggingface.co
  std::string token;            // empty: $HF_TOKEN (sent as Authorization: Bearer)
  std::filesystem::path cache;  // empty: cache_dir()
  bool progress = true;         // a progress bar on stderr, when stderr is a terminal
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  // a transfer receiving nothing for this long is abandoned
  int attempts = 4;           // per file; each retry resumes where the last one stopped
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
