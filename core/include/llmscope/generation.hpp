// Text generation: greedy or sampled (temperature, top-k, top-p, seed) continuation of a
// batch of prompts, with a key/value cache, and hooks active on every step.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "llmscope/hooks.hpp"
#include "llmscope/model.hpp"

namespace llmscope {

struct GenerationOptions {
  int64_t max_new_tokens = 20;
  bool greedy = true;            // argmax; otherwise sample
  double temperature = 1.0;      // sampling only; > 0
  int64_t top_k = 0;             // sampling only; 0 = all tokens
  double top_p = 1.0;            // sampling only; nucleus mass in (0, 1]
  std::optional<uint64_t> seed;  // sampling only; fixed seed = reproducible output
  // Stop a row once it produces this id (the model's eos by default; -1 never stops).
  std::optional<int64_t> eos_token_id;
  std::vector<NamedHook> hooks;  // scoped hooks, active on every step
  // Keep each step's keys and values (Model::forward_cached), so a new token costs one
  // position's work. Hooks then see the prompt on the first step and only the new token on
  // each later one; without the cache every step recomputes, and hooks see every position.
  bool use_cache = true;
};

struct GenerationInput {
  at::Tensor input_ids;       // [batch, pos] (or [pos])
  at::Tensor attention_mask;  // optional; prompts of different lengths are left-padded
};

// Returns [batch, pos + new] ids: each prompt followed by its continuation. Rows that stop at
// eos are filled with eos afterwards. Prompts may be left- or right-padded (the mask says
// which); each row continues after its last real token. Cached and uncached greedy ids agree.
at::Tensor generate(Model& model, const GenerationInput& input, const GenerationOptions& options);

}  // namespace llmscope
