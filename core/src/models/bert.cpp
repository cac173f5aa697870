#include "bert.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/model_parts.hpp"

namespace llmscope {
namespace {

// ---- Hook points, in the order forward() reaches them ----

enum BeforeSite : int { kWord, kPosition, kTokenType, kEmbNorm, kEmbDrop, kEmbeddings };
const std::vector<HookPointSpec> kBeforeSites = {
    {"bert.embeddings.word_embeddings", "hook_embed", "[batch, pos, d_model]"},
    {"bert.embeddings.position_embeddings", "hook_pos_embed", "[batch, pos, d_model]"},
    {"bert.embeddings.token_type_embeddings", "hook_token_type_embed", "[batch, pos, d_model]"},
    {"bert.embeddings.LayerNorm", nullptr, "[batch, pos, d_model]"},
    {"bert.embeddings.dropout", nullptr, "[batch, pos, d_model]"},
    {"bert.embeddings", nullptr, "[batch, pos, d_model]"},
};

enum BlockSite : int {
  kLayerIn,
  kAttentionIn,
  kSelfIn,
  kQuery,
  kKey,
  kValue,
  kQ,
  kK,
  kV,
  kScores,
  kPattern,
  kZ,
  kSelf,
  kAttnDense,
  kAttnDrop,
  kResidMid,
  kAttnNorm,
  kAttnOutput,
  kAttention,
  kInterDense,
  kAct,
  kIntermediate,
  kOutDense,
  kOutDrop,
  kResidPost,
  kOutNorm,
  kOutput,
  kLayerOut,
  kNumBlockSites
};
const std::vector<HookPointSpec> kBlockSites = {
    {"bert.encoder.layer.{L}:input", "blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention:input", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.self:input", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.self.query", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.self.key", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.self.value", nullptr, "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_attn_scores",
     "[batch, head, query_pos, key_pos] (scaled, masked)"},
    {"bert.encoder.layer.{L}.attention.self.dropout", "blocks.{L}.attn.hook_pattern",
     "[batch, head, query_pos, key_pos]"},
    {nullptr, "blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
    {"bert.encoder.layer.{L}.attention.self", nullptr, "[batch, pos, d_model] (heads merged)"},
    {"bert.encoder.layer.{L}.attention.output.dense", "blocks.{L}.hook_attn_out",
     "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.output.dropout", nullptr, "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.hook_resid_mid", "[batch, pos, d_model] (before the LayerNorm)"},
    {"bert.encoder.layer.{L}.attention.output.LayerNorm", "blocks.{L}.ln1.hook_normalized",
     "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention.output", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.attention", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.intermediate.dense", "blocks.{L}.mlp.hook_pre", "[batch, pos, d_mlp]"},
    {"bert.encoder.layer.{L}.intermediate.intermediate_act_fn", nullptr, "[batch, pos, d_mlp]"},
    {"bert.encoder.layer.{L}.intermediate", "blocks.{L}.mlp.hook_post", "[batch, pos, d_mlp]"},
    {"bert.encoder.layer.{L}.output.dense", "blocks.{L}.hook_mlp_out", "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.output.dropout", nullptr, "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.hook_resid_post", "[batch, pos, d_model] (before the LayerNorm)"},
    {"bert.encoder.layer.{L}.output.LayerNorm", "blocks.{L}.ln2.hook_normalized",
     "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}.output", nullptr, "[batch, pos, d_model]"},
    {"bert.encoder.layer.{L}", "blocks.{L}.hook_normalized_resid_post", "[batch, pos, d_model]"},
};

enum AfterSite : int {
  kEncoder,
  kBert,
  kTransformDense,
  kTransformAct,
  kTransformNorm,
  kTransform,
  kDecoder,
  kPredictions
};
const std::vector<HookPointSpec> kAfterSites = {
    {"bert.encoder", nullptr, "[batch, pos, d_model] (last hidden state)"},
    {"bert", nullptr, "[batch, pos, d_model]"},
    {"cls.predictions.transform.dense", nullptr, "[batch, pos, d_model]"},
    {"cls.predictions.transform.transform_act_fn", nullptr, "[batch, pos, d_model]"},
    {"cls.predictions.transform.LayerNorm", nullptr, "[batch, pos, d_model]"},
    {"cls.predictions.transform", nullptr, "[batch, pos, d_model]"},
    {"cls.predictions.decoder", nullptr, "[batch, pos, vocab]"},
    {"cls.predictions", "unembed.hook_logits", "[batch, pos, vocab]"},
};

}  // namespace

BertConfig BertConfig::from_json(const nlohmann::json& json, const std::string& source) {
  BertConfig c;
  c.vocab_size = detail::required_positive_int(json, "vocab_size", source);
  c.hidden_size = detail::required_positive_int(json, "hidden_size", source);
  c.num_hidden_layers = detail::required_positive_int(json, "num_hidden_layers", source);
  c.num_attention_heads = detail::required_positive_int(json, "num_attention_heads", source);
  c.intermediate_size = detail::required_positive_int(json, "intermediate_size", source);
  c.max_position_embeddings =
      detail::required_positive_int(json, "max_position_embeddings", source);
  if (json.contains("type_vocab_size"))
    c.type_vocab_size = detail::required_positive_int(json, "type_vocab_size", source);
  c.layer_norm_eps = json.value("layer_norm_eps", 1e-12);
  c.hidden_act = json.value("hidden_act", std::string("gelu"));
  check_activation_name(c.hidden_act, source);
  if (json.value("position_embedding_type", std::string("absolute")) != "absolute") {
    throw Error(source + ": position_embedding_type '" +
                json["position_embedding_type"].get<std::string>() +
                "' is not supported (expected absolute)");
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    throw Error(source + ": hidden_size (" + std::to_string(c.hidden_size) +
                ") must be divisible by num_attention_heads (" +
                std::to_string(c.num_attention_heads) + ")");
  }
  return c;
}

HookPointTable BertModel::hook_point_table(int n_layer) {
  return HookPointTable(kBeforeSites, kBlockSites, n_layer, kAfterSites);
}

BertModel::BertModel(const BertConfig& config, const SafetensorsSet& weights,
                     const LoadOptions& options, std::filesystem::path source)
    : Model(hook_point_table(static_cast<int>(config.num_hidden_layers)), std::move(source)),
      config_(config),
      dtype_(options.dtype),
      device_(options.device) {
  if (kBlockSites.size() != kNumBlockSites)
    throw std::logic_error("BERT block site table is out of sync");
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  detail::WeightReader reader(
      weights, options, "bert.", "embeddings.word_embeddings.weight", "BERT",
      "config.json (num_hidden_layers=" + std::to_string(config.num_hidden_layers) +
          ", hidden_size=" + std::to_string(d) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) +
          ", max_position_embeddings=" + std::to_string(config.max_position_embeddings) + ")");
  auto linear = [&](const std::string& name, int64_t out, int64_t in) {
    return Linear{reader.read(name + ".weight", {out, in}), reader.read(name + ".bias", {out})};
  };
  auto norm_of = [&](const std::string& name) {
    return Norm{reader.read(name + ".weight", {d}), reader.read(name + ".bias", {d})};
  };
  word_embeddings_ = reader.read("bert.embeddings.word_embeddings.weight", {vocab, d});
  position_embeddings_ = reader.read("bert.embeddings.position_embeddings.weight",
                                     {config.max_position_embeddings, d});
  token_type_embeddings_ =
      reader.read("bert.embeddings.token_type_embeddings.weight", {config.type_vocab_size, d});
  embeddings_norm_ = norm_of("bert.embeddings.LayerNorm");
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string p = "bert.encoder.layer." + std::to_string(layer) + ".";
    Layer l;
    l.query = linear(p + "attention.self.query", d, d);
    l.key = linear(p + "attention.self.key", d, d);
    l.value = linear(p + "attention.self.value", d, d);
    l.attention_out = linear(p + "attention.output.dense", d, d);
    l.attention_norm = norm_of(p + "attention.output.LayerNorm");
    l.intermediate = linear(p + "intermediate.dense", inner, d);
    l.output = linear(p + "output.dense", d, inner);
    l.output_norm = norm_of(p + "output.LayerNorm");
    layers_.push_back(std::move(l));
  }
  if (!weights.contains("cls.predictions.bias")) {
    throw_file_error(weights.path(),
                     "has no masked-LM head (cls.predictions.*): a BertForMaskedLM checkpoint is "
                     "needed, not a bare BertModel");
  }
  transform_ = linear("cls.predictions.transform.dense", d, d);
  transform_norm_ = norm_of("cls.predictions.transform.LayerNorm");
  decoder_bias_ = reader.read("cls.predictions.bias", {vocab});
  // Tied to the word embeddings; the pooler and position_ids buffers are not used by the MLM head.
  reader.check_unused(std::regex(R"(.*(position_ids|pooler\..*|cls\.predictions\.decoder\..*)$)"),
                      "encoder.layer", config.num_hidden_layers);
}

std::vector<std::pair<std::string, at::Tensor>> BertModel::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {
      {"bert.embeddings.word_embeddings.weight", word_embeddings_},
      {"bert.embeddings.position_embeddings.weight", position_embeddings_},
      {"bert.embeddings.token_type_embeddings.weight", token_type_embeddings_},
      {"bert.embeddings.LayerNorm.weight", embeddings_norm_.weight},
      {"bert.embeddings.LayerNorm.bias", embeddings_norm_.bias}};
  auto add_linear = [&](const std::string& name, const Linear& l) {
    out.emplace_back(name + ".weight", l.weight);
    out.emplace_back(name + ".bias", l.bias);
  };
  auto add_norm = [&](const std::string& name, const Norm& n) {
    out.emplace_back(name + ".weight", n.weight);
    out.emplace_back(name + ".bias", n.bias);
  };
  for (size_t layer = 0; layer < layers_.size(); ++layer) {
    const auto& l = layers_[layer];
    const std::string p = "bert.encoder.layer." + std::to_string(layer) + ".";
    add_linear(p + "attention.self.query", l.query);
    add_linear(p + "attention.self.key", l.key);
    add_linear(p + "attention.self.value", l.value);
    add_linear(p + "attention.output.dense", l.attention_out);
    add_norm(p + "attention.output.LayerNorm", l.attention_norm);
    add_linear(p + "intermediate.dense", l.intermediate);
    add_linear(p + "output.dense", l.output);
    add_norm(p + "output.LayerNorm", l.output_norm);
  }
  add_linear("cls.predictions.transform.dense", transform_);
  add_norm("cls.predictions.transform.LayerNorm", transform_norm_);
  out.emplace_back("cls.predictions.bias", decoder_bias_);
  return out;
}

at::Tensor BertModel::embed_tokens(const at::Tensor& input_ids) const {
  return at::embedding(word_embeddings_, input_ids.to(device_, at::kLong));
}

at::Tensor BertModel::norm(const Norm& n, const at::Tensor& x) const {
  return at::layer_norm(x, {config_.hidden_size}, n.weight, n.bias, config_.layer_norm_eps);
}

at::Tensor BertModel::layer_forward(int layer, const Layer& w, at::Tensor x,
                                    const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                    bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  const int64_t batch = x.size(0), pos = x.size(1), heads = config_.num_attention_heads;
  const int64_t d_head = config_.hidden_size / heads;

  auto resid_pre = site(kLayerIn, std::move(x));
  auto attn_in = site(kSelfIn, site(kAttentionIn, resid_pre));
  auto q = site(kQ, site(kQuery, at::linear(attn_in, w.query.weight, w.query.bias))
                        .view({batch, pos, heads, d_head}));
  auto k = site(
      kK,
      site(kKey, at::linear(attn_in, w.key.weight, w.key.bias)).view({batch, pos, heads, d_head}));
  auto v = site(kV, site(kValue, at::linear(attn_in, w.value.weight, w.value.bias))
                        .view({batch, pos, heads, d_head}));
  auto scores = at::matmul(q.transpose(1, 2), k.permute({0, 2, 3, 1})) /
                std::sqrt(static_cast<double>(d_head));
  scores = site(kScores, scores.masked_fill(allowed.logical_not(),
                                            detail::lowest_value(scores.scalar_type())));
  auto pattern = site(kPattern, at::softmax(scores, -1));
  if (want_attentions) out.attentions.push_back(pattern);
  auto z = site(
      kZ, at::matmul(pattern, v.transpose(1, 2)).transpose(1, 2));  // [batch, pos, head, d_head]
  auto context = site(kSelf, z.reshape({batch, pos, config_.hidden_size}));
  auto attn_out =
      site(kAttnDrop,
           site(kAttnDense, at::linear(context, w.attention_out.weight, w.attention_out.bias)));
  // Post-LayerNorm: the residual sum is normalised before the MLP sees it.
  auto resid_mid = site(kResidMid, attn_out + resid_pre);
  auto attention =
      site(kAttention, site(kAttnOutput, site(kAttnNorm, norm(w.attention_norm, resid_mid))));

  auto pre = site(kInterDense, at::linear(attention, w.intermediate.weight, w.intermediate.bias));
  auto post = site(kIntermediate, site(kAct, detail::activation(config_.hidden_act, pre)));
  auto mlp_out = site(kOutDrop, site(kOutDense, at::linear(post, w.output.weight, w.output.bias)));
  auto resid_post = site(kResidPost, mlp_out + attention);
  return site(kLayerOut, site(kOutput, site(kOutNorm, norm(w.output_norm, resid_post))));
}

ForwardOutput BertModel::forward(const ForwardInput& input, const ForwardOptions& options) {
  auto in = detail::prepare_input(
      input, {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings}, device_,
      dtype_);
  at::Tensor token_types;
  if (input.token_type_ids.defined()) {
    token_types =
        input.token_type_ids.dim() == 1 ? input.token_type_ids.unsqueeze(0) : input.token_type_ids;
    if (token_types.sizes() != at::IntArrayRef({in.batch, in.pos})) {
      throw Error("forward: token_type_ids must be [" + std::to_string(in.batch) + ", " +
                  std::to_string(in.pos) + "] like the input, got " +
                  shape_string(token_types.sizes()));
    }
    token_types = token_types.to(device_, at::kLong);
    if (token_types.min().item<int64_t>() < 0 ||
        token_types.max().item<int64_t>() >= config_.type_vocab_size) {
      throw Error("forward: token_type_ids must be in [0, " +
                  std::to_string(config_.type_vocab_size) + ")");
    }
  } else {
    token_types =
        at::zeros({in.batch, in.pos}, at::TensorOptions().dtype(at::kLong).device(device_));
  }
  // Every token sees every real token; padding is masked as a key for all queries.
  const at::Tensor allowed = in.keep.view({in.batch, 1, 1, in.pos});
  const int n_layer = static_cast<int>(config_.num_hidden_layers);
  const int n_run = detail::layers_to_run(options, n_layer);
  const HookPointTable& sites = hook_points();
  std::optional<HookRun> hook_run = detail::begin_pass(*this, options);
  HookRun* run = hook_run ? &*hook_run : nullptr;

  ForwardOutput out;
  auto words = in.has_ids
                   ? at_site(run, sites.before_id(kWord), at::embedding(word_embeddings_, in.ids))
                   : in.embeds;
  auto types =
      at_site(run, sites.before_id(kTokenType), at::embedding(token_type_embeddings_, token_types));
  auto positions = at_site(run, sites.before_id(kPosition),
                           at::embedding(position_embeddings_, in.position_ids));
  auto x =
      at_site(run, sites.before_id(kEmbNorm), norm(embeddings_norm_, words + types + positions));
  x = at_site(run, sites.before_id(kEmbeddings),
              at_site(run, sites.before_id(kEmbDrop), std::move(x)));
  if (options.output_hidden_states) out.hidden_states.push_back(x);
  for (int layer = 0; layer < n_run; ++layer) {
    x = layer_forward(layer, layers_[static_cast<size_t>(layer)], std::move(x), allowed, run, out,
                      options.output_attentions);
    if (options.output_hidden_states) out.hidden_states.push_back(x);
  }
  if (!options.stop_at_layer) {
    auto last = at_site(run, sites.after_id(kBert), at_site(run, sites.after_id(kEncoder), x));
    auto h = at_site(run, sites.after_id(kTransformDense),
                     at::linear(last, transform_.weight, transform_.bias));
    h = at_site(run, sites.after_id(kTransformAct), detail::activation(config_.hidden_act, h));
    h = at_site(run, sites.after_id(kTransform),
                at_site(run, sites.after_id(kTransformNorm), norm(transform_norm_, h)));
    auto logits =
        at_site(run, sites.after_id(kDecoder), at::linear(h, word_embeddings_, decoder_bias_));
    out.logits = at_site(run, sites.after_id(kPredictions), logits);
  }
  detail::finish_pass(run, out, options, n_run, n_layer);
  return out;
}

}  // namespace llmscope
