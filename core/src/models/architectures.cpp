// The one table of architectures: sniffing a config, checking support, constructing the model
// and listing hook points all read it, so a new architecture is one row here and one file.
#include "models/architectures.hpp"

#include <nlohmann/json.hpp>

#include "llmscope/error.hpp"

namespace llmscope {
namespace models {

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> table = {
      {"gpt2", "GPT2", load_gpt2, gpt2_sites},
      {"gpt_neo", "GPTNeo", load_gpt_neo, gpt_neo_sites},
      {"gpt_neox", "GPTNeoX", load_gpt_neox, gpt_neox_sites},
      {"llama", "Llama", load_llama, llama_sites},
      {"mistral", "Mistral", load_mistral, llama_sites},
      {"qwen2", "Qwen2", load_qwen2, llama_sites},
      {"bert", "Bert", load_bert, bert_sites},
  };
  return table;
}

const Architecture* find_architecture(std::string_view model_type) {
  for (const auto& arch : architectures()) {
    if (model_type == arch.model_type) return &arch;
  }
  return nullptr;
}

std::string model_type_of(const nlohmann::json& config) {
  auto type = config.find("model_type");
  if (type != config.end() && type->is_string()) return type->get<std::string>();
  auto classes = config.find("architectures");
  if (classes == config.end() || !classes->is_array() || classes->empty() ||
      !(*classes)[0].is_string()) {
    return "";
  }
  const auto name = (*classes)[0].get<std::string>();
  // The longest prefix wins: "GPTNeoForCausalLM" is GPT-Neo, not GPT-2, and
  // "GPTNeoXForCausalLM" GPT-NeoX, not GPT-Neo.
  const Architecture* best = nullptr;
  for (const auto& arch : architectures()) {
    const std::string_view prefix = arch.class_prefix;
    if (name.rfind(prefix, 0) == 0 &&
        (!best || prefix.size() > std::string_view(best->class_prefix).size())) {
      best = &arch;
    }
  }
  return best ? best->model_type : "";
}

std::string supported_list() {
  const auto types = supported_model_types();
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += i + 1 == types.size() ? " or " : ", ";
    out += types[i];
  }
  return out;
}

}  // namespace models

std::vector<std::string> supported_model_types() {
  std::vector<std::string> types;
  for (const auto& arch : models::architectures()) types.emplace_back(arch.model_type);
  return types;
}

HookPointTable hook_point_table(const std::string& model_type, int n_layer) {
  const auto* arch = models::find_architecture(model_type);
  if (!arch) {
    throw Error("model_type '" + model_type + "' is not supported (expected " +
                models::supported_list() + ")");
  }
  if (n_layer <= 0) throw Error("hook_point_table: n_layer must be positive");
  return arch->sites().hook_points(n_layer);
}

}  // namespace llmscope
