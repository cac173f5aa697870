#include "llmscope/masked_lm.hpp"

#include "llmscope/error.hpp"

namespace llmscope {

std::vector<MaskPrediction> predict_masks(Model& model, const at::Tensor& input_ids,
                                          int64_t mask_token_id, int64_t k,
                                          const std::vector<NamedHook>& hooks) {
  if (model.is_causal()) {
    throw Error("fill-mask: " + model.architecture() +
                " is a causal language model; it has no [MASK] to fill");
  }
  if (k < 1) throw Error("fill-mask: k must be >= 1");
  auto ids = (input_ids.dim() == 1 ? input_ids.unsqueeze(0) : input_ids).to(at::kLong);
  if (ids.dim() != 2 || ids.size(0) != 1)
    throw Error("fill-mask: expected one sequence of token ids");
  auto positions = ids[0].eq(mask_token_id).nonzero().view(-1).to(at::kCPU);
  if (positions.numel() == 0)
    throw Error("fill-mask: the input has no [MASK] token (id " + std::to_string(mask_token_id) +
                ")");
  ForwardOptions options;
  options.hooks = hooks;
  at::NoGradGuard no_grad;
  auto logits = model.forward(ForwardInput{ids, {}, {}, {}}, options).logits[0];  // [pos, vocab]
  std::vector<MaskPrediction> out;
  for (int64_t i = 0; i < positions.numel(); ++i) {
    const int64_t position = positions[i].item<int64_t>();
    auto probabilities = logits[position].to(at::kFloat).softmax(-1);
    auto [values, indices] = probabilities.topk(std::min<int64_t>(k, probabilities.size(0)));
    values = values.to(at::kCPU, at::kDouble);
    indices = indices.to(at::kCPU);
    MaskPrediction prediction;
    prediction.position = position;
    for (int64_t j = 0; j < values.numel(); ++j) {
      prediction.ids.push_back(indices[j].item<int64_t>());
      prediction.probabilities.push_back(values[j].item<double>());
    }
    out.push_back(std::move(prediction));
  }
  return out;
}

}  // namespace llmscope
