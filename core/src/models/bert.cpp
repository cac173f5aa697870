// BERT (BertForMaskedLM): post-LayerNorm encoder blocks, token-type embeddings, an attention
// mask over keys, exact (erf) GELU, and the masked-LM head (dense + GELU + LayerNorm + decoder
// tied to the word embeddings, with its own bias). Hugging Face module paths are hook points,
// plus TransformerLens's BERT aliases.
#include <nlohmann/json.hpp>

#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/architectures.hpp"
#include "models/model_parts.hpp"

namespace llmscope {

using detail::Step;

// ---- Hook points: the steps this architecture has, in the order forward() reaches them, with
// Hugging Face's module paths (each step's alias and shape come from sites.cpp) ----

const detail::SiteTable& models::bert_sites() {
  static const detail::SiteTable table(
      {
          {Step::kEmbed, "bert.embeddings.word_embeddings"},
          {Step::kPosEmbed, "bert.embeddings.position_embeddings"},
          {Step::kTokenTypeEmbed, "bert.embeddings.token_type_embeddings"},
          {Step::kEmbedNorm, "bert.embeddings.LayerNorm"},
          {Step::kEmbedDropout, "bert.embeddings.dropout"},
          {Step::kEmbeddings, "bert.embeddings"},
      },
      {
          {Step::kResidPre, "bert.encoder.layer.{L}:input"},
          {Step::kAttnIn, "bert.encoder.layer.{L}.attention:input"},
          {Step::kSelfAttnIn, "bert.encoder.layer.{L}.attention.self:input"},
          {Step::kQProj, "bert.encoder.layer.{L}.attention.self.query"},
          {Step::kKProj, "bert.encoder.layer.{L}.attention.self.key"},
          {Step::kVProj, "bert.encoder.layer.{L}.attention.self.value"},
          {Step::kQ},
          {Step::kK},
          {Step::kV},
          {Step::kScores, nullptr, "[batch, head, query_pos, key_pos] (scaled, masked)"},
          {Step::kPattern, "bert.encoder.layer.{L}.attention.self.dropout"},
          {Step::kZ},
          {Step::kMerged, "bert.encoder.layer.{L}.attention.self"},
          {Step::kAttnProj, "bert.encoder.layer.{L}.attention.output.dense", nullptr,
           "blocks.{L}.hook_attn_out"},
          {Step::kAttnDropout, "bert.encoder.layer.{L}.attention.output.dropout"},
          {Step::kResidMid, nullptr, "[batch, pos, d_model] (before the LayerNorm)"},
          {Step::kLn1, "bert.encoder.layer.{L}.attention.output.LayerNorm"},
          {Step::kAttnOutputModule, "bert.encoder.layer.{L}.attention.output"},
          {Step::kAttnModule, "bert.encoder.layer.{L}.attention"},
          {Step::kMlpPre, "bert.encoder.layer.{L}.intermediate.dense"},
          {Step::kMlpAct, "bert.encoder.layer.{L}.intermediate.intermediate_act_fn"},
          {Step::kMlpPost, "bert.encoder.layer.{L}.intermediate"},
          {Step::kProj, "bert.encoder.layer.{L}.output.dense", nullptr, "blocks.{L}.hook_mlp_out"},
          {Step::kMlpDropout, "bert.encoder.layer.{L}.output.dropout"},
          {Step::kResidPost, nullptr, "[batch, pos, d_model] (before the LayerNorm)"},
          {Step::kLn2, "bert.encoder.layer.{L}.output.LayerNorm"},
          {Step::kMlpOutputModule, "bert.encoder.layer.{L}.output"},
          {Step::kNormalizedResidPost, "bert.encoder.layer.{L}"},
      },
      {
          {Step::kEncoder, "bert.encoder"},
          {Step::kBaseModel, "bert", "[batch, pos, d_model]"},
          {Step::kTransformDense, "cls.predictions.transform.dense"},
          {Step::kTransformAct, "cls.predictions.transform.transform_act_fn"},
          {Step::kTransformNorm, "cls.predictions.transform.LayerNorm"},
          {Step::kTransform, "cls.predictions.transform"},
          {Step::kDecoder, "cls.predictions.decoder"},
          {Step::kLogits, "cls.predictions"},
      });
  return table;
}

namespace {

// BERT's config.json.
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

class BertModel final : public detail::CheckpointModel {
 public:
  BertModel(const BertConfig& config, const models::Checkpoint& checkpoint);

  ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                    KvCache* cache) override;
  at::Tensor embed_tokens(const at::Tensor& input_ids) const override {
    return at::embedding(word_embeddings_, input_ids.to(device_, at::kLong));
  }

 private:
  struct Layer {
    detail::Linear query, key, value, attention_out, intermediate, output;
    detail::Norm attention_norm, output_norm;
  };
  at::Tensor layer_forward(int layer, const Layer& w, at::Tensor x, const at::Tensor& allowed,
                           detail::Pass& pass) const;
  at::Tensor token_types(const ForwardInput& input, const detail::PreparedInput& in) const;

  BertConfig config_;
  at::Tensor word_embeddings_, position_embeddings_, token_type_embeddings_;
  detail::Norm embeddings_norm_;
  std::vector<Layer> layers_;
  detail::Linear transform_;
  detail::Norm transform_norm_;
  at::Tensor decoder_bias_;  // the decoder's weight is word_embeddings_
};

BertModel::BertModel(const BertConfig& config, const models::Checkpoint& checkpoint)
    : CheckpointModel({"bert", config.num_hidden_layers, config.hidden_size, config.vocab_size,
                       config.max_position_embeddings, /*eos_token_id=*/-1, /*is_causal=*/false},
                      models::bert_sites(), checkpoint.dir, checkpoint.options),
      config_(config) {
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  const double eps = config.layer_norm_eps;
  detail::WeightReader reader(
      checkpoint, "bert.", "embeddings.word_embeddings.weight", "BERT",
      "config.json (num_hidden_layers=" + std::to_string(config.num_hidden_layers) +
          ", hidden_size=" + std::to_string(d) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) +
          ", max_position_embeddings=" + std::to_string(config.max_position_embeddings) + ")");
  word_embeddings_ = reader.read("bert.embeddings.word_embeddings.weight", {vocab, d});
  position_embeddings_ = reader.read("bert.embeddings.position_embeddings.weight",
                                     {config.max_position_embeddings, d});
  token_type_embeddings_ =
      reader.read("bert.embeddings.token_type_embeddings.weight", {config.type_vocab_size, d});
  embeddings_norm_ = reader.layer_norm("bert.embeddings.LayerNorm", d, eps);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const std::string p = "bert.encoder.layer." + std::to_string(layer) + ".";
    Layer l;
    l.query = reader.linear(p + "attention.self.query", d, d);
    l.key = reader.linear(p + "attention.self.key", d, d);
    l.value = reader.linear(p + "attention.self.value", d, d);
    l.attention_out = reader.linear(p + "attention.output.dense", d, d);
    l.attention_norm = reader.layer_norm(p + "attention.output.LayerNorm", d, eps);
    l.intermediate = reader.linear(p + "intermediate.dense", d, inner);
    l.output = reader.linear(p + "output.dense", inner, d);
    l.output_norm = reader.layer_norm(p + "output.LayerNorm", d, eps);
    layers_.push_back(std::move(l));
  }
  if (checkpoint.weights && !checkpoint.weights->contains("cls.predictions.bias")) {
    throw_file_error(checkpoint.weights->path(),
                     "has no masked-LM head (cls.predictions.*): a BertForMaskedLM checkpoint is "
                     "needed, not a bare BertModel");
  }
  transform_ = reader.linear("cls.predictions.transform.dense", d, d);
  transform_norm_ = reader.layer_norm("cls.predictions.transform.LayerNorm", d, eps);
  decoder_bias_ = reader.read("cls.predictions.bias", {vocab});
  // Tied to the word embeddings; the pooler and position_ids buffers are not used by the MLM head.
  reader.check_unused(std::regex(R"(.*(position_ids|pooler\..*|cls\.predictions\.decoder\..*)$)"),
                      "encoder.layer", config.num_hidden_layers);
  set_parameters(reader);
  set_output_head(
      {transform_, config_.hidden_act, transform_norm_, word_embeddings_, decoder_bias_});
}

at::Tensor BertModel::layer_forward(int layer, const Layer& w, at::Tensor x,
                                    const at::Tensor& allowed, detail::Pass& pass) const {
  const auto site = pass.block(layer);
  auto resid_pre = site(Step::kResidPre, std::move(x));
  auto attn_in = site(Step::kSelfAttnIn, site(Step::kAttnIn, resid_pre));
  auto q = site(Step::kQProj, w.query(attn_in));
  auto k = site(Step::kKProj, w.key(attn_in));
  auto v = site(Step::kVProj, w.value(attn_in));
  auto context = detail::attention(site, q, k, v, config_.num_attention_heads, allowed,
                                   detail::ScoreScaling{}, pass);
  auto attn_out = site(Step::kAttnDropout, site(Step::kAttnProj, w.attention_out(context)));
  // Post-LayerNorm: the residual sum is normalised before the MLP sees it.
  auto resid_mid = site(Step::kResidMid, attn_out + resid_pre);
  auto attention = site(Step::kAttnModule, site(Step::kAttnOutputModule,
                                                site(Step::kLn1, w.attention_norm(resid_mid))));

  auto mlp_out = detail::mlp(site, w.intermediate, w.output, config_.hidden_act, attention);
  auto resid_post = site(Step::kResidPost, mlp_out + attention);
  return site(Step::kNormalizedResidPost,
              site(Step::kMlpOutputModule, site(Step::kLn2, w.output_norm(resid_post))));
}

at::Tensor BertModel::token_types(const ForwardInput& input,
                                  const detail::PreparedInput& in) const {
  if (!input.token_type_ids.defined()) {
    return at::zeros({in.batch, in.pos}, at::TensorOptions().dtype(at::kLong).device(device_));
  }
  auto types =
      input.token_type_ids.dim() == 1 ? input.token_type_ids.unsqueeze(0) : input.token_type_ids;
  if (types.sizes() != at::IntArrayRef({in.batch, in.pos})) {
    throw Error("forward: token_type_ids must be [" + std::to_string(in.batch) + ", " +
                std::to_string(in.pos) + "] like the input, got " + shape_string(types.sizes()));
  }
  types = types.to(device_, at::kLong);
  if (types.min().item<int64_t>() < 0 || types.max().item<int64_t>() >= config_.type_vocab_size) {
    throw Error("forward: token_type_ids must be in [0, " +
                std::to_string(config_.type_vocab_size) + ")");
  }
  return types;
}

ForwardOutput BertModel::run(const ForwardInput& input, const ForwardOptions& options,
                             KvCache* cache) {
  detail::Pass pass(*this, input, options,
                    {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings},
                    cache);
  const auto& in = pass.input();
  const at::Tensor types = token_types(input, in);
  // Every token sees every real token; padding is masked as a key for all queries.
  const at::Tensor allowed = in.keep.view({in.batch, 1, 1, in.pos});

  auto words =
      in.has_ids ? pass.before(Step::kEmbed, at::embedding(word_embeddings_, in.ids)) : in.embeds;
  auto type_embeds =
      pass.before(Step::kTokenTypeEmbed, at::embedding(token_type_embeddings_, types));
  auto positions =
      pass.before(Step::kPosEmbed, at::embedding(position_embeddings_, in.position_ids));
  auto x = pass.before(Step::kEmbedNorm, embeddings_norm_(words + type_embeds + positions));
  x = pass.before(Step::kEmbeddings, pass.before(Step::kEmbedDropout, std::move(x)));
  pass.keep_hidden_state(x);
  for (int layer = 0; layer < pass.layers(); ++layer) {
    x = layer_forward(layer, layers_[static_cast<size_t>(layer)], std::move(x), allowed, pass);
    pass.keep_hidden_state(x);
  }
  if (!pass.stops_early()) {
    auto last = pass.after(Step::kBaseModel, pass.after(Step::kEncoder, x));
    auto h = pass.after(Step::kTransformDense, transform_(last));
    h = pass.after(Step::kTransformAct, detail::activation(config_.hidden_act, h));
    h = pass.after(Step::kTransform, pass.after(Step::kTransformNorm, transform_norm_(h)));
    auto logits = pass.after(Step::kDecoder, detail::Linear{word_embeddings_, decoder_bias_,
                                                            detail::Linear::Layout::kOutIn}(h));
    pass.output().logits = pass.after(Step::kLogits, logits);
  }
  return pass.finish();
}

}  // namespace

namespace models {

std::unique_ptr<Model> load_bert(const Checkpoint& checkpoint) {
  return std::make_unique<BertModel>(
      BertConfig::from_json(checkpoint.config, checkpoint.config_source), checkpoint);
}

}  // namespace models
}  // namespace llmscope
