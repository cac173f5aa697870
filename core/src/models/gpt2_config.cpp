#include "llmscope/gpt2_config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope {
namespace {

const std::vector<std::string> kActivations = {
    "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu", "relu", "silu", "swish"};

// The value under `key` or any of its aliases; nullptr when absent or null.
const nlohmann::json* lookup(const nlohmann::json& json, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    auto it = json.find(key);
    if (it != json.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

int64_t required_int(const nlohmann::json& json, std::initializer_list<const char*> keys,
                     const std::string& source) {
  const auto* value = lookup(json, keys);
  const char* key = *keys.begin();
  if (!value) throw Error(source + ": missing required key '" + key + "' (a positive integer)");
  if (!value->is_number_integer() || value->get<int64_t>() <= 0) {
    throw Error(source + ": key '" + key + "' must be a positive integer, got " + value->dump());
  }
  return value->get<int64_t>();
}

template <typename T>
T optional_value(const nlohmann::json& json, std::initializer_list<const char*> keys, T fallback,
                 const std::string& source, const char* expected) {
  const auto* value = lookup(json, keys);
  if (!value) return fallback;
  try {
    return value->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(source + ": key '" + *keys.begin() + "' must be " + expected + ", got " +
                value->dump());
  }
}

}  // namespace

void check_activation_name(const std::string& name, const std::string& source) {
  for (const auto& known : kActivations) {
    if (name == known) return;
  }
  throw Error(source + ": activation_function '" + name + "' is not supported (expected one of " +
              join(kActivations) + ")");
}

Gpt2Config Gpt2Config::from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) throw Error(source + ": expected a JSON object");
  if (auto it = json.find("model_type"); it != json.end() && it->is_string() && *it != "gpt2") {
    throw Error(source + ": model_type is '" + it->get<std::string>() + "', expected 'gpt2'");
  }
  Gpt2Config c;
  c.vocab_size = required_int(json, {"vocab_size"}, source);
  c.n_positions = required_int(json, {"n_positions", "max_position_embeddings"}, source);
  c.n_embd = required_int(json, {"n_embd", "hidden_size"}, source);
  c.n_layer = required_int(json, {"n_layer", "num_hidden_layers"}, source);
  c.n_head = required_int(json, {"n_head", "num_attention_heads"}, source);
  c.n_inner =
      optional_value<int64_t>(json, {"n_inner"}, 4 * c.n_embd, source, "an integer or null");
  c.layer_norm_epsilon =
      optional_value<double>(json, {"layer_norm_epsilon"}, 1e-5, source, "a number");
  c.activation_function =
      optional_value<std::string>(json, {"activation_function"}, "gelu_new", source, "a string");
  c.scale_attn_weights =
      optional_value<bool>(json, {"scale_attn_weights"}, true, source, "a boolean");
  c.scale_attn_by_inverse_layer_idx =
      optional_value<bool>(json, {"scale_attn_by_inverse_layer_idx"}, false, source, "a boolean");
  c.tie_word_embeddings =
      optional_value<bool>(json, {"tie_word_embeddings"}, true, source, "a boolean");
  c.bos_token_id = optional_value<int64_t>(json, {"bos_token_id"}, -1, source, "an integer");
  c.eos_token_id = optional_value<int64_t>(json, {"eos_token_id"}, -1, source, "an integer");
  if (c.n_embd % c.n_head != 0) {
    throw Error(source + ": n_embd (" + std::to_string(c.n_embd) +
                ") must be divisible by n_head (" + std::to_string(c.n_head) + ")");
  }
  if (c.n_inner <= 0) throw Error(source + ": n_inner must be positive");
  check_activation_name(c.activation_function, source);
  return c;
}

Gpt2Config Gpt2Config::from_file(const std::filesystem::path& config_json) {
  std::ifstream in(config_json);
  if (!in) throw_file_error(config_json, "cannot open (expected a Hugging Face config.json)");
  nlohmann::json json;
  try {
    in >> json;
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(config_json, std::string("not valid JSON: ") + e.what());
  }
  return from_json(json, config_json.string());
}

nlohmann::json Gpt2Config::to_json() const {
  return nlohmann::json{{"model_type", "gpt2"},
                        {"architectures", {"GPT2LMHeadModel"}},
                        {"vocab_size", vocab_size},
                        {"n_positions", n_positions},
                        {"n_embd", n_embd},
                        {"n_layer", n_layer},
                        {"n_head", n_head},
                        {"n_inner", n_inner},
                        {"layer_norm_epsilon", layer_norm_epsilon},
                        {"activation_function", activation_function},
                        {"scale_attn_weights", scale_attn_weights},
                        {"scale_attn_by_inverse_layer_idx", scale_attn_by_inverse_layer_idx},
                        {"tie_word_embeddings", tie_word_embeddings},
                        {"bos_token_id", bos_token_id},
                        {"eos_token_id", eos_token_id}};
}

}  // namespace llmscope
