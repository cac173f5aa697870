// Padding is correct by construction: every row of a padded batch, padded on either side,
// gives what its prompt gives alone.
#include "gpt2_fixture.hpp"
#include "llmscope/generation.hpp"

namespace llmscope::testing {
namespace {

struct Batch {
  at::Tensor ids, mask;
};

// Prompts of different lengths, padded with `pad` on the left or right.
Batch pad_batch(const std::vector<at::Tensor>& prompts, bool left, int64_t pad = 0) {
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size(0));
  auto ids = at::full({static_cast<int64_t>(prompts.size()), longest}, pad, at::kLong);
  auto mask = at::zeros_like(ids);
  for (size_t i = 0; i < prompts.size(); ++i) {
    int64_t n = prompts[i].size(0), start = left ? longest - n : 0;
    ids[static_cast<int64_t>(i)].narrow(0, start, n).copy_(prompts[i]);
    mask[static_cast<int64_t>(i)].narrow(0, start, n).fill_(1);
  }
  return {ids, mask};
}

class Padding : public Gpt2Golden, public ::testing::WithParamInterface<bool> {};

TEST_P(Padding, EveryRowMatchesItsPromptAlone) {
  at::NoGradGuard no_grad;
  const bool left = GetParam();
  auto row = ids()[0];
  std::vector<at::Tensor> prompts = {row.narrow(0, 0, 16), row.narrow(0, 3, 7), row.narrow(0, 5, 1),
                                     row.narrow(0, 1, 12)};
  auto batch = pad_batch(prompts, left, /*pad=*/999);
  ForwardOptions options;
  options.output_hidden_states = true;
  options.cache = {"blocks.*.mlp.hook_pre"};
  auto out = model().forward({batch.ids, {}, batch.mask}, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("row " + std::to_string(i));
    auto alone = model().forward({prompts[i].unsqueeze(0)}, options);
    const int64_t n = prompts[i].size(0), start = left ? batch.ids.size(1) - n : 0;
    auto slice = [&](const at::Tensor& t) {
      return t.narrow(0, static_cast<int64_t>(i), 1).narrow(1, start, n);
    };
    EXPECT_TENSOR_CLOSE(slice(out.logits), alone.logits, 1e-5, 1e-5);
    for (size_t h = 0; h < out.hidden_states.size(); ++h) {
      EXPECT_TENSOR_CLOSE(slice(out.hidden_states[h]), alone.hidden_states[h], 1e-5, 1e-5);
    }
    EXPECT_TENSOR_CLOSE(slice(out.cache.get("blocks.2.mlp.hook_pre")),
                        alone.cache.get("blocks.2.mlp.hook_pre"), 1e-5, 1e-5);
  }
}

// Generation appends on the right, so batched prompts are left-padded.
TEST_F(Gpt2Golden, LeftPaddedGenerationMatchesGeneratingEachPromptAlone) {
  auto row = ids()[0];
  std::vector<at::Tensor> prompts = {row.narrow(0, 0, 9), row.narrow(0, 2, 3)};
  auto batch = pad_batch(prompts, true);
  GenerationOptions options;
  options.max_new_tokens = 6;
  auto together = generate(model(), {batch.ids, batch.mask}, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = generate(model(), {prompts[i].unsqueeze(0)}, options);
    auto new_together = together[static_cast<int64_t>(i)].narrow(0, batch.ids.size(1), 6);
    auto new_alone = alone[0].narrow(0, prompts[i].size(0), 6);
    EXPECT_TRUE(new_together.equal(new_alone)) << new_together << " vs " << new_alone;
  }
}

INSTANTIATE_TEST_SUITE_P(BothSides, Padding, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Left" : "Right"; });

}  // namespace
}  // namespace llmscope::testing
