#include "models/model_parts.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "base/matmul.hpp"
#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"
#include "models/gelu_tanh.hpp"
#include "models/masked_softmax.hpp"

namespace llmscope::detail {

int64_t required_positive_int(const nlohmann::json& json, const char* key,
                              const std::string& source) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null())
    throw Error(source + ": missing required key '" + key + "' (a positive integer)");
  if (!it->is_number_integer() || it->get<int64_t>() <= 0) {
    throw Error(source + ": key '" + key + "' must be a positive integer, got " + it->dump());
  }
  return it->get<int64_t>();
}

int64_t optional_positive_int(const nlohmann::json& json, const char* key, int64_t fallback,
                              const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return fallback;
  return required_positive_int(json, key, source);
}

double lowest_value(at::ScalarType type) {
  switch (type) {
    case at::kHalf:
      return -65504.0;
    case at::kBFloat16:
      return -3.3895313892515355e38;
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    default:
      return std::numeric_limits<float>::lowest();
  }
}

at::Tensor activation(const std::string& name, const at::Tensor& x) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") {
    at::Tensor fast = gelu_tanh_fast(x);
    return fast.defined() ? fast : at::gelu(x, "tanh");
  }
  if (name == "gelu") return at::gelu(x);
  if (name == "relu") return at::relu(x);
  if (name == "silu" || name == "swish") return at::silu(x);
  throw Error("activation function '" + name + "' is not supported");
}

at::Tensor Linear::operator()(const at::Tensor& x) const {
  // x W + b over any leading shape, as one addmm like Hugging Face (Conv1D) and at::linear.
  auto flat = x.reshape({-1, x.size(-1)});
  auto out_shape = x.sizes().vec();
  const at::Tensor w = layout == Layout::kOutIn ? weight.t() : weight;
  out_shape.back() = w.size(1);
  return threaded_addmm(bias, flat, w, items_of(x)).view(out_shape);
}

at::Tensor Norm::operator()(const at::Tensor& x) const {
  if (rms) {
    auto x32 = x.to(at::kFloat);
    auto normed = x32 * at::rsqrt(x32.pow(2).mean({-1}, /*keepdim=*/true) + eps);
    return weight * normed.to(x.scalar_type());
  }
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

at::Tensor OutputHead::operator()(const at::Tensor& x, bool full) const {
  at::Tensor h = x;
  if (full) {
    if (transform) h = activation(transform_activation, (*transform)(h));
    h = norm(h);
  }
  // The same calls as the passes make, so unembed(last block output) equals their logits.
  return Linear{weight, bias, Linear::Layout::kOutIn}(h);
}

WeightReader::WeightReader(const models::Checkpoint& checkpoint, std::string prefix,
                           const std::string& probe, const std::string& architecture,
                           std::string config_summary)
    : file_(checkpoint.weights),
      options_(checkpoint.options),
      prefix_(std::move(prefix)),
      architecture_(architecture),
      config_summary_(std::move(config_summary)) {
  if (file_ == nullptr) {
    random_ = at::make_generator<at::CPUGeneratorImpl>(checkpoint.random_seed);
    return;
  }
  // Hub checkpoints of the base model have no prefix; save_pretrained of the LM head model adds
  // one.
  if (file_->contains(prefix_ + probe)) {
    stored_prefix_ = prefix_;
  } else if (!file_->contains(probe)) {
    throw_file_error(file_->path(), "neither '" + prefix_ + probe + "' nor '" + probe +
                                        "' found: not a " + architecture + " checkpoint");
  }
}

std::string WeightReader::stored_name(const std::string& name) const {
  if (name.rfind(prefix_, 0) == 0) return stored_prefix_ + name.substr(prefix_.size());
  return name;
}

at::Tensor WeightReader::read(const std::string& name, const std::vector<int64_t>& expected) {
  auto tensor = load_checked(name, expected);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

void WeightReader::check_tied_copy(const std::string& name, const std::vector<int64_t>& expected) {
  load_checked(name, expected);
}

Linear WeightReader::linear(const std::string& name, int64_t in, int64_t out, Linear::Layout layout,
                            bool with_bias) {
  Linear l;
  l.layout = layout;
  l.weight =
      read(name + ".weight", layout == Linear::Layout::kOutIn ? std::vector<int64_t>{out, in}
                                                              : std::vector<int64_t>{in, out});
  if (with_bias) l.bias = read(name + ".bias", {out});
  return l;
}

Norm WeightReader::layer_norm(const std::string& name, int64_t d, double eps) {
  Norm n;
  n.weight = read(name + ".weight", {d});
  n.bias = read(name + ".bias", {d});
  n.eps = eps;
  return n;
}

Norm WeightReader::rms_norm(const std::string& name, int64_t d, double eps) {
  Norm n;
  n.weight = read(name + ".weight", {d});
  n.eps = eps;
  n.rms = true;
  return n;
}

at::Tensor WeightReader::load_checked(const std::string& name,
                                      const std::vector<int64_t>& expected) {
  if (file_ == nullptr) {
    auto ends_with = [&](const char* suffix) {
      const std::string s(suffix);
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    at::Tensor t = expected.size() == 1 && ends_with(".bias") ? at::zeros(expected)
                   : expected.size() == 1 && ends_with(".weight")
                       ? at::ones(expected)
                       : at::randn(expected, *random_) * 0.02;
    return t.to(options_.device, options_.dtype);
  }
  const std::string stored = stored_name(name);
  if (!file_->contains(stored)) {
    throw_file_error(file_->path(), "missing tensor '" + stored + "' (expected shape " +
                                        shape_string(expected) + " from " + config_summary_ + ")");
  }
  const auto& entry = file_->entry(stored);
  if (!at::isFloatingType(entry.dtype)) {
    throw_file_error(file_->file_of(stored).path(),
                     "tensor '" + stored + "' has dtype " + entry.dtype_name +
                         ", expected a floating type (F32, F16 or BF16)");
  }
  if (entry.shape != expected) {
    throw_file_error(file_->file_of(stored).path(),
                     "tensor '" + stored + "' has shape " + shape_string(entry.shape) +
                         ", expected " + shape_string(expected) + " from " + config_summary_);
  }
  used_.insert(stored);
  return file_->load(stored, options_.dtype, options_.device);
}

void WeightReader::check_unused(const std::regex& ignored, const std::string& layers,
                                int64_t n_layer) const {
  if (file_ == nullptr) return;
  const std::regex layer_pattern("(" + std::regex_replace(prefix_, std::regex(R"(\.)"), R"(\.)") +
                                 ")?" + std::regex_replace(layers, std::regex(R"(\.)"), R"(\.)") +
                                 R"(\.(\d+)\..*)");
  std::vector<std::string> unexpected;
  for (const auto& entry : file_->entries()) {
    if (used_.count(entry.name) || std::regex_match(entry.name, ignored)) continue;
    std::smatch m;
    if (std::regex_match(entry.name, m, layer_pattern) && std::stoll(m[2]) >= n_layer) {
      throw_file_error(file_->file_of(entry.name).path(),
                       "has weights for layer " + m[2].str() + " ('" + entry.name + "') but " +
                           config_summary_ + " has " + std::to_string(n_layer) + " layers");
    }
    unexpected.push_back(entry.name);
  }
  if (!unexpected.empty()) {
    spdlog::warn("{}: ignoring {} tensor(s) {} does not use: {}", file_->path().string(),
                 unexpected.size(), architecture_, join(unexpected));
  }
}

PreparedInput prepare_input(const ForwardInput& input, const InputLimits& limits, at::Device device,
                            at::ScalarType dtype) {
  PreparedInput out;
  out.has_ids = input.input_ids.defined();
  if (out.has_ids == input.inputs_embeds.defined()) {
    throw Error("forward: pass exactly one of input_ids and inputs_embeds");
  }
  if (out.has_ids) {
    const auto& given = input.input_ids;
    auto ids = given.dim() == 1 ? given.unsqueeze(0) : given;
    if (ids.dim() != 2 || at::isFloatingType(ids.scalar_type()) || ids.scalar_type() == at::kBool) {
      throw Error("forward: input_ids must be an integer tensor [batch, pos], got " +
                  shape_string(given.sizes()) + " " +
                  std::string(c10::toString(given.scalar_type())));
    }
    out.ids = ids.to(device, at::kLong);
    if (out.ids.numel() > 0) {
      const int64_t lo = out.ids.min().item<int64_t>(), hi = out.ids.max().item<int64_t>();
      if (lo < 0 || hi >= limits.vocab_size) {
        throw Error("forward: token id " + std::to_string(lo < 0 ? lo : hi) +
                    " is out of range (vocab_size is " + std::to_string(limits.vocab_size) + ")");
      }
    }
  } else {
    const auto& given = input.inputs_embeds;
    auto embeds = given.dim() == 2 ? given.unsqueeze(0) : given;
    if (embeds.dim() != 3 || embeds.size(2) != limits.d_model) {
      throw Error("forward: inputs_embeds must be [batch, pos, " + std::to_string(limits.d_model) +
                  "], got " + shape_string(given.sizes()));
    }
    out.embeds = embeds.to(device, dtype);
  }
  const auto& lead = out.has_ids ? out.ids : out.embeds;
  out.batch = lead.size(0);
  out.pos = lead.size(1);
  if (out.pos == 0 || out.batch == 0) throw Error("forward: the input is empty");
  if (out.pos > limits.max_positions) {
    throw Error("forward: sequence of " + std::to_string(out.pos) +
                " tokens exceeds n_positions (" + std::to_string(limits.max_positions) + ")");
  }
  if (input.attention_mask.defined()) {
    const auto& mask = input.attention_mask;
    if (mask.dim() != 2 || mask.size(0) != out.batch || mask.size(1) != out.pos) {
      throw Error("forward: attention_mask must be [" + std::to_string(out.batch) + ", " +
                  std::to_string(out.pos) + "] like the input, got " + shape_string(mask.sizes()));
    }
    out.keep = mask.to(device).ne(0);
    out.position_ids = (out.keep.to(at::kLong).cumsum(-1) - 1).clamp_min(0);
  } else {
    out.keep = at::ones({out.batch, out.pos}, at::TensorOptions().dtype(at::kBool).device(device));
    out.position_ids = at::arange(out.pos, at::TensorOptions().dtype(at::kLong).device(device))
                           .unsqueeze(0)
                           .expand({out.batch, out.pos});
  }
  out.key_keep = out.keep;
  return out;
}

at::Tensor causal_mask(const PreparedInput& input, int64_t window) {
  const int64_t pos = input.pos, keys = input.held + input.pos;
  const auto index = at::TensorOptions().dtype(at::kLong).device(input.keep.device());
  const auto query_at = (at::arange(pos, index) + input.held).view({pos, 1});
  const auto key_at = at::arange(keys, index).view({1, keys});
  auto allowed = key_at.le(query_at);
  if (window > 0) allowed = allowed.logical_and(key_at.gt(query_at - window));
  return allowed.view({1, 1, pos, keys})
      .logical_and(input.key_keep.view({input.batch, 1, 1, keys}));
}

Pass::Pass(const CheckpointModel& model, const ForwardInput& input, const ForwardOptions& options,
           const InputLimits& limits, KvCache* cache)
    : table_(model.hook_points()),
      sites_(model.sites()),
      options_(options),
      input_(prepare_input(input, limits, model.device(), model.dtype())),
      n_layer_(static_cast<int>(model.n_layer())),
      layers_(n_layer_),
      cache_(cache) {
  if (cache_) continue_cache(limits);
  if (options.stop_at_layer) {
    int stop = *options.stop_at_layer;
    if (stop < 0) stop += n_layer_;
    if (stop < 0 || stop > n_layer_) {
      throw Error("forward: stop_at_layer " + std::to_string(*options.stop_at_layer) +
                  " is out of range for " + std::to_string(n_layer_) + " layers");
    }
    layers_ = stop;
  }
  if (model.persistent_hooks().size() > 0 || !options.hooks.empty() || !options.cache.empty()) {
    run_.emplace(table_, &model.persistent_hooks(), options.hooks, options.cache);
  }
}

void Pass::keep_hidden_state(const at::Tensor& x) {
  if (options_.output_hidden_states) out_.hidden_states.push_back(x);
}

void Pass::keep_attention(const at::Tensor& pattern) {
  if (options_.output_attentions) out_.attentions.push_back(pattern);
}

ForwardOutput Pass::finish_causal_lm(const at::Tensor& x, const Norm& final_norm,
                                     const at::Tensor& head_weight) {
  if (stops_early()) {
    keep_hidden_state(x);
  } else {
    auto final_hidden =
        after(Step::kBaseModel, after(Step::kFinalNorm, final_norm(after(Step::kFinalNormIn, x))));
    keep_hidden_state(final_hidden);
    out_.logits =
        after(Step::kHead, threaded_matmul(after(Step::kHeadIn, final_hidden), head_weight.t()));
  }
  return finish();
}

void Pass::continue_cache(const InputLimits& limits) {
  if (options_.stop_at_layer) {
    throw Error(
        "forward_cached: stop_at_layer would leave the key/value cache without the "
        "later layers; run the cached pass whole");
  }
  const KvCache::State& state = cache_->state();
  const int64_t held = state.held();
  auto& in = input_;
  if (held > 0 && state.keep.size(0) != in.batch) {
    throw Error("forward_cached: the cache holds " + std::to_string(state.keep.size(0)) +
                " rows but the input has " + std::to_string(in.batch));
  }
  if (held + in.pos > limits.max_positions) {
    throw Error("forward_cached: " + std::to_string(held) + " held positions plus " +
                std::to_string(in.pos) + " new ones exceed n_positions (" +
                std::to_string(limits.max_positions) + ")");
  }
  if (held == 0) return;
  in.held = held;
  in.key_keep = at::cat({state.keep.to(in.keep.device()), in.keep}, 1);
  in.position_ids =
      (state.real_tokens.to(in.keep.device()).unsqueeze(1) + in.keep.to(at::kLong).cumsum(-1) - 1)
          .clamp_min(0);
}

std::pair<at::Tensor, at::Tensor> Pass::extend_kv(int layer, at::Tensor k, at::Tensor v) {
  if (!cache_) return {std::move(k), std::move(v)};
  const KvCache::State& state = cache_->state();
  if (state.held() > 0) {
    k = at::cat({state.keys.at(static_cast<size_t>(layer)), k}, 1);
    v = at::cat({state.values.at(static_cast<size_t>(layer)), v}, 1);
  }
  if (new_keys_.size() <= static_cast<size_t>(layer)) {
    new_keys_.resize(static_cast<size_t>(layer) + 1);
    new_values_.resize(static_cast<size_t>(layer) + 1);
  }
  new_keys_[static_cast<size_t>(layer)] = k;
  new_values_[static_cast<size_t>(layer)] = v;
  return {std::move(k), std::move(v)};
}

ForwardOutput Pass::finish() {
  if (cache_) {
    // Only now, once every block ran: a pass that failed leaves the cache as it was.
    if (static_cast<int>(new_keys_.size()) != n_layer_) {
      throw std::logic_error("forward_cached: attention stored keys for " +
                             std::to_string(new_keys_.size()) + " of " + std::to_string(n_layer_) +
                             " layers");
    }
    KvCache::State& state = cache_->state();
    const auto new_real = input_.keep.to(at::kLong).sum(1);
    state.real_tokens = state.held() > 0 ? state.real_tokens + new_real : new_real;
    state.keep = input_.key_keep;
    state.keys = std::move(new_keys_);
    state.values = std::move(new_values_);
  }
  if (run_) {
    out_.cache = run_->take_cache();
    out_.firings = run_->firings();
    if (options_.strict_hooks) {
      std::vector<std::string> silent;
      for (const auto& f : out_.firings) {
        if (f.calls == 0) silent.push_back("'" + f.name + "'");
      }
      if (!silent.empty()) {
        throw Error("forward: hook(s) " + join(silent) + " never fired" +
                    (layers_ < n_layer_ || options_.stop_at_layer
                         ? " (the pass stopped at layer " + std::to_string(layers_) + ")"
                         : ""));
      }
    }
  }
  return std::move(out_);
}

at::Tensor rotary_inverse_frequencies(int64_t dims, double base) {
  auto exponents = at::arange(0, dims, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                   static_cast<double>(dims);
  return 1.0 / at::pow(base, exponents);
}

namespace {

std::optional<double> rope_number(const nlohmann::json& json, const char* key,
                                  const std::string& source) {
  if (!json.is_object() || !json.contains(key) || json[key].is_null()) return std::nullopt;
  if (!json[key].is_number()) {
    throw Error(source + ": " + key + " must be a number, got " + json[key].dump());
  }
  return json[key].get<double>();
}

}  // namespace

RopeConfig read_rope_config(const nlohmann::json& config, const std::string& source,
                            const std::vector<const char*>& theta_keys, double default_theta,
                            const std::vector<const char*>& partial_keys, double default_partial) {
  RopeConfig r;
  r.theta = default_theta;
  r.partial = default_partial;
  for (auto it = theta_keys.rbegin(); it != theta_keys.rend(); ++it) {
    if (auto v = rope_number(config, *it, source)) r.theta = *v;
  }
  for (auto it = partial_keys.rbegin(); it != partial_keys.rend(); ++it) {
    if (auto v = rope_number(config, *it, source)) r.partial = *v;
  }
  // 5.x: rope_parameters holds everything; 4.x: rope_scaling holds the scaling only.
  const nlohmann::json* scaling = nullptr;
  std::string where = source + " (rope_scaling)";
  if (auto p = config.find("rope_parameters"); p != config.end() && p->is_object()) {
    scaling = &*p;
    where = source + " (rope_parameters)";
    if (auto v = rope_number(*p, "rope_theta", where)) r.theta = *v;
    if (auto v = rope_number(*p, "partial_rotary_factor", where)) r.partial = *v;
  } else if (auto s = config.find("rope_scaling"); s != config.end() && !s->is_null()) {
    if (!s->is_object()) {
      throw Error(source + ": rope_scaling must be an object or null, got " + s->dump());
    }
    scaling = &*s;
  }
  if (!(r.theta > 0)) throw Error(source + ": the rope base (rope_theta) must be positive");
  if (!(r.partial > 0 && r.partial <= 1)) {
    throw Error(source + ": the rotary fraction must be in (0, 1], got " +
                std::to_string(r.partial));
  }
  if (!scaling) return r;
  r.type = scaling->value("rope_type", scaling->value("type", std::string("default")));
  if (r.type == "default") return r;
  if (r.type != "linear" && r.type != "llama3") {
    throw Error(where + ": rope scaling of type '" + r.type +
                "' is not supported (expected default, linear or llama3)");
  }
  r.factor = rope_number(*scaling, "factor", where).value_or(0);
  if (!(r.factor > 0)) throw Error(where + ": " + r.type + " rope scaling needs a positive factor");
  if (r.type == "llama3") {
    r.low_freq_factor = rope_number(*scaling, "low_freq_factor", where).value_or(1);
    r.high_freq_factor = rope_number(*scaling, "high_freq_factor", where).value_or(4);
    r.original_max_position_embeddings =
        rope_number(*scaling, "original_max_position_embeddings", where).value_or(0);
    if (!(r.original_max_position_embeddings > 0) || !(r.high_freq_factor > r.low_freq_factor)) {
      throw Error(where +
                  ": llama3 rope scaling needs original_max_position_embeddings > 0 and "
                  "high_freq_factor > low_freq_factor");
    }
  }
  return r;
}

at::Tensor rope_inverse_frequencies(const RopeConfig& rope, int64_t dims) {
  at::Tensor inv = rotary_inverse_frequencies(dims, rope.theta);
  if (rope.type == "linear") return inv / rope.factor;
  if (rope.type != "llama3") return inv;
  // modeling_rope_utils._compute_llama3_parameters, in the same float32 steps.
  const double low_wavelen = rope.original_max_position_embeddings / rope.low_freq_factor;
  const double high_wavelen = rope.original_max_position_embeddings / rope.high_freq_factor;
  auto wavelen = 2 * M_PI / inv;
  auto scaled = at::where(wavelen > low_wavelen, inv / rope.factor, inv);
  auto smooth = (rope.original_max_position_embeddings / wavelen - rope.low_freq_factor) /
                (rope.high_freq_factor - rope.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
  auto medium =
      (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
  return at::where(medium, smoothed, scaled);
}

Rotary rotary_at(const at::Tensor& position_ids, const at::Tensor& inv_freq, at::ScalarType dtype) {
  // [batch, pos, dims/2] in float32, then cat(freqs, freqs) as Hugging Face does.
  auto freqs = position_ids.to(at::kFloat).unsqueeze(-1) *
               inv_freq.to(position_ids.device()).view({1, 1, -1});
  auto angles = at::cat({freqs, freqs}, -1).unsqueeze(2);  // [batch, pos, 1, dims]
  Rotary r;
  r.dims = angles.size(-1);
  r.cos = angles.cos().to(dtype);
  r.sin = angles.sin().to(dtype);
  return r;
}

at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary) {
  const int64_t d_head = x.size(-1), half = rotary.dims / 2;
  auto rot = x.narrow(-1, 0, rotary.dims);
  auto rotated_half = at::cat({-rot.narrow(-1, half, half), rot.narrow(-1, 0, half)}, -1);
  auto out = rot * rotary.cos + rotated_half * rotary.sin;
  if (rotary.dims == d_head) return out;
  return at::cat({out, x.narrow(-1, rotary.dims, d_head - rotary.dims)}, -1);
}

at::Tensor attention(const BlockSites& sites, const at::Tensor& q_proj, const at::Tensor& k_proj,
                     const at::Tensor& v_proj, int64_t heads, const at::Tensor& allowed,
                     const ScoreScaling& scaling, Pass& pass, const Rotary* rotary,
                     int64_t kv_heads) {
  const int64_t batch = q_proj.size(0), pos = q_proj.size(1), width = q_proj.size(2);
  const int64_t d_head = width / heads;
  if (kv_heads <= 0) kv_heads = heads;
  auto q = sites(Step::kQ, q_proj.view({batch, pos, heads, d_head}));
  auto k = sites(Step::kK, k_proj.view({batch, pos, kv_heads, d_head}));
  auto v = sites(Step::kV, v_proj.view({batch, pos, kv_heads, d_head}));
  if (rotary) {
    q = sites(Step::kRotQ, apply_rotary(q, *rotary));
    k = sites(Step::kRotK, apply_rotary(k, *rotary));
  }
  std::tie(k, v) = pass.extend_kv(sites.layer(), std::move(k), std::move(v));
  if (kv_heads != heads) {  // query head h reads kv head h / (heads / kv_heads)
    k = k.repeat_interleave(heads / kv_heads, 2);
    v = v.repeat_interleave(heads / kv_heads, 2);
  }

  // [batch, head, query_pos, key_pos]
  auto q_heads = q.transpose(1, 2), k_heads = k.permute({0, 2, 3, 1});
  if (scaling.in_float32) {
    q_heads = q_heads.to(at::kFloat);
    k_heads = k_heads.to(at::kFloat);
  }
  // The scores are a fresh tensor that nothing else sees yet: scaled and masked in place.
  auto scores = threaded_matmul(q_heads, k_heads);
  const double divisor1 = scaling.by_sqrt_d_head ? std::sqrt(static_cast<double>(d_head)) : 1.0;
  at::Tensor pattern;
  // Where no hook reads the scores, scale, mask and softmax are one pass over them.
  if (!sites.observed(Step::kScores) &&
      masked_softmax_(scores, allowed, static_cast<float>(divisor1),
                      static_cast<float>(scaling.divisor))) {
    pattern = scores;
  } else {
    if (divisor1 != 1.0) scores.div_(divisor1);
    if (scaling.divisor != 1.0) scores.div_(scaling.divisor);
    scores = sites(Step::kScores,
                   scores.masked_fill_(allowed.logical_not(), lowest_value(scores.scalar_type())));
    pattern =
        scaling.softmax_in_float32 ? at::softmax(scores, -1, at::kFloat) : at::softmax(scores, -1);
  }
  pattern = sites(Step::kPattern, pattern.to(v.scalar_type()));
  pass.keep_attention(pattern);

  // z is written as [batch, pos, head, d_head] directly, so merging the heads is a view.
  auto z_heads = at::empty({batch, pos, heads, d_head}, pattern.options());
  threaded_matmul(pattern, v.transpose(1, 2), z_heads.transpose(1, 2));
  auto z = sites(Step::kZ, z_heads);
  return sites(Step::kMerged, z.reshape({batch, pos, width}));
}

at::Tensor gated_mlp(const BlockSites& sites, const Linear& gate, const Linear& up,
                     const Linear& down, const std::string& activation_name, const at::Tensor& x) {
  auto gated = sites(Step::kMlpAct, activation(activation_name, sites(Step::kMlpPre, gate(x))));
  auto product = sites(Step::kMlpPost, gated * sites(Step::kMlpPreLinear, up(x)));
  return sites(Step::kProj, down(product));
}

at::Tensor mlp(const BlockSites& sites, const Linear& fc, const Linear& proj,
               const std::string& activation_name, const at::Tensor& x) {
  auto pre = sites(Step::kMlpPre, fc(sites(Step::kFcIn, x)));
  auto post = sites(Step::kMlpPost,
                    sites(Step::kMlpAct, activation(activation_name, sites(Step::kActIn, pre))));
  return sites(Step::kMlpDropout, sites(Step::kProj, proj(sites(Step::kProjIn, post))));
}

}  // namespace llmscope::detail

namespace llmscope {

KvCache::KvCache() : state_(std::make_unique<State>()) {}
KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;
int64_t KvCache::length() const { return state_->held(); }
void KvCache::clear() { *state_ = State(); }

namespace detail {

at::Tensor CheckpointModel::unembed(const at::Tensor& resid, bool full_head) const {
  if (!head_) return Model::unembed(resid, full_head);
  if (!resid.defined() || !at::isFloatingType(resid.scalar_type()) || resid.dim() == 0 ||
      resid.size(-1) != d_model()) {
    throw Error("unembed: expected residual-stream vectors [..., " + std::to_string(d_model()) +
                "] of floats, got " +
                (resid.defined() ? shape_string(resid.sizes()) + " " +
                                       std::string(c10::toString(resid.scalar_type()))
                                 : std::string("an undefined tensor")));
  }
  return (*head_)(resid.to(device_, dtype_), full_head);
}

ForwardOutput CheckpointModel::forward_cached(const ForwardInput& input,
                                              const ForwardOptions& options, KvCache& cache) {
  if (!is_causal()) {
    throw Error("forward_cached: " + architecture() +
                " is a masked language model; it attends both ways and has no key/value cache");
  }
  ItemsApart apart(options.batch_invariant);
  return run(input, options, &cache);
}

ForwardOutput CheckpointModel::forward(const ForwardInput& input, const ForwardOptions& options) {
  ItemsApart apart(options.batch_invariant);
  return run(input, options, nullptr);
}

}  // namespace detail
}  // namespace llmscope
