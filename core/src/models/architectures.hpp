// The architectures llmscope loads (internal header): one row each in the table of
// architectures.cpp, one file each in core/src/models/ that builds the model from the parts of
// model_parts.hpp. docs/howto-add-model.md walks through adding one.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llmscope/hook_points.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"
#include "models/sites.hpp"

namespace llmscope::models {

// What a loader gets: the parsed config.json, the weights, and where they came from.
struct Checkpoint {
  const nlohmann::json& config;
  std::string config_source;      // config.json's path, for errors
  const SafetensorsSet* weights;  // nullptr: random weights from `random_seed` (random_model)
  const LoadOptions& options;
  std::filesystem::path dir;
  uint64_t random_seed = 0;
};

struct Architecture {
  const char* model_type;    // config.json's "model_type"
  const char* class_prefix;  // "architectures"[0] starts with it in configs without model_type
  std::unique_ptr<Model> (*load)(const Checkpoint& checkpoint);
  const detail::SiteTable& (*sites)();  // its hook sites
};

// The table, in the order errors list the supported types.
const std::vector<Architecture>& architectures();
// The row for config.json's model_type, or nullptr.
const Architecture* find_architecture(std::string_view model_type);
// model_type, or guessed from "architectures" (old configs); "" when neither says.
std::string model_type_of(const nlohmann::json& config);
// "gpt2, gpt_neo, ... or bert", for errors.
std::string supported_list();

// ---- one pair per architecture file ----
std::unique_ptr<Model> load_gpt2(const Checkpoint& checkpoint);
const detail::SiteTable& gpt2_sites();
std::unique_ptr<Model> load_gpt_neo(const Checkpoint& checkpoint);
const detail::SiteTable& gpt_neo_sites();
std::unique_ptr<Model> load_gpt_neox(const Checkpoint& checkpoint);
const detail::SiteTable& gpt_neox_sites();
// The Llama graph: Llama, and Mistral and Qwen2 as its variants (one file, llama.cpp).
std::unique_ptr<Model> load_llama(const Checkpoint& checkpoint);
std::unique_ptr<Model> load_mistral(const Checkpoint& checkpoint);
std::unique_ptr<Model> load_qwen2(const Checkpoint& checkpoint);
const detail::SiteTable& llama_sites();
std::unique_ptr<Model> load_bert(const Checkpoint& checkpoint);
const detail::SiteTable& bert_sites();

}  // namespace llmscope::models
