#include "llmscope/gpt2.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope {
namespace {

// ---- Hook points: one table, in the order forward() reaches each site. ----

enum BeforeSite : int { kWte, kWpe, kDrop, kNumBeforeSites };
const std::vector<HookPointSpec> kBeforeSites = {
    {"transformer.wte", "hook_embed", "[batch, pos, d_model]"},
    {"transformer.wpe", "hook_pos_embed", "[batch, pos, d_model]"},
    {"transformer.drop", nullptr, "[batch, pos, d_model]"},
};

enum BlockSite : int {
  kBlockIn, kLn1In, kLn1, kAttnIn, kCAttnIn, kCAttn, kQ, kK, kV, kScores, kPattern, kZ,
  kAttnProjIn, kAttnProj, kAttnResidDrop, kAttn, kResidMid, kLn2In, kLn2, kMlpIn, kFcIn, kFc,
  kActIn, kAct, kMlpProjIn, kMlpProj, kMlpDrop, kMlp, kBlockOut, kNumBlockSites
};
const std::vector<HookPointSpec> kBlockSites = {
    {"transformer.h.{L}:input", "blocks.{L}.hook_resid_pre", "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.ln_1", "blocks.{L}.ln1.hook_normalized", "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.c_attn:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.c_attn", nullptr, "[batch, pos, 3 * d_model] (q | k | v)"},
    {nullptr, "blocks.{L}.attn.hook_q", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_k", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_v", "[batch, pos, head, d_head]"},
    {nullptr, "blocks.{L}.attn.hook_attn_scores", "[batch, head, query_pos, key_pos] (masked)"},
    {"transformer.h.{L}.attn.attn_dropout", "blocks.{L}.attn.hook_pattern",
     "[batch, head, query_pos, key_pos]"},
    {nullptr, "blocks.{L}.attn.hook_z", "[batch, pos, head, d_head]"},
    {"transformer.h.{L}.attn.c_proj:input", nullptr, "[batch, pos, d_model] (heads merged)"},
    {"transformer.h.{L}.attn.c_proj", nullptr, "[batch, pos, d_model]"},
    {"transformer.h.{L}.attn.resid_dropout", nullptr, "[batch, pos, d_model]"},
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

enum AfterSite : int { kLnFIn, kLnF, kTransformer, kLmHeadIn, kLmHead, kNumAfterSites };
const std::vector<HookPointSpec> kAfterSites = {
    {"transformer.ln_f:input", nullptr, "[batch, pos, d_model]"},
    {"transformer.ln_f", "ln_final.hook_normalized", "[batch, pos, d_model]"},
    {"transformer", nullptr, "[batch, pos, d_model] (last hidden state)"},
    {"lm_head:input", nullptr, "[batch, pos, d_model]"},
    {"lm_head", nullptr, "[batch, pos, vocab]"},
};

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream s;
  s << shape;
  return s.str();
}

// Reads the GPT-2 parameters out of a checkpoint, checking each against the config.
class WeightReader {
 public:
  WeightReader(const SafetensorsFile& file, const Gpt2Config& config, const LoadOptions& options)
      : file_(file), config_(config), options_(options) {
    // The hub's own gpt2 checkpoint has no "transformer." prefix; save_pretrained adds one.
    if (file.contains("transformer.wte.weight")) {
      prefix_ = "transformer.";
    } else if (!file.contains("wte.weight")) {
      throw_file_error(file.path(),
                       "neither 'transformer.wte.weight' nor 'wte.weight' found: not a GPT-2 "
                       "checkpoint (GPT2LMHeadModel or GPT2Model expected)");
    }
  }

  bool has(const std::string& name) const { return file_.contains(stored_name(name)); }

  // `name` is the Hugging Face name with the "transformer." prefix.
  at::Tensor read(const std::string& name, std::vector<int64_t> expected) {
    std::string stored = stored_name(name);
    if (!file_.contains(stored)) {
      throw_file_error(file_.path(), "missing tensor '" + stored + "' (expected shape " +
                                         shape_string(expected) + " from " + config_summary() + ")");
    }
    const auto& entry = file_.entry(stored);
    if (entry.dtype != at::kFloat && entry.dtype != at::kHalf && entry.dtype != at::kBFloat16 &&
        entry.dtype != at::kDouble) {
      throw_file_error(file_.path(), "tensor '" + stored + "' has dtype " + entry.dtype_name +
                                         ", expected a floating type (F32, F16 or BF16)");
    }
    if (entry.shape != expected) {
      throw_file_error(file_.path(), "tensor '" + stored + "' has shape " +
                                         shape_string(entry.shape) + ", expected " +
                                         shape_string(expected) + " from " + config_summary());
    }
    used_.insert(stored);
    return file_.load(stored, options_.dtype, options_.device);
  }

  // Tensors nobody read: causal-mask buffers of old checkpoints are expected; weights of
  // layers the config does not have mean the two disagree.
  void check_unused() const {
    static const std::regex kBuffer(R"(.*\.attn\.(bias|masked_bias)$)");
    static const std::regex kLayer(R"((transformer\.)?h\.(\d+)\..*)");
    std::vector<std::string> unexpected;
    for (const auto& entry : file_.entries()) {
      if (used_.count(entry.name) || std::regex_match(entry.name, kBuffer)) continue;
      std::smatch m;
      if (std::regex_match(entry.name, m, kLayer) && std::stoll(m[2]) >= config_.n_layer) {
        throw_file_error(file_.path(), "has weights for layer " + m[2].str() + " ('" + entry.name +
                                           "') but config.json says n_layer=" +
                                           std::to_string(config_.n_layer));
      }
      unexpected.push_back(entry.name);
    }
    if (!unexpected.empty()) {
      spdlog::warn("{}: ignoring {} tensor(s) GPT-2 does not use: {}", file_.path().string(),
                   unexpected.size(), join(unexpected));
    }
  }

 private:
  std::string stored_name(const std::string& name) const {
    const std::string hf = "transformer.";
    if (name.rfind(hf, 0) == 0) return prefix_ + name.substr(hf.size());
    return name;
  }
  std::string config_summary() const {
    return "config.json (n_layer=" + std::to_string(config_.n_layer) +
           ", n_embd=" + std::to_string(config_.n_embd) +
           ", n_inner=" + std::to_string(config_.n_inner) +
           ", vocab_size=" + std::to_string(config_.vocab_size) +
           ", n_positions=" + std::to_string(config_.n_positions) + ")";
  }

  const SafetensorsFile& file_;
  const Gpt2Config& config_;
  const LoadOptions& options_;
  std::string prefix_;
  std::set<std::string> used_;
};

double lowest_value(at::ScalarType type) {
  switch (type) {
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return -3.3895313892515355e38;
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: return std::numeric_limits<float>::lowest();
  }
}

// y = x W + b with W stored [in, out], for x of any leading shape.
at::Tensor conv1d(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto flat = x.reshape({-1, x.size(-1)});
  auto out_shape = x.sizes().vec();
  out_shape.back() = weight.size(1);
  return at::addmm(bias, flat, weight).view(out_shape);
}

}  // namespace

HookPointTable Gpt2Model::hook_point_table(int n_layer) {
  return HookPointTable(kBeforeSites, kBlockSites, n_layer, kAfterSites);
}

Gpt2Model::Gpt2Model(const Gpt2Config& config, const SafetensorsFile& weights,
                     const LoadOptions& options, std::filesystem::path source)
    : Model(hook_point_table(static_cast<int>(config.n_layer)), std::move(source)),
      config_(config),
      dtype_(options.dtype),
      device_(options.device) {
  static_assert(kNumBeforeSites == 3 && kNumAfterSites == 5, "site enums match their tables");
  if (kBlockSites.size() != kNumBlockSites) throw std::logic_error("GPT-2 block site table is out of sync");
  const int64_t d = config.n_embd, inner = config.n_inner, vocab = config.vocab_size;
  WeightReader reader(weights, config, options);
  wte_ = reader.read("transformer.wte.weight", {vocab, d});
  wpe_ = reader.read("transformer.wpe.weight", {config.n_positions, d});
  auto layer_norm_of = [&](const std::string& name) {
    return LayerNorm{reader.read(name + ".weight", {d}), reader.read(name + ".bias", {d})};
  };
  auto conv_of = [&](const std::string& name, int64_t in, int64_t out) {
    return Conv1D{reader.read(name + ".weight", {in, out}), reader.read(name + ".bias", {out})};
  };
  for (int64_t layer = 0; layer < config.n_layer; ++layer) {
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    Block block;
    block.ln_1 = layer_norm_of(p + "ln_1");
    block.c_attn = conv_of(p + "attn.c_attn", d, 3 * d);
    block.attn_c_proj = conv_of(p + "attn.c_proj", d, d);
    block.ln_2 = layer_norm_of(p + "ln_2");
    block.c_fc = conv_of(p + "mlp.c_fc", d, inner);
    block.mlp_c_proj = conv_of(p + "mlp.c_proj", inner, d);
    blocks_.push_back(std::move(block));
  }
  ln_f_ = layer_norm_of("transformer.ln_f");
  if (reader.has("lm_head.weight") && !config.tie_word_embeddings) {
    lm_head_ = reader.read("lm_head.weight", {vocab, d});
    lm_head_tied_ = false;
  } else {
    // Tied: Hugging Face ignores a stored lm_head when tie_word_embeddings is set.
    if (reader.has("lm_head.weight")) reader.read("lm_head.weight", {vocab, d});
    lm_head_ = wte_;
  }
  reader.check_unused();
}

std::vector<std::pair<std::string, at::Tensor>> Gpt2Model::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {{"transformer.wte.weight", wte_},
                                                         {"transformer.wpe.weight", wpe_}};
  for (size_t layer = 0; layer < blocks_.size(); ++layer) {
    const auto& b = blocks_[layer];
    const std::string p = "transformer.h." + std::to_string(layer) + ".";
    out.insert(out.end(), {{p + "ln_1.weight", b.ln_1.weight},
                           {p + "ln_1.bias", b.ln_1.bias},
                           {p + "attn.c_attn.weight", b.c_attn.weight},
                           {p + "attn.c_attn.bias", b.c_attn.bias},
                           {p + "attn.c_proj.weight", b.attn_c_proj.weight},
                           {p + "attn.c_proj.bias", b.attn_c_proj.bias},
                           {p + "ln_2.weight", b.ln_2.weight},
                           {p + "ln_2.bias", b.ln_2.bias},
                           {p + "mlp.c_fc.weight", b.c_fc.weight},
                           {p + "mlp.c_fc.bias", b.c_fc.bias},
                           {p + "mlp.c_proj.weight", b.mlp_c_proj.weight},
                           {p + "mlp.c_proj.bias", b.mlp_c_proj.bias}});
  }
  out.emplace_back("transformer.ln_f.weight", ln_f_.weight);
  out.emplace_back("transformer.ln_f.bias", ln_f_.bias);
  if (!lm_head_tied_) out.emplace_back("lm_head.weight", lm_head_);
  return out;
}

at::Tensor Gpt2Model::embed_tokens(const at::Tensor& input_ids) const {
  return at::embedding(wte_, input_ids.to(device_, at::kLong));
}

at::Tensor Gpt2Model::layer_norm(const LayerNorm& ln, const at::Tensor& x) const {
  return at::layer_norm(x, {config_.n_embd}, ln.weight, ln.bias, config_.layer_norm_epsilon);
}

at::Tensor Gpt2Model::activation(const at::Tensor& x) const {
  const auto& name = config_.activation_function;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    return at::gelu(x, "tanh");
  }
  if (name == "gelu") return at::gelu(x);
  if (name == "relu") return at::relu(x);
  return at::silu(x);  // "silu" / "swish"; the config check admits nothing else
}

at::Tensor Gpt2Model::attention(int layer, const Block& block, const at::Tensor& x,
                                const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  const int64_t batch = x.size(0), pos = x.size(1), heads = config_.n_head, d_head = config_.head_dim();

  auto qkv = site(kCAttn, conv1d(site(kCAttnIn, x), block.c_attn.weight, block.c_attn.bias));
  auto parts = qkv.split(config_.n_embd, -1);
  auto q = site(kQ, parts[0].view({batch, pos, heads, d_head}));  // [batch, pos, head, d_head]
  auto k = site(kK, parts[1].view({batch, pos, heads, d_head}));
  auto v = site(kV, parts[2].view({batch, pos, heads, d_head}));

  // [batch, head, query_pos, key_pos]
  auto scores = at::matmul(q.transpose(1, 2), k.permute({0, 2, 3, 1}));
  if (config_.scale_attn_weights) scores = scores / std::sqrt(static_cast<double>(d_head));
  if (config_.scale_attn_by_inverse_layer_idx) scores = scores / static_cast<double>(layer + 1);
  // Masked scores get the dtype's lowest value, as Hugging Face does: a fully masked row (a
  // left-padding query) becomes a uniform average instead of NaN.
  scores = scores.masked_fill(allowed.logical_not(), lowest_value(scores.scalar_type()));
  scores = site(kScores, scores);
  auto pattern = site(kPattern, at::softmax(scores, -1));
  if (want_attentions) out.attentions.push_back(pattern);

  auto z = site(kZ, at::matmul(pattern, v.transpose(1, 2)).transpose(1, 2));  // [batch, pos, head, d_head]
  auto merged = site(kAttnProjIn, z.reshape({batch, pos, config_.n_embd}));
  auto projected = site(kAttnProj, conv1d(merged, block.attn_c_proj.weight, block.attn_c_proj.bias));
  return site(kAttnResidDrop, std::move(projected));
}

at::Tensor Gpt2Model::block_forward(int layer, const Block& block, at::Tensor x,
                                    const at::Tensor& allowed, HookRun* run, ForwardOutput& out,
                                    bool want_attentions) {
  const HookPointTable& sites = hook_points();
  auto site = [&](int local, at::Tensor t) {
    return at_site(run, sites.block_id(layer, local), std::move(t));
  };
  // A module's ":input" site changes what that module sees, never the residual stream.
  auto resid_pre = site(kBlockIn, std::move(x));
  auto ln1 = site(kLn1, layer_norm(block.ln_1, site(kLn1In, resid_pre)));
  auto attn_out = site(kAttn, attention(layer, block, site(kAttnIn, ln1), allowed, run, out, want_attentions));
  auto resid_mid = site(kResidMid, resid_pre + attn_out);
  auto ln2 = site(kLn2, layer_norm(block.ln_2, site(kLn2In, resid_mid)));

  auto mlp_in = site(kMlpIn, ln2);
  auto pre = site(kFc, conv1d(site(kFcIn, mlp_in), block.c_fc.weight, block.c_fc.bias));
  auto post = site(kAct, activation(site(kActIn, pre)));
  auto mlp_proj = site(kMlpProj, conv1d(site(kMlpProjIn, post), block.mlp_c_proj.weight,
                                        block.mlp_c_proj.bias));
  auto mlp_out = site(kMlp, site(kMlpDrop, std::move(mlp_proj)));
  return site(kBlockOut, resid_mid + mlp_out);
}

ForwardOutput Gpt2Model::forward(const ForwardInput& input, const ForwardOptions& options) {
  const bool has_ids = input.input_ids.defined(), has_embeds = input.inputs_embeds.defined();
  if (has_ids == has_embeds) {
    throw Error("forward: pass exactly one of input_ids and inputs_embeds");
  }
  at::Tensor ids, embeds;
  if (has_ids) {
    ids = input.input_ids.dim() == 1 ? input.input_ids.unsqueeze(0) : input.input_ids;
    if (ids.dim() != 2 || at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
      throw Error("forward: input_ids must be an integer tensor [batch, pos], got " +
                  shape_string(input.input_ids.sizes()) + " " +
                  std::string(c10::toString(input.input_ids.scalar_type())));
    }
    ids = ids.to(device_, at::kLong);
    if (ids.numel() > 0) {
      int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
      if (lo < 0 || hi >= config_.vocab_size) {
        throw Error("forward: token id " + std::to_string(lo < 0 ? lo : hi) +
                    " is out of range (vocab_size is " + std::to_string(config_.vocab_size) + ")");
      }
    }
  } else {
    embeds = input.inputs_embeds.dim() == 2 ? input.inputs_embeds.unsqueeze(0) : input.inputs_embeds;
    if (embeds.dim() != 3 || embeds.size(2) != config_.n_embd) {
      throw Error("forward: inputs_embeds must be [batch, pos, " + std::to_string(config_.n_embd) +
                  "], got " + shape_string(input.inputs_embeds.sizes()));
    }
    embeds = embeds.to(device_, dtype_);
  }
  const auto& lead = has_ids ? ids : embeds;
  const int64_t batch = lead.size(0), pos = lead.size(1);
  if (pos == 0 || batch == 0) throw Error("forward: the input is empty");
  if (pos > config_.n_positions) {
    throw Error("forward: sequence of " + std::to_string(pos) + " tokens exceeds n_positions (" +
                std::to_string(config_.n_positions) + ")");
  }

  // Positions count real tokens only, so a left-padded row sees the same positions as the
  // prompt alone; keys that are padding are masked for every query.
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(device_);
  at::Tensor position_ids, allowed;
  at::Tensor causal = at::ones({pos, pos}, at::TensorOptions().dtype(at::kBool).device(device_)).tril();
  if (input.attention_mask.defined()) {
    const auto& mask = input.attention_mask;
    if (mask.dim() != 2 || mask.size(0) != batch || mask.size(1) != pos) {
      throw Error("forward: attention_mask must be [" + std::to_string(batch) + ", " +
                  std::to_string(pos) + "] like the input, got " + shape_string(mask.sizes()));
    }
    auto keep = mask.to(device_).ne(0);
    position_ids = (keep.to(at::kLong).cumsum(-1) - 1).clamp_min(0);
    allowed = causal.view({1, 1, pos, pos}).logical_and(keep.view({batch, 1, 1, pos}));
  } else {
    position_ids = at::arange(pos, long_opts).unsqueeze(0).expand({batch, pos});
    allowed = causal.view({1, 1, pos, pos});
  }

  int n_run = static_cast<int>(config_.n_layer);
  if (options.stop_at_layer) {
    int stop = *options.stop_at_layer;
    if (stop < 0) stop += n_run;
    if (stop < 0 || stop > n_run) {
      throw Error("forward: stop_at_layer " + std::to_string(*options.stop_at_layer) +
                  " is out of range for " + std::to_string(n_run) + " layers");
    }
    n_run = stop;
  }
  const bool stopped_early = options.stop_at_layer.has_value();

  const HookPointTable& sites = hook_points();
  const bool any_hooks = persistent_hooks().size() > 0 || !options.hooks.empty() || !options.cache.empty();
  std::optional<HookRun> hook_run;
  if (any_hooks) hook_run.emplace(sites, &persistent_hooks(), options.hooks, options.cache);
  HookRun* run = hook_run ? &*hook_run : nullptr;

  ForwardOutput out;
  auto tokens = has_ids ? at_site(run, sites.before_id(kWte), at::embedding(wte_, ids)) : embeds;
  auto positions = at_site(run, sites.before_id(kWpe), at::embedding(wpe_, position_ids));
  auto x = at_site(run, sites.before_id(kDrop), tokens + positions);  // [batch, pos, d_model]

  for (int layer = 0; layer < n_run; ++layer) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
    x = block_forward(layer, blocks_[static_cast<size_t>(layer)], std::move(x), allowed, run, out,
                      options.output_attentions);
  }
  if (stopped_early) {
    if (options.output_hidden_states) out.hidden_states.push_back(x);
  } else {
    auto final_hidden = at_site(run, sites.after_id(kLnF),
                                layer_norm(ln_f_, at_site(run, sites.after_id(kLnFIn), x)));
    final_hidden = at_site(run, sites.after_id(kTransformer), std::move(final_hidden));
    if (options.output_hidden_states) out.hidden_states.push_back(final_hidden);
    auto head_in = at_site(run, sites.after_id(kLmHeadIn), final_hidden);
    out.logits = at_site(run, sites.after_id(kLmHead), at::matmul(head_in, lm_head_.t()));
  }

  if (run) {
    out.cache = run->take_cache();
    out.firings = run->firings();
    if (options.strict_hooks) {
      std::vector<std::string> silent;
      for (const auto& f : out.firings) {
        if (f.calls == 0) silent.push_back("'" + f.name + "'");
      }
      if (!silent.empty()) {
        throw Error("forward: hook(s) " + join(silent) + " never fired" +
                    (stopped_early ? " (the pass stopped at layer " + std::to_string(n_run) + ")" : ""));
      }
    }
  }
  return out;
}

}  // namespace llmscope
