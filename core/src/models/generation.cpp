#include "llmscope/generation.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <ATen/TensorIndexing.h>

#include "llmscope/error.hpp"

namespace llmscope {
namespace {

at::Tensor pick_next(const at::Tensor& last_logits, const GenerationOptions& options,
                     at::Generator& generator) {
  if (options.greedy) return last_logits.argmax(-1);
  auto logits = last_logits.to(at::kFloat) / options.temperature;  // [batch, vocab]
  if (options.top_k > 0 && options.top_k < logits.size(-1)) {
    auto kth =
        std::get<0>(logits.topk(options.top_k, -1)).select(-1, options.top_k - 1).unsqueeze(-1);
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  if (options.top_p < 1.0) {
    auto [sorted, order] = logits.sort(-1, /*descending=*/true);
    auto cumulative = sorted.softmax(-1).cumsum(-1);
    // Drop tokens once the mass before them already reaches top_p; the first always stays.
    auto drop_sorted = (cumulative - sorted.softmax(-1)) >= options.top_p;
    auto drop = at::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    logits = logits.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  auto probs = logits.softmax(-1).to(at::kCPU);
  return at::multinomial(probs, 1, /*replacement=*/false, generator)
      .squeeze(-1)
      .to(last_logits.device());
}

// Per row, the index (among the last `width` columns of `mask`) of its last real token.
at::Tensor last_real_position(const at::Tensor& mask, int64_t width) {
  const auto tail = mask.narrow(1, mask.size(1) - width, width).ne(0).to(at::kLong);
  const auto index = at::arange(width, tail.options());
  return (tail * (index + 1)).argmax(1);  // all padding (never in practice): column 0
}

}  // namespace

at::Tensor generate(Model& model, const GenerationInput& input, const GenerationOptions& options) {
  if (!input.input_ids.defined()) throw Error("generate: input_ids are required");
  if (!model.is_causal()) {
    throw Error("generate: " + model.architecture() +
                " is a masked language model, not a causal one; "
                "predict [MASK] tokens instead (fill_mask)");
  }
  if (options.max_new_tokens < 0) throw Error("generate: max_new_tokens must be >= 0");
  if (!options.greedy) {
    if (!(options.temperature > 0)) throw Error("generate: temperature must be > 0");
    if (options.top_k < 0) throw Error("generate: top_k must be >= 0");
    if (!(options.top_p > 0 && options.top_p <= 1))
      throw Error("generate: top_p must be in (0, 1]");
  }
  auto ids = (input.input_ids.dim() == 1 ? input.input_ids.unsqueeze(0) : input.input_ids)
                 .to(model.device(), at::kLong);
  at::Tensor mask = input.attention_mask.defined()
                        ? (input.attention_mask.dim() == 1 ? input.attention_mask.unsqueeze(0)
                                                           : input.attention_mask)
                              .to(model.device(), at::kLong)
                        : at::ones_like(ids);
  if (ids.size(1) + options.max_new_tokens > model.max_positions()) {
    throw Error("generate: prompt of " + std::to_string(ids.size(1)) + " tokens plus " +
                std::to_string(options.max_new_tokens) + " new ones exceeds the model's " +
                std::to_string(model.max_positions()) + " positions");
  }
  const int64_t eos = options.eos_token_id.value_or(model.eos_token_id());
  at::Generator generator = options.seed ? at::make_generator<at::CPUGeneratorImpl>(*options.seed)
                                         : at::detail::getDefaultCPUGenerator();

  ForwardOptions forward_options;
  forward_options.hooks = options.hooks;
  auto finished =
      at::zeros({ids.size(0)}, at::TensorOptions().dtype(at::kBool).device(ids.device()));
  at::NoGradGuard no_grad;
  KvCache cache;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    // Cached: the prompt once, then each new token alone against the held keys and values.
    ForwardOutput out;
    if (!options.use_cache) {
      out = model.forward(ForwardInput{ids, {}, mask, {}}, forward_options);
    } else if (step == 0) {
      out = model.forward_cached(ForwardInput{ids, {}, mask, {}}, forward_options, cache);
    } else {
      out = model.forward_cached(ForwardInput{ids.narrow(1, -1, 1), {}, mask.narrow(1, -1, 1), {}},
                                 forward_options, cache);
    }
    // The prediction after each row's last real token: with right padding that is not the last
    // column on the first step (later steps end with the token just appended).
    const at::Tensor last =
        step == 0 || !options.use_cache
            ? last_real_position(mask, out.logits.size(1))
            : at::full({ids.size(0)}, out.logits.size(1) - 1,
                       at::TensorOptions().dtype(at::kLong).device(ids.device()));
    const auto rows = at::arange(ids.size(0), last.options());
    auto next = pick_next(out.logits.index({rows, last}), options, generator);  // [batch]
    if (eos >= 0) {
      next = next.masked_fill(finished, eos);
      finished = finished.logical_or(next.eq(eos));
    }
    ids = at::cat({ids, next.unsqueeze(1)}, 1);
    mask = at::cat({mask, at::ones_like(next).unsqueeze(1)}, 1);
    if (eos >= 0 && finished.all().item<bool>()) break;
  }
  return ids;
}

}  // namespace llmscope
