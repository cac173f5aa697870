// The parts every architecture file is built from (internal header), as llama.cpp builds its
// models from build_attn/build_ffn: weights read checked out of a checkpoint (which also lists
// them as the model's parameters), one dense layer and one norm, the frame of a hooked forward
// pass, multi-head attention and the MLP, each step of them a hook site the caller names.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "base/file_reading.hpp"
#include "llmscope/hooks.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"
#include "models/architectures.hpp"
#include "models/sites.hpp"

namespace llmscope::detail {

// json[key] as a positive integer; throws llmscope::Error naming `source` and the key.
int64_t required_positive_int(const nlohmann::json& json, const char* key,
                              const std::string& source);
// The same, `fallback` when the key is absent or null.
int64_t optional_positive_int(const nlohmann::json& json, const char* key, int64_t fallback,
                              const std::string& source);

// The most negative finite value of `type`: what masked attention scores become, so a fully
// masked row (a left-padding query) softmaxes to a uniform average instead of NaN.
double lowest_value(at::ScalarType type);

// Hugging Face's activation functions by config name (gelu_new, gelu, relu, silu, ...).
at::Tensor activation(const std::string& name, const at::Tensor& x);

// A dense layer, one spelling for every checkpoint layout: nn.Linear stores the weight
// [out, in] (y = x Wᵀ + b), GPT-2's Conv1D stores it [in, out] (y = x W + b). The bias may be
// undefined.
struct Linear {
  enum class Layout { kOutIn, kInOut };
  at::Tensor weight, bias;
  Layout layout = Layout::kOutIn;
  at::Tensor operator()(const at::Tensor& x) const;
};

// LayerNorm over the last dimension; or RMSNorm (Llama's: computed in float32, then scaled by
// the weight in the input's dtype; no mean, no bias) when `rms`.
struct Norm {
  at::Tensor weight, bias;
  double eps = 1e-5;
  bool rms = false;
  at::Tensor operator()(const at::Tensor& x) const;
};

// What turns the last block's output into logits: for a masked LM a prediction transform
// (dense, then `transform_activation`), then `norm` (a causal LM's final norm, a masked LM's
// transform LayerNorm), then the unembedding `weight` [vocab, d_model] with an optional `bias`.
struct OutputHead {
  std::optional<Linear> transform;
  std::string transform_activation;
  Norm norm;
  at::Tensor weight, bias;
  // Logits from x [..., d_model]; without `full`, the unembedding alone.
  at::Tensor operator()(const at::Tensor& x, bool full) const;
};

using NamedParameters = std::vector<std::pair<std::string, at::Tensor>>;

// Reads parameters by their Hugging Face names, checking presence, dtype and shape, and
// accepting checkpoints stored without the base model prefix ("transformer.", "bert.").
// Everything read is listed, in reading order, as the model's named parameters.
class WeightReader {
 public:
  // `probe` is a parameter every checkpoint of the architecture has, named without the prefix;
  // `config_summary` says in errors what the config asked for.
  // A checkpoint without weights (random_model) gives every read random values of the shape
  // asked for: norm weights 1, biases 0, the rest N(0, 0.02), from its seed.
  WeightReader(const models::Checkpoint& checkpoint, std::string prefix, const std::string& probe,
               const std::string& architecture, std::string config_summary);

  bool has(const std::string& name) const {
    return file_ != nullptr && file_->contains(stored_name(name));
  }
  at::Tensor read(const std::string& name, const std::vector<int64_t>& expected);
  // Checked like read() but not listed: a stored copy of a tied weight.
  void check_tied_copy(const std::string& name, const std::vector<int64_t>& expected);
  // "<name>.weight" (and "<name>.bias" unless without_bias) for `in` -> `out` features.
  Linear linear(const std::string& name, int64_t in, int64_t out,
                Linear::Layout layout = Linear::Layout::kOutIn, bool with_bias = true);
  // "<name>.weight" and "<name>.bias", both [d].
  Norm layer_norm(const std::string& name, int64_t d, double eps);
  // "<name>.weight" [d].
  Norm rms_norm(const std::string& name, int64_t d, double eps);
  const NamedParameters& parameters() const { return parameters_; }
  // Unread tensors: those matching `ignored` are fine (buffers); weights of a layer at or past
  // `n_layer` (names "<prefix><layers>.<N>.") mean config and weights disagree; the rest warn.
  void check_unused(const std::regex& ignored, const std::string& layers, int64_t n_layer) const;

 private:
  std::string stored_name(const std::string& name) const;
  at::Tensor load_checked(const std::string& name, const std::vector<int64_t>& expected);

  const SafetensorsSet* file_;  // nullptr: random weights from random_
  std::optional<at::Generator> random_;
  const LoadOptions& options_;
  std::string prefix_;         // the Hugging Face prefix ("transformer.")
  std::string stored_prefix_;  // what this file uses: the prefix or ""
  std::string architecture_;
  std::string config_summary_;
  std::set<std::string> used_;
  NamedParameters parameters_;
};

// What every model read from a checkpoint has: its dtype, device and parameter list.
// What every architecture reports about itself, read from its config.
struct ModelShape {
  std::string architecture;  // the model_type: "gpt2"
  int64_t n_layer = 0;
  int64_t d_model = 0;
  int64_t vocab_size = 0;
  int64_t max_positions = 0;
  int64_t eos_token_id = -1;
  bool is_causal = true;
};

class CheckpointModel : public Model {
 public:
  ForwardOutput forward(const ForwardInput& input, const ForwardOptions& options) final;
  ForwardOutput forward_cached(const ForwardInput& input, const ForwardOptions& options,
                               KvCache& cache) final;
  std::string architecture() const override { return shape_.architecture; }
  int64_t n_layer() const override { return shape_.n_layer; }
  int64_t d_model() const override { return shape_.d_model; }
  int64_t vocab_size() const override { return shape_.vocab_size; }
  int64_t max_positions() const override { return shape_.max_positions; }
  int64_t eos_token_id() const override { return shape_.eos_token_id; }
  bool is_causal() const override { return shape_.is_causal; }
  at::ScalarType dtype() const override { return dtype_; }
  at::Device device() const override { return device_; }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const override {
    return parameters_;
  }
  at::Tensor unembed(const at::Tensor& resid, bool full_head) const override;
  // The architecture's steps and where they are in hook_points().
  const SiteTable& sites() const { return sites_; }

 protected:
  CheckpointModel(ModelShape shape, const SiteTable& sites, std::filesystem::path source,
                  const LoadOptions& options)
      : Model(sites.hook_points(static_cast<int>(shape.n_layer)), std::move(source)),
        dtype_(options.dtype),
        device_(options.device),
        sites_(sites),
        shape_(std::move(shape)) {}
  // Call once every weight is read.
  void set_parameters(const WeightReader& reader) { parameters_ = reader.parameters(); }
  // Call once the head's weights are read; unembed() runs it.
  void set_output_head(OutputHead head) { head_ = std::move(head); }
  // The architecture's pass; `cache` (causal models only) as forward_cached says, else nullptr.
  virtual ForwardOutput run(const ForwardInput& input, const ForwardOptions& options,
                            KvCache* cache) = 0;

  at::ScalarType dtype_;
  at::Device device_;

 private:
  const SiteTable& sites_;
  ModelShape shape_;
  NamedParameters parameters_;
  std::optional<OutputHead> head_;
};

}  // namespace llmscope::detail

namespace llmscope {
// Per layer, keys (after rotary) and values [batch, held, kv_heads, d_head] as attention's k and
// v sites see them; which held positions are real tokens; each row's real tokens so far.
struct KvCache::State {
  std::vector<at::Tensor> keys, values;
  at::Tensor keep;         // [batch, held] bool
  at::Tensor real_tokens;  // [batch] int64: the position the next real token takes
  int64_t held() const { return keep.defined() ? keep.size(1) : 0; }
};
}  // namespace llmscope

namespace llmscope::detail {

struct PreparedInput {
  bool has_ids = false;
  at::Tensor ids;           // [batch, pos] int64 on the model's device, when given ids
  at::Tensor embeds;        // [batch, pos, d_model], when given embeddings
  at::Tensor keep;          // [batch, pos] bool, true = real token (all true without a mask)
  at::Tensor position_ids;  // [batch, pos]: counts real tokens, so padding never shifts positions
  int64_t batch = 0, pos = 0;
  int64_t held = 0;     // positions before these, held in a KvCache (0 without one)
  at::Tensor key_keep;  // [batch, held + pos]: keep of every key the queries may see
};

struct InputLimits {
  int64_t vocab_size, d_model, max_positions;
};

// Validates and moves the input to `device`; throws llmscope::Error naming what is wrong.
PreparedInput prepare_input(const ForwardInput& input, const InputLimits& limits, at::Device device,
                            at::ScalarType dtype);

// Which keys each query may attend to, [batch, 1, query, held + query]: causal, never padding,
// and within `window` positions back when window > 0 (GPT-Neo's local attention, Mistral's
// sliding window); held positions of a KvCache come first.
at::Tensor causal_mask(const PreparedInput& input, int64_t window = 0);

// The hook sites of one block in one pass: sites(Step::kLn1, t) fires the block's ln1 site, if
// the architecture has one.
class BlockSites {
 public:
  BlockSites(HookRun* run, const HookPointTable& table, const SiteTable& sites, int layer)
      : run_(run), table_(table), sites_(sites), layer_(layer) {}
  at::Tensor operator()(Step step, at::Tensor t) const {
    const int local = sites_.block(step);
    if (local == kNoSite || run_ == nullptr) return t;
    return at_site(run_, table_.block_id(layer_, local), std::move(t));
  }
  // Whether a hook reads or changes the step's site in this pass (else it may be fused away).
  bool observed(Step step) const {
    const int local = sites_.block(step);
    return local != kNoSite && run_ != nullptr && run_->wants(table_.block_id(layer_, local));
  }
  int layer() const { return layer_; }

 private:
  HookRun* run_;
  const HookPointTable& table_;
  const SiteTable& sites_;
  int layer_;
};

// The frame of one forward pass: the checked input, the hook run (none when nothing is hooked
// or cached), the blocks to run, and the output being filled.
class Pass {
 public:
  // With `cache`, the input continues the positions it holds (see Model::forward_cached).
  Pass(const CheckpointModel& model, const ForwardInput& input, const ForwardOptions& options,
       const InputLimits& limits, KvCache* cache = nullptr);
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;

  const PreparedInput& input() const { return input_; }
  // Blocks to run: all, or 0..stop_at_layer-1 (negative counts from the end).
  int layers() const { return layers_; }
  bool stops_early() const { return options_.stop_at_layer.has_value(); }
  // The step's site before or after the blocks (none: t unchanged).
  at::Tensor before(Step step, at::Tensor t) {
    const int local = sites_.before(step);
    return local == kNoSite ? t : at_site(run(), table_.before_id(local), std::move(t));
  }
  at::Tensor after(Step step, at::Tensor t) {
    const int local = sites_.after(step);
    return local == kNoSite ? t : at_site(run(), table_.after_id(local), std::move(t));
  }
  BlockSites block(int layer) { return BlockSites(run(), table_, sites_, layer); }
  // Layer `layer`'s keys and values [batch, pos, kv_heads, d_head] with the cache's held ones
  // before them (unchanged without a cache); finish() stores them in the cache.
  std::pair<at::Tensor, at::Tensor> extend_kv(int layer, at::Tensor k, at::Tensor v);
  void keep_hidden_state(const at::Tensor& x);
  void keep_attention(const at::Tensor& pattern);
  ForwardOutput& output() { return out_; }
  // Moves the cache and fire counts into the output; with strict_hooks, throws for hooks that
  // never fired. With a KvCache, stores this pass's keys and values in it.
  ForwardOutput finish();

  // The end of a causal LM's pass after its blocks: the final norm (whose output is the last
  // hidden state, as in Hugging Face) and logits = hidden · head_weightᵀ, through the steps
  // kFinalNormIn, kFinalNorm, kBaseModel, kHeadIn and kHead; when the pass stopped early, only
  // the hidden state. Then finish().
  ForwardOutput finish_causal_lm(const at::Tensor& x, const Norm& final_norm,
                                 const at::Tensor& head_weight);

 private:
  HookRun* run() { return run_ ? &*run_ : nullptr; }
  void continue_cache(const InputLimits& limits);

  const HookPointTable& table_;
  const SiteTable& sites_;
  const ForwardOptions& options_;
  PreparedInput input_;
  int n_layer_, layers_;
  std::optional<HookRun> run_;
  ForwardOutput out_;
  KvCache* cache_ = nullptr;
  std::vector<at::Tensor> new_keys_, new_values_;  // per layer, held + new
};

// How attention scores are formed from q·k.
struct ScoreScaling {
  bool by_sqrt_d_head = true;       // divide by sqrt(d_head)
  double divisor = 1.0;             // and then by this (GPT-2's scale_attn_by_inverse_layer_idx)
  bool in_float32 = false;          // compute scores and softmax in float32 (GPT-Neo)
  bool softmax_in_float32 = false;  // only the softmax (Llama's eager attention)
};

// Rotary position embedding, Hugging Face's rotate-half convention (dimension i pairs with
// i + dims/2) on the first `dims` dimensions of each head; the rest pass through.
struct Rotary {
  int64_t dims = 0;
  at::Tensor cos, sin;  // [batch, pos, 1, dims] in the activations' dtype
};

// base^(-2i/dims) for i < dims/2, in float32 (as Hugging Face computes them).
at::Tensor rotary_inverse_frequencies(int64_t dims, double base);

// Rotary settings as config.json gives them: transformers 5.x's rope_parameters, else 4.x's
// rope_scaling with the base and fraction under the architecture's own keys.
struct RopeConfig {
  double theta = 10000;
  double partial = 1;            // fraction of each head that rotates
  std::string type = "default";  // default | linear | llama3
  double factor = 1;
  double low_freq_factor = 1, high_freq_factor = 4;  // llama3
  double original_max_position_embeddings = 0;       // llama3
};
// `theta_keys` and `partial_keys` are 4.x's names, first match wins; absent: the defaults.
RopeConfig read_rope_config(const nlohmann::json& config, const std::string& source,
                            const std::vector<const char*>& theta_keys, double default_theta,
                            const std::vector<const char*>& partial_keys, double default_partial);
// The inverse frequencies for `dims` rotary dimensions, scaled as the type says
// (modeling_rope_utils: linear divides them by factor; llama3 divides the low frequencies and
// interpolates the middle band).
at::Tensor rope_inverse_frequencies(const RopeConfig& rope, int64_t dims);
// cos and sin at each position of `position_ids` [batch, pos] for `inv_freq` [dims/2].
Rotary rotary_at(const at::Tensor& position_ids, const at::Tensor& inv_freq, at::ScalarType dtype);
// x [batch, pos, heads, d_head] rotated.
at::Tensor apply_rotary(const at::Tensor& x, const Rotary& rotary);

// Multi-head attention from projected q, k, v [batch, pos, heads * d_head]: splits heads (steps
// kQ, kK, kV), rotates q and k when `rotary` is given (kRotQ, kRotK), scores, masks (`allowed`
// [batch|1, 1, query, key], masked scores get the dtype's lowest value as in Hugging Face;
// kScores), softmax (kPattern), weights the values (kZ) and merges heads again (kMerged).
// With grouped-query attention k and v have `kv_heads` heads (0: as many as q), each shared by
// heads / kv_heads consecutive query heads; hook sites k and v see them before sharing.
at::Tensor attention(const BlockSites& sites, const at::Tensor& q, const at::Tensor& k,
                     const at::Tensor& v, int64_t heads, const at::Tensor& allowed,
                     const ScoreScaling& scaling, Pass& pass, const Rotary* rotary = nullptr,
                     int64_t kv_heads = 0);

// fc -> activation -> proj through the steps kFcIn, kMlpPre (fc's output), kActIn, kMlpAct (the
// activation's), kMlpPost (the module wrapping it: BERT's intermediate; GPT-2's act has this
// step alone), kProjIn, kProj and kMlpDropout, whose output it returns.
at::Tensor mlp(const BlockSites& sites, const Linear& fc, const Linear& proj,
               const std::string& activation_name, const at::Tensor& x);

// A gated MLP (Llama's), down(act(gate(x)) * up(x)), through the steps kMlpPre (gate(x), before
// the activation), kMlpPreLinear (up(x)), kMlpAct (act(gate(x))), kMlpPost (the product, the
// input of down) and kProj (the output).
at::Tensor gated_mlp(const BlockSites& sites, const Linear& gate, const Linear& up,
                     const Linear& down, const std::string& activation_name, const at::Tensor& x);

}  // namespace llmscope::detail
