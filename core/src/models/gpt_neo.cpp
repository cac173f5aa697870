#include "gpt_neo.hpp"

#include <nlohmann/json.hpp>

#include <regex>

#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"
#include "models/model_parts.hpp"

namespace llmscope {
namespace {

// ---- Hook points, in the order forward() reaches them ----

enum BeforeSite : int { kWte, kWpe, kDrop };
const std::vector<HookPointSpec> kBeforeSites = {
    {"transformer.wte", "hook_embed", "[batch, pos, d_model]"},
    {"transformer.wpe", "hook_pos_embed", "[batch, pos, d_model]"},
    {"transformer.drop", nullptr, "[batch, pos, d_model]"},
};

enum BlockSite : int {
  kBlockIn,
  kLn1In,
  kLn1,
  kAttnIn,
  kSelfAttnIn,
  kQProj,
  kKProj,
  kVProj,
  kQ,
  kK,
  kV,
  kScores,
  kPattern,
  kZ,
  kOutProjIn,
  kOutProj,
  kResidDrop,
  kSelfAttn,
  kAttn,
  kResidMid,
  kLn2In,
  kLn2,
  kMlpIn,
  kFcIn,
  kFc,
  kActIn,
  kAct,
  kMlpProjIn,
  kMlpProj,
  kMlpDrop,
  kMlp,
  kBlockOut,
  kNumBlockSites
};
const std::vector<HookPointSpec> kBlockSites = {
    {"transformer.h.{L}:input", "blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1", "blocks.{L}.ln1.hook_normalized", "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention.q_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention.k_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention.v_proj", nullptr, "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_attn_scores",
     "[batch, head, query_pos, key_pos] (masked, unscaled)"},
    {"transformer.h.{L}.attn.attention.attn_dropout", "blocks.{L}.attn.hook_pattern",
     "[batch, head, query_pos, key_pos]"},
    {nullptr, "blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
    {"transformer.h.{L}.attn.attention.out_proj:input", nullptr,
     "[batch, pos, d_model] (heads merged)"},
    {"transformer.h.{L}.attn.attention.out_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention.resid_dropout", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.attention", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn", "blocks.{L}.hook_attn_out", "[batch, pos, d_model]"},
    {nullptr, "blocks.{L}.hook_resid_mid", "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_2:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_2", "blocks.{L}.ln2.hook_normalized", "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.c_fc:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.c_fc", "blocks.{L}.mlp.hook_pre", "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.act:input", nullptr, "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.act", "blocks.{L}.mlp.hook_post", "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.c_proj:input", nullptr, "[batch, pos, d_mlp]"},
    {"transformer.h.{L}.mlp.c_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp.dropout", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.mlp", "blocks.{L}.hook_mlp_out", "[batch, pos, d_model]"},
    {"transformer.h.{L}", "blocks.{L}.hook_resid_post", "[batch, pos, d_model]"},
};

enum AfterSite : int { kLnFIn, kLnF, kTransformer, kLmHeadIn, kLmHead };
const std::vector<HookPointSpec> kAfterSites = {
    {"transformer.ln_f:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.ln_f", "ln_final.hook_normalized", "[batch, pos, d_model]"},
    {"transformer", nullptr, "[batch, pos, d_model] (last hidden state)"},
    {"lm_head:input", nullptr, "[batch, pos, d_model]"},
    {"lm_head", nullptr, "[batch, pos, vocab]"},
};

}  // namespace

GptNeoConfig GptNeoConfig::from_json(const nlohmann::json& json, const std::string& source) {
  GptNeoConfig c;
  c.vocab_size = detail::required_positive_int(json, "vocab_size", source);
  c.max_position_embeddings =
      detail::required_positive_int(json, "max_position_embeddings", source);
  c.hidden_size = detail::required_positive_int(json, "hidden_size", source);
  c.num_layers = detail::required_positive_int(json, "num_layers", source);
  c.num_heads = detail::required_positive_int(json, "num_heads", source);
  c.intermediate_size = json.contains("intermediate_size") && !json["intermediate_size"].is_null()
                            ? detail::required_positive_int(json, "intermediate_size", source)
                            : 4 * c.hidden_size;
  if (json.contains("window_size"))
    c.window_size = detail::required_positive_int(json, "window_size", source);
  c.layer_norm_epsilon = json.value("layer_norm_epsilon", 1e-5);
  c.activation_function = json.value("activation_function", std::string("gelu_new"));
  check_activation_name(c.activation_function, source);
  if (json.contains("eos_token_id") && json["eos_token_id"].is_number_integer())
    c.eos_token_id = json["eos_token_id"];
  if (c.hidden_size % c.num_heads != 0) {
    throw Error(source + ": hidden_size (" + std::to_string(c.hidden_size) +
                ") must be divisible by num_heads (" + std::to_string(c.num_heads) + ")");
  }
  // [[["global", "local"], 6]] -> global, local, global, local, ... (12 layers)
  const auto& types = json.contains("attention_types")
                          ? json["attention_types"]
                          : nlohmann::json::parse(R"([[["global", "local"], 1]])");
  try {
    for (const auto& group : types) {
      for (int64_t repeat = 0; repeat < group.at(1).get<int64_t>(); ++repeat) {
        for (const auto& kind : group.at(0)) c.attention_layers.push_back(kind.get<std::string>());
      }
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(source + ": attention_types must look like [[[\"global\", \"local\"], 6]], got " +
                types.dump());
  }
  if (!json.contains("attention_types") &&
      c.attention_layers.size() != static_cast<size_t>(c.num_layers)) {
    c.attention_layers.clear();
    for (int64_t i = 0; i < c.num_layers; ++i)
      c.attention_layers.push_back(i % 2 ? "local" : "global");
  }
  if (c.attention_layers.size() != static_cast<size_t>(c.num_layers)) {
    throw Error(source + ": attention_types describe " + std::to_string(c.attention_layers.size()) +
                " layers but num_layers is " + std::to_string(c.num_layers));
  }
  for (const auto& kind : c.attention_layers) {
    if (kind != "global" && kind != "local") {
      throw Error(source + ": attention type '" + kind +
                  "' is not supported (expected global or local)");
    }
  }
  return c;
}

HookPointTable GptNeoModel::hook_point_table(int n_layer) {
  return HookPointTable(kBeforeSites, kBlockSites, n_layer, kAfterSites);
}

GptNeoModel::GptNeoModel(const GptNeoConfig& config, const SafetensorsSet& weights,
                         const LoadOptions& options, std::filesystem::path source)
    : Model(hook_point_table(static_cast<int>(config.num_layers)), std::move(source)),
      config_(config),
      dtype_(options.dtype),
      device_(options.device) {
  if (kBlockSites.size() != kNumBlockSites)
    throw std::logic_error("GPT-Neo block site table is out of sync");
  const int64_t d = config.hidden_size, inner = config.intermediate_size, vocab = config.vocab_size;
  detail::WeightReader reader(
      weights, options, "transformer.", "wte.weight", "GPT-Neo",
      "config.json (num_layers=" + std::to_string(config.num_layers) +
          ", hidden_size=" + std::to_string(d) + ", intermediate_size=" + std::to_string(inner) +
          ", vocab_size=" + std::to_string(vocab) +
          ", max_position_embeddings=" + std::to_string(config.max_position_embeddings) + ")");
  wte_ = reader.read("transformer.wte.weight", {vocab, d});
  wpe_ = reader.read("transformer.wpe.weight", {config.max_position_embeddings, d});
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    Block b;
    b.ln_1_weight = reader.read(p + "ln_1.weight", {d});
    b.ln_1_bias = reader.read(p + "ln_1.bias", {d});
    b.q_proj = reader.read(p + "attn.attention.q_proj.weight", {d, d});
    b.k_proj = reader.read(p + "attn.attention.k_proj.weight", {d, d});
    b.v_proj = reader.read(p + "attn.attention.v_proj.weight", {d, d});
    b.out_proj = reader.read(p + "attn.attention.out_proj.weight", {d, d});
    b.out_proj_bias = reader.read(p + "attn.attention.out_proj.bias", {d});
    b.ln_2_weight = reader.read(p + "ln_2.weight", {d});
    b.ln_2_bias = reader.read(p + "ln_2.bias", {d});
    b.c_fc = reader.read(p + "mlp.c_fc.weight", {inner, d});
    b.c_fc_bias = reader.read(p + "mlp.c_fc.bias", {inner});
    b.c_proj = reader.read(p + "mlp.c_proj.weight", {d, inner});
    b.c_proj_bias = reader.read(p + "mlp.c_proj.bias", {d});
    b.local = config.attention_layers[static_cast<size_t>(layer)] == "local";
    blocks_.push_back(std::move(b));
  }
  ln_f_weight_ = reader.read("transformer.ln_f.weight", {d});
  ln_f_bias_ = reader.read("transformer.ln_f.bias", {d});
  if (reader.has("lm_head.weight"))
    reader.read("lm_head.weight", {vocab, d});  // tied to wte, as in Hugging Face
  reader.check_unused(std::regex(R"(.*\.attn\.attention\.(bias|masked_bias)$)"), "h",
                      config.num_layers);
}

std::vector<std::pair<std::string, at::Tensor>> GptNeoModel::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {{"transformer.wte.weight", wte_},
                                                         {"transformer.wpe.weight", wpe_}};
  for (size_t layer = 0; layer < blocks_.size(); ++layer) {
    const auto& b = blocks_[layer];
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    out.insert(out.end(), {{p + "ln_1.weight", b.ln_1_weight},
                           {p + "ln_1.bias", b.ln_1_bias},
                           {p + "attn.attention.q_proj.weight", b.q_proj},
                           {p + "attn.attention.k_proj.weight", b.k_proj},
                           {p + "attn.attention.v_proj.weight", b.v_proj},
                           {p + "attn.attention.out_proj.weight", b.out_proj},
                           {p + "attn.attention.out_proj.bias", b.out_proj_bias},
                           {p + "ln_2.weight", b.ln_2_weight},
                           {p + "ln_2.bias", b.ln_2_bias},
                           {p + "mlp.c_fc.weight", b.c_fc},
                           {p + "mlp.c_fc.bias", b.c_fc_bias},
                           {p + "mlp.c_proj.weight", b.c_proj},
                           {p + "mlp.c_proj.bias", b.c_proj_bias}});
  }
  out.emplace_back("transformer.ln_f.weight", ln_f_weight_);
  out.emplace_back("transformer.ln_f.bias", ln_f_bias_);
  return out;
}

at::Tensor GptNeoModel::embed_tokens(const at::Tensor& input_ids) const {
  return at::embedding(wte_, input_ids.to(device_, at::kLong));
}

at::Tensor GptNeoModel::attention(int layer, const Block& block, const at::Tensor& x,
                                  const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                  bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  const int64_t batch = x.size(0), pos = x.size(1), heads = config_.num_heads;
  const int64_t d_head = config_.hidden_size / heads;

  auto q = site(kQ, site(kQProj, at::linear(x, block.q_proj)).view({batch, pos, heads, d_head}));
  auto k = site(kK, site(kKProj, at::linear(x, block.k_proj)).view({batch, pos, heads, d_head}));
  auto v = site(kV, site(kVProj, at::linear(x, block.v_proj)).view({batch, pos, heads, d_head}));

  // GPT-Neo computes scores in float32 and does not scale them by 1/sqrt(d_head).
  auto scores =
      at::matmul(q.transpose(1, 2).to(at::kFloat), k.permute({0, 2, 3, 1}).to(at::kFloat));
  scores = scores.masked_fill(allowed.logical_not(), detail::lowest_value(at::kFloat));
  scores = site(kScores, scores);
  auto pattern = site(kPattern, at::softmax(scores, -1).to(v.scalar_type()));
  if (want_attentions) out.attentions.push_back(pattern);

  auto z = site(
      kZ, at::matmul(pattern, v.transpose(1, 2)).transpose(1, 2));  // [batch, pos, head, d_head]
  auto merged = site(kOutProjIn, z.reshape({batch, pos, config_.hidden_size}));
  auto projected = site(kOutProj, at::linear(merged, block.out_proj, block.out_proj_bias));
  return site(kSelfAttn, site(kResidDrop, std::move(projected)));
}

at::Tensor GptNeoModel::block_forward(int layer, const Block& block, at::Tensor x,
                                      const at::Tensor& global_mask, const at::Tensor& local_mask,
                                      HookRun* run, ForwardOutput& out, bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  const int64_t d = config_.hidden_size;
  const double eps = config_.layer_norm_epsilon;
  auto resid_pre = site(kBlockIn, std::move(x));
  auto ln1 = site(
      kLn1, at::layer_norm(site(kLn1In, resid_pre), {d}, block.ln_1_weight, block.ln_1_bias, eps));
  auto attn_in = site(kSelfAttnIn, site(kAttnIn, ln1));
  auto attn_out =
      site(kAttn, attention(layer, block, attn_in, block.local ? local_mask : global_mask, run, out,
                            want_attentions));
  auto resid_mid = site(kResidMid, resid_pre + attn_out);
  auto ln2 = site(
      kLn2, at::layer_norm(site(kLn2In, resid_mid), {d}, block.ln_2_weight, block.ln_2_bias, eps));
  auto mlp_in = site(kMlpIn, ln2);
  auto pre = site(kFc, at::linear(site(kFcIn, mlp_in), block.c_fc, block.c_fc_bias));
  auto post = site(kAct, detail::activation(config_.activation_function, site(kActIn, pre)));
  auto proj = site(kMlpProj, at::linear(site(kMlpProjIn, post), block.c_proj, block.c_proj_bias));
  auto mlp_out = site(kMlp, site(kMlpDrop, std::move(proj)));
  return site(kBlockOut, resid_mid + mlp_out);
}

ForwardOutput GptNeoModel::forward(const ForwardInput& input, const ForwardOptions& options) {
  auto in = detail::prepare_input(
      input, {config_.vocab_size, config_.hidden_size, config_.max_position_embeddings}, device_,
      dtype_);
  const at::Tensor global_mask = detail::causal_mask(in);
  const at::Tensor local_mask = detail::causal_mask(in, config_.window_size);
  const int n_layer = static_cast<int>(config_.num_layers);
  const int n_run = detail::layers_to_run(options, n_layer);
  const HookPointTable& sites = hook_points();
  std::optional<HookRun> hook_run = detail::begin_pass(*this, options);
  HookRun* run = hook_run ? &*hook_run : nullptr;

  ForwardOutput out;
  auto tokens =
      in.has_ids ? at_site(run, sites.before_id(kWte), at::embedding(wte_, in.ids)) : in.embeds;
  auto positions = at_site(run, sites.before_id(kWpe), at::embedding(wpe_, in.position_ids));
  auto x = at_site(run, sites.before_id(kDrop), tokens + positions);  // [batch, pos, d_model]
  for (int layer = 0; layer < n_run; ++layer) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), global_mask,
                      local_mask, run, out, options.output_attentions);
  }
  if (options.stop_at_layer) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
  } else {
    auto normed = at::layer_norm(at_site(run, sites.after_id(kLnFIn), x), {config_.hidden_size},
                                 ln_f_weight_, ln_f_bias_, config_.layer_norm_epsilon);
    auto final_hidden =
        at_site(run, sites.after_id(kTransformer), at_site(run, sites.after_id(kLnF), normed));
    if (options.output_hidden_states) out.hidden_states.push_back(final_hidden);
    auto head_in = at_site(run, sites.after_id(kLmHeadIn), final_hidden);
    out.logits = at_site(run, sites.after_id(kLmHead), at::matmul(head_in, wte_.t()));
  }
  detail::finish_pass(run, out, options, n_run, n_layer);
  return out;
}

}  // namespace llmscope
