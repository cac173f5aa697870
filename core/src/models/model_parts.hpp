// Pieces every decoder in core/src shares (internal header): reading checked weights out of a
// checkpoint, preparing ids/embeddings/masks/positions, and the start and end of a hooked pass.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "llmscope/hooks.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::detail {

// json[key] as a positive integer; throws llmscope::Error naming `source` and the key.
int64_t required_positive_int(const nlohmann::json& json, const char* key,
                              const std::string& source);

// The most negative finite value of `type`: what masked attention scores become, so a fully
// masked row (a left-padding query) softmaxes to a uniform average instead of NaN.
double lowest_value(at::ScalarType type);

// Hugging Face's activation functions by config name (gelu_new, gelu, relu, silu, ...).
at::Tensor activation(const std::string& name, const at::Tensor& x);

// Reads parameters by their Hugging Face names, checking presence, dtype and shape, and
// accepting checkpoints stored without the base model prefix ("transformer.", "bert.").
class WeightReader {
 public:
  // `probe` is a parameter every checkpoint of the architecture has, named without the prefix;
  // `config_summary` says in errors what the config asked for.
  WeightReader(const SafetensorsSet& file, const LoadOptions& options, std::string prefix,
               const std::string& probe, const std::string& architecture,
               std::string config_summary);

  bool has(const std::string& name) const { return file_.contains(stored_name(name)); }
  at::Tensor read(const std::string& name, const std::vector<int64_t>& expected);
  // Unread tensors: those matching `ignored` are fine (buffers); weights of a layer at or past
  // `n_layer` (names "<prefix><layers>.<N>.") mean config and weights disagree; the rest warn.
  void check_unused(const std::regex& ignored, const std::string& layers, int64_t n_layer) const;

 private:
  std::string stored_name(const std::string& name) const;

  const SafetensorsSet& file_;
  const LoadOptions& options_;
  std::string prefix_;         // the Hugging Face prefix ("transformer.")
  std::string stored_prefix_;  // what this file uses: the prefix or ""
  std::string architecture_;
  std::string config_summary_;
  std::set<std::string> used_;
};

struct PreparedInput {
  bool has_ids = false;
  at::Tensor ids;           // [batch, pos] int64 on the model's device, when given ids
  at::Tensor embeds;        // [batch, pos, d_model], when given embeddings
  at::Tensor keep;          // [batch, pos] bool, true = real token (all true without a mask)
  at::Tensor position_ids;  // [batch, pos]: counts real tokens, so padding never shifts positions
  int64_t batch = 0, pos = 0;
};

struct InputLimits {
  int64_t vocab_size, d_model, max_positions;
};

// Validates and moves the input to `device`; throws llmscope::Error naming what is wrong.
PreparedInput prepare_input(const ForwardInput& input, const InputLimits& limits, at::Device device,
                            at::ScalarType dtype);

// Which keys each query may attend to, [batch, 1, query, key]: causal, never padding, and
// within `window` positions back when window > 0 (GPT-Neo's local attention).
at::Tensor causal_mask(const PreparedInput& input, int64_t window = 0);

// Blocks to run: all, or 0..stop_at_layer-1 (negative counts from the end).
int layers_to_run(const ForwardOptions& options, int n_layer);

// The pass's hook plan, or none when nothing is hooked or cached at all.
std::optional<HookRun> begin_pass(const Model& model, const ForwardOptions& options);
// Moves the cache and fire counts into `out`; with strict_hooks, throws for hooks that never fired.
void finish_pass(HookRun* run, ForwardOutput& out, const ForwardOptions& options, int layers_run,
                 int n_layer);

}  // namespace llmscope::detail
