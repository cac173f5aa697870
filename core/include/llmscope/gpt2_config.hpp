// GPT-2 hyper-parameters, read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace llmscope {

struct Gpt2Config {
  int64_t vocab_size = 0;
  int64_t n_positions = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_inner = 0;  // 4 * n_embd when the config says null
  double layer_norm_epsilon = 1e-5;
  std::string activation_function = "gelu_new";
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  int64_t head_dim() const { return n_embd / n_head; }

  // `source` names the file in error messages. Accepts Hugging Face's attribute aliases
  // (hidden_size, num_hidden_layers, ...). Throws llmscope::Error for a missing or bad key.
  static Gpt2Config from_json(const nlohmann::json& json, const std::string& source);
  static Gpt2Config from_file(const std::filesystem::path& config_json);
  nlohmann::json to_json() const;
};

// The activation functions Hugging Face names in configs ("gelu_new", "gelu", "relu", ...);
// throws llmscope::Error listing the supported names for any other.
void check_activation_name(const std::string& name, const std::string& source);

}  // namespace llmscope
