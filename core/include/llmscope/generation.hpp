// Text generation: greedy or sampled (temperature, top-k, top-p, seed) continuation of a
// batch of prompts, with hooks active on every step.
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
};

struct GenerationInput {
  at::Tensor input_ids;       // [batch, pos] (or [pos])
  at::Tensor attention_mask;  // optional; prompts of different lengths are left-padded
};

// Returns [batch, pos + new] ids: each prompt followed by its continuation. Rows that stop at
// eos are filled with eos afterwards. The whole sequence is recomputed each step, so hooks see
// every position every step, as on a plain forward pass.
at::Tensor generate(Model& model, const GenerationInput& input, const GenerationOptions& options);

}  // namespace llmscope
