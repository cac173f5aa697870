// Generation beyond the greedy golden: seeded sampling, top-k/top-p, eos, hooks on every step.
#include <gmock/gmock.h>

#include "gpt2_fixture.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"

namespace llmscope::testing {
namespace {

TEST_F(Gpt2Golden, SamplingWithASeedIsReproducible) {
  GenerationOptions options;
  options.greedy = false;
  options.max_new_tokens = 10;
  options.temperature = 1.5;
  options.seed = 7;
  auto a = generate(model(), {expected("generate.prompt")}, options);
  auto b = generate(model(), {expected("generate.prompt")}, options);
  EXPECT_TRUE(a.equal(b));
  options.seed = 8;
  auto c = generate(model(), {expected("generate.prompt")}, options);
  EXPECT_FALSE(a.equal(c));
  EXPECT_EQ(a.size(1), 13);
}

TEST_F(Gpt2Golden, TopKOfOneIsGreedy) {
  GenerationOptions options;
  options.greedy = false;
  options.top_k = 1;
  options.seed = 3;
  options.max_new_tokens = 12;
  EXPECT_TRUE(
      generate(model(), {expected("generate.prompt")}, options).equal(expected("generate.ids")));
  options.top_k = 0;
  options.top_p = 1e-6;  // only the most likely token survives
  EXPECT_TRUE(
      generate(model(), {expected("generate.prompt")}, options).equal(expected("generate.ids")));
}

TEST_F(Gpt2Golden, StopsAtEos) {
  auto want = expected("generate.ids");
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.eos_token_id = want[0][6].item<int64_t>();  // the 4th generated token
  auto got = generate(model(), {expected("generate.prompt")}, options);
  EXPECT_EQ(got.size(1), 7);
  EXPECT_TRUE(got.equal(want.narrow(1, 0, 7)));
}

TEST_F(Gpt2Golden, HooksRunOnEveryStep) {
  int calls = 0;
  GenerationOptions options;
  options.max_new_tokens = 5;
  options.hooks = {{"blocks.0.mlp.hook_post", [&](const at::Tensor& a, const HookContext&) {
                      ++calls;
                      return at::zeros_like(a);  // an intervention changes what is generated
                    }}};
  auto got = generate(model(), {expected("generate.prompt")}, options);
  EXPECT_EQ(calls, 5);
  EXPECT_FALSE(got.equal(expected("generate.ids").narrow(1, 0, 8)));
}

// Rows of different lengths, padded on either side, continue exactly as each row alone.
TEST_F(Gpt2Golden, PaddedBatchesContinueEachRowAsAlone) {
  const auto prompt = expected("input_ids").narrow(1, 0, 6);
  GenerationOptions options;
  options.max_new_tokens = 5;
  options.eos_token_id = -1;
  const auto long_alone = generate(model(), {prompt.narrow(0, 0, 1)}, options);
  const auto short_alone = generate(model(), {prompt.narrow(0, 1, 1).narrow(1, 0, 4)}, options);
  for (const bool cached : {true, false}) {
    SCOPED_TRACE(cached ? "cached" : "uncached");
    options.use_cache = cached;
    auto ids = prompt.clone();
    auto mask = at::ones_like(ids);
    mask[1].narrow(0, 4, 2).fill_(0);  // row 1: 4 tokens, right-padded
    auto got = generate(model(), {ids, mask}, options);
    EXPECT_TRUE(got[0].equal(long_alone[0]));
    EXPECT_TRUE(got[1].narrow(0, 0, 4).equal(short_alone[0].narrow(0, 0, 4)));
    EXPECT_TRUE(got[1].narrow(0, 6, 5).equal(short_alone[0].narrow(0, 4, 5)));

    ids[1].narrow(0, 2, 4).copy_(prompt[1].narrow(0, 0, 4));  // the same row, left-padded
    mask = at::ones_like(ids);
    mask[1].narrow(0, 0, 2).fill_(0);
    got = generate(model(), {ids, mask}, options);
    EXPECT_TRUE(got[0].equal(long_alone[0]));
    EXPECT_TRUE(got[1].narrow(0, 2, 9).equal(short_alone[0]));
  }
}

TEST_F(Gpt2Golden, CachedHooksSeeOnlyTheNewPositions) {
  std::vector<int64_t> seen;
  GenerationOptions options;
  options.max_new_tokens = 3;
  options.hooks = {{"blocks.0.hook_resid_post", [&](const at::Tensor& a, const HookContext&) {
                      seen.push_back(a.size(1));
                      return a;
                    }}};
  const auto prompt = expected("generate.prompt");
  generate(model(), {prompt}, options);
  EXPECT_EQ(seen, (std::vector<int64_t>{prompt.size(-1), 1, 1}));
  seen.clear();
  options.use_cache = false;
  generate(model(), {prompt}, options);
  EXPECT_EQ(seen,
            (std::vector<int64_t>{prompt.size(-1), prompt.size(-1) + 1, prompt.size(-1) + 2}));
}

TEST_F(Gpt2Golden, BadGenerationOptions) {
  GenerationOptions options;
  options.greedy = false;
  options.temperature = 0;
  EXPECT_THROW(generate(model(), {expected("generate.prompt")}, options), Error);
  options = GenerationOptions{};
  options.max_new_tokens = 100;  // 3 + 100 > 64 positions
  EXPECT_THROW(generate(model(), {expected("generate.prompt")}, options), Error);
}

}  // namespace
}  // namespace llmscope::testing
