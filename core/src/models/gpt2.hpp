// GPT-2 (GPT2LMHeadModel) on ATen, with every Hugging Face module as a hook point.
// Weights load from safetensors with or without the "transformer." prefix; Conv1D weights are
// stored [in, out]; lm_head is tied to wte when the checkpoint has none.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "llmscope/gpt2_config.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope {

class Gpt2Model final : public Model {
 public:
  Gpt2Model(const Gpt2Config& config, const SafetensorsSet& weights, const LoadOptions& options,
            std::filesystem::path source = {});

  // The full hook point table for a GPT-2 of `n_layer` blocks.
  static HookPointTable hook_point_table(int n_layer);

  std::string architecture() const override { return "gpt2"; }
  int64_t n_layer() const override { return config_.n_layer; }
  int64_t d_model() const override { return config_.n_embd; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override { return config_.n_positions; }
  int64_t eos_token_id() const override { return config_.eos_token_id; }
  at::ScalarType dtype() const override { return dtype_; }
  at::Device device() const override { return device_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override;
  const Gpt2Config& config() const { return config_; }

  ForwardOutput forward(const ForwardInput& input, const ForwardOptions& options = {}) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override;

 private:
  struct LayerNorm {
    at::Tensor weight, bias;  // [d]
  };
  struct Conv1D {
    at::Tensor weight;  // [in, out], as Hugging Face stores it
    at::Tensor bias;    // [out]
  };
  struct Block {
    LayerNorm ln_1, ln_2;
    Conv1D c_attn, attn_c_proj, c_fc, mlp_c_proj;
  };

  at::Tensor layer_norm(const LayerNorm& ln, const at::Tensor& x) const;
  at::Tensor activation(const at::Tensor& x) const;
  at::Tensor attention(int layer, const Block& block, const at::Tensor& x,
                       const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                       bool want_attentions);
  at::Tensor block_forward(int layer, const Block& block, at::Tensor x, const at::Tensor& allowed,
                           HookRun* run, ForwardOutput& out, bool want_attentions);

  Gpt2Config config_;
  at::ScalarType dtype_;
  at::Device device_;
  at::Tensor wte_, wpe_, lm_head_;  // lm_head_ aliases wte_ when tied
  bool lm_head_tied_ = true;
  std::vector<Block> blocks_;
  LayerNorm ln_f_;
};

}  // namespace llmscope
