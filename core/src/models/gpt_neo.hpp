// GPT-Neo's config.json (internal header; the model is built in gpt_neo.cpp): alternating global
// and local (windowed) attention layers expanded from attention_types as Hugging Face does.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace llmscope {

struct GptNeoConfig {
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t intermediate_size = 0;  // 4 * hidden_size when null
  int64_t window_size = 256;
  std::vector<std::string> attention_layers;  // "global" | "local", one per layer
  double layer_norm_epsilon = 1e-5;
  std::string activation_function = "gelu_new";
  int64_t eos_token_id = -1;

  // Expands attention_types ([[["global", "local"], 6]]) as Hugging Face does; throws
  // llmscope::Error naming `source` and the key for anything missing or inconsistent.
  static GptNeoConfig from_json(const nlohmann::json& json, const std::string& source);
};

}  // namespace llmscope
