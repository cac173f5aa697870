// The Hugging Face cache: model names ("gpt2", "EleutherAI/gpt-neo-125m@main") resolve to
// snapshot folders laid out exactly as huggingface_hub writes them, so Python and llmscope share
// one cache. Downloading into it is the host's (llmscope/hub_pull.hpp).
//
//   <cache>/models--ORG--NAME/refs/<revision>          commit hash of a branch or tag
//   <cache>/models--ORG--NAME/snapshots/<commit>/FILE  relative symlink ../../blobs/<etag>
//   <cache>/models--ORG--NAME/blobs/<etag>             file contents (LFS files: etag = SHA-256)
#pragma once

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

}  // namespace llmscope::hub
