// BERT (BertForMaskedLM) on ATen: post-LayerNorm encoder blocks, token-type embeddings, an
// attention mask over keys, exact (erf) GELU, and the masked-LM head (dense + GELU + LayerNorm
// + decoder tied to the word embeddings, with its own bias). Hugging Face module paths are hook
// points, plus TransformerLens's BERT aliases.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope {

struct BertConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";

  static BertConfig from_json(const nlohmann::json& json, const std::string& source);
};

class BertModel final : public Model {
 public:
  BertModel(const BertConfig& config, const SafetensorsSet& weights, const LoadOptions& options,
            std::filesystem::path source = {});

  static HookPointTable hook_point_table(int n_layer);

  std::string architecture() const override { return "bert"; }
  bool is_causal() const override { return false; }
  int64_t n_layer() const override { return config_.num_hidden_layers; }
  int64_t d_model() const override { return config_.hidden_size; }
  int64_t vocab_size() const override { return config_.vocab_size; }
  int64_t max_positions() const override { return config_.max_position_embeddings; }
  at::ScalarType dtype() const override { return dtype_; }
  at::Device device() const override { return device_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override;
  const BertConfig& config() const { return config_; }

  // hidden_states as Hugging Face: [0] the embeddings (after their LayerNorm), [L+1] the
  // output of layer L; no final LayerNorm. Logits are the masked-LM head's.
  ForwardOutput forward(const ForwardInput& input, const ForwardOptions& options = {}) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override;

 private:
  struct Linear {
    at::Tensor weight, bias;  // [out, in], [out]
  };
  struct Norm {
    at::Tensor weight, bias;
  };
  struct Layer {
    Linear query, key, value, attention_out, intermediate, output;
    Norm attention_norm, output_norm;
  };
  at::Tensor layer_forward(int layer, const Layer& weights, at::Tensor x, const at::Tensor& allowed,
                           HookRun* run, ForwardOutput& out, bool want_attentions);
  at::Tensor norm(const Norm& n, const at::Tensor& x) const;

  BertConfig config_;
  at::ScalarType dtype_;
  at::Device device_;
  at::Tensor word_embeddings_, position_embeddings_, token_type_embeddings_;
  Norm embeddings_norm_;
  std::vector<Layer> layers_;
  Linear transform_;
  Norm transform_norm_;
  at::Tensor decoder_bias_;  // the decoder's weight is word_embeddings_
};

}  // namespace llmscope
