// GPT-Neo (GPTNeoForCausalLM) on ATen: alternating global and local (windowed) causal
// attention, no 1/sqrt(d) scaling of attention scores, separate q/k/v projections without
// bias, nn.Linear weights stored [out, in]. Every Hugging Face module is a hook point.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

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

class GptNeoModel final : public Model {
 public:
  GptNeoModel(const GptNeoConfig& config, const SafetensorsSet& weights, const LoadOptions& options,
              std::filesystem::path source = {});

  static HookPointTable hook_point_table(int n_layer);

  std::string architecture() const override { return "gpt_neo"; }
  int64_t n_layer() const override { return config_.num_layers; }
  int64_t d_model() const override { return config_.hidden_size; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override { return config_.max_position_embeddings; }
  int64_t eos_token_id() const override { return config_.eos_token_id; }
  at::ScalarType dtype() const override { return dtype_; }
  at::Device device() const override { return device_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override;
  const GptNeoConfig& config() const { return config_; }

  ForwardOutput forward(const ForwardInput& input, const ForwardOptions& options = {}) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override;

 private:
  struct Block {
    at::Tensor ln_1_weight, ln_1_bias, ln_2_weight, ln_2_bias;
    at::Tensor q_proj, k_proj, v_proj;   // [d, d], no bias
    at::Tensor out_proj, out_proj_bias;  // [d, d], [d]
    at::Tensor c_fc, c_fc_bias;          // [inner, d], [inner]
    at::Tensor c_proj, c_proj_bias;      // [d, inner], [d]
    bool local = false;
  };
  at::Tensor attention(int layer, const Block& block, const at::Tensor& x,
                       const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                       bool want_attentions);
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x,
                           const at::Tensor& global_mask, const at::Tensor& local_mask,
                           HookRun* run, ForwardOutput& out, bool want_attentions);

  GptNeoConfig config_;
  at::ScalarType dtype_;
  at::Device device_;
  at::Tensor wte_, wpe_, ln_f_weight_, ln_f_bias_;
  std::vector<Block> blocks_;
};

}  // namespace llmscope
