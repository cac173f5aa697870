// Model: the architecture-neutral interface every language model in llmscope implements.
// A forward pass takes token ids or embeddings (with an optional attention mask), runs the
// hooks attached to its hook points, and returns logits plus whatever was asked for: hidden
// states with Hugging Face's semantics, attention patterns, and a cache of named activations.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "llmscope/hook_points.hpp"
#include "llmscope/hooks.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope {

struct ForwardInput {
  at::Tensor input_ids;       // [batch, pos] int64; or
  at::Tensor inputs_embeds;   // [batch, pos, d_model] (gradients flow back to it)
  at::Tensor attention_mask;  // [batch, pos], 1 = token, 0 = padding (either side); optional
  at::Tensor
      token_type_ids;  // [batch, pos] segment ids (BERT sentence pairs); optional, 0 if absent
};

struct ForwardOptions {
  std::vector<NamedHook> hooks;    // scoped to this pass, after the model's persistent hooks
  std::vector<std::string> cache;  // hook point names or globs to capture (run_with_cache)
  bool output_hidden_states = false;
  bool output_attentions = false;
  // Run blocks 0..stop_at_layer-1 only; logits are then not computed.
  std::optional<int> stop_at_layer;
  // Throw when a hook never fired (instead of only reporting it in ForwardOutput::firings).
  bool strict_hooks = false;
  // A batch row's results do not depend on the other rows or where it sits: the same prompt gives
  // the same numbers, bit for bit, alone or in any batch of the same length. On CPUs with AVX2
  // and without AVX-512 llmscope's own float32 kernel gives this at no cost; elsewhere, where the
  // BLAS sums a row differently at a tile's edge, each row is multiplied apart, which costs some
  // speed on batches (docs/performance.md); false trades it away.
  bool batch_invariant = true;
};

struct ForwardOutput {
  at::Tensor logits;                      // [batch, pos, vocab]; undefined when stopped early
  std::vector<at::Tensor> hidden_states;  // n_layer + 1 entries: [0] embeddings, last after ln_f
  std::vector<at::Tensor> attentions;     // per layer [batch, head, query_pos, key_pos]
  ActivationCache cache;
  std::vector<HookFiring> firings;  // every hook of the pass and how often it ran
};

// The keys and values a causal model has computed for the positions it has seen, per layer and
// batch row, with which of them are padding: Model::forward_cached fills it, so that the next
// pass runs only its new positions (cached generation). Opaque to callers; one cache belongs to
// one model and one batch.
class KvCache {
 public:
  KvCache();
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t length() const;  // positions held, padding included; 0 when empty
  void clear();

  struct State;  // the models' view (core/src/models/model_parts.hpp)
  State& state() { return *state_; }

 private:
  std::unique_ptr<State> state_;
};

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::Device(at::kCPU);
};

class Model {
 public:
  virtual ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  virtual std::string architecture() const = 0;  // "gpt2"
  virtual int64_t n_layer() const = 0;
  virtual int64_t d_model() const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t max_positions() const = 0;
  virtual int64_t eos_token_id() const { return -1; }
  // Causal language models continue text; masked language models (BERT) fill in [MASK]s.
  virtual bool is_causal() const { return true; }
  virtual at::ScalarType dtype() const = 0;
  virtual at::Device device() const = 0;
  // Parameters under their Hugging Face names (tied weights listed once).
  virtual std::vector<std::pair<std::string, at::Tensor>> named_parameters() const = 0;
  int64_t num_parameters() const;

  const HookPointTable& hook_points() const;
  // A persistent hook, active on every pass until the handle removes it.
  HookHandle hook(const std::string& name, HookFn fn);
  void clear_hooks();
  const HookRegistry& persistent_hooks() const;

  virtual ForwardOutput forward(const ForwardInput& input, const ForwardOptions& options = {}) = 0;
  // Token embeddings for ids, as a model's embedding layer computes them ([batch, pos, d_model]).
  virtual at::Tensor embed_tokens(const at::Tensor& input_ids) const = 0;

  // forward() of new positions that continue the ones `cache` holds: they attend to those and
  // to themselves; positions go on from each row's real tokens so far; attention_mask (if given)
  // covers the new positions only. Outputs, hooks and captures see the new positions only
  // (attention patterns are [batch, head, new, held + new]). On success the cache holds the new
  // keys and values too; on an error it is unchanged. stop_at_layer is refused (the cache would
  // miss layers). Throws for a model without a cache (a masked LM). (Plugin ABI 2.1.)
  virtual ForwardOutput forward_cached(const ForwardInput& input, const ForwardOptions& options,
                                       KvCache& cache);

  // The output head applied to residual-stream vectors `resid` [..., d_model] (any leading
  // dims; moved to the model's device and dtype): logits [..., vocab], as forward() computes them
  // from the last block's output. full_head = false leaves out what stands between the residual
  // stream and the unembedding: a causal LM's final norm (the raw logit lens) or a masked LM's
  // prediction transform (dense, activation, LayerNorm), keeping the decoder's weight and bias.
  // No hook fires. Throws for a model without an output head. (Plugin ABI 2.2.)
  virtual at::Tensor unembed(const at::Tensor& resid, bool full_head) const;

  // The tokenizer found beside the weights, or nullptr.
  const Tokenizer* tokenizer() const;
  void set_tokenizer(std::shared_ptr<const Tokenizer> tokenizer);
  const std::filesystem::path& source() const;

 protected:
  Model(HookPointTable table, std::filesystem::path source);

 private:
  // Behind a pointer and reached only through the out-of-line calls above, so plugins (which
  // see this class) compile in nothing of its layout but the vtable and this pointer.
  struct State;
  std::unique_ptr<State> state_;
};

// Loads a Hugging Face checkpoint folder (config.json + model.safetensors, or a sharded
// model.safetensors.index.json, and tokenizer files when present), or a hub name ("gpt2",
// "EleutherAI/gpt-neo-125m@main") from the Hugging Face cache (see llmscope/hub.hpp).
// Throws llmscope::Error naming the file and what was expected.
std::unique_ptr<Model> load_model(const std::filesystem::path& dir_or_name,
                                  const LoadOptions& options = {});

// A model built from a config.json alone, with random weights (N(0, 0.02) matrices, norm weights
// 1, biases 0; the same seed gives the same weights): any architecture at a real checkpoint's
// shape without its weights, for tests and benchmarks. Throws like load_model for the config.
std::unique_ptr<Model> random_model(const std::filesystem::path& config_json, uint64_t seed,
                                    const LoadOptions& options = {});

// The model_type values load_model accepts ("gpt2", "gpt_neo", "bert", ...).
std::vector<std::string> supported_model_types();
// The hook point table of `model_type` with `n_layer` blocks, without loading any weights;
// throws llmscope::Error for an unsupported type.
HookPointTable hook_point_table(const std::string& model_type, int n_layer);

// "float32" | "float16" | "bfloat16" (and "fp32", "fp16", "bf16"); throws otherwise.
at::ScalarType parse_dtype(const std::string& name);
std::string dtype_name(at::ScalarType type);
// "cpu" | "cuda" | "cuda:N"; throws when CUDA is asked for and this libtorch has none.
at::Device parse_device(const std::string& name);

}  // namespace llmscope
