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
