// Hook points and hooks on GPT-2: the snapshot of every name, resolution and suggestions,
// persistent and scoped hooks, input hooks, replacements, caching and fire counts.
#include <gmock/gmock.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gpt2_fixture.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

// A rename of any hook point is public-API breakage: it must show up as a diff of this file.
// Regenerate deliberately with LLMSCOPE_UPDATE_SNAPSHOTS=1.
TEST(Gpt2HookPoints, MatchTheSnapshot) {
  EXPECT_TRUE(matches_hook_snapshot(hook_point_table("gpt2", 3), "hook_points_gpt2_3_layers.txt"));
}

TEST(Gpt2HookPoints, EveryNameResolvesToItsOwnSite) {
  auto table = hook_point_table("gpt2", 2);
  for (const auto& point : table.points()) {
    EXPECT_EQ(table.resolve(point.name), point.id);
    for (const auto& alias : point.aliases) EXPECT_EQ(table.resolve(alias), point.id) << alias;
  }
  EXPECT_EQ(table.resolve("blocks.1.mlp.hook_pre"), table.resolve("transformer.h.1.mlp.c_fc"));
  EXPECT_EQ(table.resolve("blocks.0.hook_resid_pre"), table.resolve("transformer.h.0:input"));
  EXPECT_EQ(table.at(table.resolve("blocks.1.mlp.hook_post")).layer, 1);
  EXPECT_EQ(table.match("blocks.*.mlp.hook_pre").size(), 2u);
}

TEST(Gpt2HookPoints, UnknownNamesSuggestTheClosest) {
  auto table = hook_point_table("gpt2", 12);
  try {
    table.resolve("blocks.3.mlp.hook_pr");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown hook point 'blocks.3.mlp.hook_pr'"));
    EXPECT_THAT(e.what(), HasSubstr("did you mean 'blocks.3.mlp.hook_pre'"));
  }
  EXPECT_THROW(table.resolve("transformer.h.12.mlp"), Error);  // one past the last layer
}

TEST_F(Gpt2Golden, AnAliasAndItsModulePathSeeTheSameActivation) {
  at::NoGradGuard no_grad;
  at::Tensor by_alias, by_path;
  ForwardOptions options;
  options.hooks = {{"blocks.1.mlp.hook_pre",
                    [&](const at::Tensor& a, const HookContext& c) {
                      EXPECT_EQ(c.point.name, "transformer.h.1.mlp.c_fc");
                      EXPECT_EQ(c.name, "blocks.1.mlp.hook_pre");
                      EXPECT_EQ(c.point.layer, 1);
                      by_alias = a.clone();
                      return at::Tensor();
                    }},
                   {"transformer.h.1.mlp.c_fc", [&](const at::Tensor& a, const HookContext&) {
                      by_path = a.clone();
                      return at::Tensor();
                    }}};
  auto out = model().forward({first_row()}, options);
  ASSERT_TRUE(by_alias.defined() && by_path.defined());
  EXPECT_TRUE(by_alias.equal(by_path));
  EXPECT_TENSOR_CLOSE(by_path, expected("hook.transformer.h.1.mlp.c_fc").narrow(0, 0, 1));
  ASSERT_EQ(out.firings.size(), 2u);
  EXPECT_EQ(out.firings[0].calls, 1);
  EXPECT_EQ(out.firings[1].calls, 1);
}

TEST_F(Gpt2Golden, UnknownHookNameFailsBeforeThePassStarts) {
  int calls = 0;
  ForwardOptions options;
  options.hooks = {{"blocks.0.mlp.hook_pre",
                    [&](const at::Tensor&, const HookContext&) {
                      ++calls;
                      return at::Tensor();
                    }},
                   {"blocks.0.mlp.hook_prex",
                    [](const at::Tensor&, const HookContext&) { return at::Tensor(); }}};
  EXPECT_THROW(model().forward({first_row()}, options), Error);
  EXPECT_EQ(calls, 0);
  EXPECT_THROW(model().hook("transformer.h.0.mlpp",
                            [](const at::Tensor&, const HookContext&) { return at::Tensor(); }),
               Error);
}

TEST_F(Gpt2Golden, PersistentHooksStayUntilRemoved) {
  at::NoGradGuard no_grad;
  int calls = 0;
  auto handle =
      model().hook("blocks.*.hook_resid_post", [&](const at::Tensor&, const HookContext&) {
        ++calls;
        return at::Tensor();
      });
  EXPECT_TRUE(handle.active());
  model().forward({first_row()});
  model().forward({first_row()});
  EXPECT_EQ(calls, 6);  // 3 layers x 2 passes
  handle.remove();
  EXPECT_FALSE(handle.active());
  handle.remove();  // harmless
  model().forward({first_row()});
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(model().persistent_hooks().size(), 0u);
}

TEST_F(Gpt2Golden, PersistentHookReplacementMatchesTheAblationGolden) {
  at::NoGradGuard no_grad;
  auto neurons = at::tensor(meta()["ablate"]["neurons"].get<std::vector<int64_t>>());
  auto handle = model().hook(
      meta()["ablate"]["module"].get<std::string>(),
      [&](const at::Tensor& a, const HookContext&) { return a.index_fill(-1, neurons, 0.0); });
  EXPECT_TENSOR_CLOSE(model().forward({first_row()}).logits, expected("ablate.logits"));
  handle.remove();
  EXPECT_TENSOR_CLOSE(model().forward({first_row()}).logits, expected("nomask.logits"));
}

TEST_F(Gpt2Golden, InputHookChangesOnlyThatModulesInput) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"transformer.h.0.ln_1:input", "transformer.h.0:input", "transformer.h.0"};
  auto clean = model().forward({first_row()}, options);
  // Doubling ln_1's input changes ln_1's view but not the block's residual stream input.
  options.hooks = {{"transformer.h.0.ln_1:input",
                    [](const at::Tensor& a, const HookContext&) { return a * 2; }}};
  auto hooked = model().forward({first_row()}, options);
  EXPECT_TRUE(hooked.cache.get("transformer.h.0.ln_1:input")
                  .equal(clean.cache.get("transformer.h.0.ln_1:input") * 2));
  EXPECT_TRUE(hooked.cache.get("blocks.0.hook_resid_pre")
                  .equal(clean.cache.get("blocks.0.hook_resid_pre")));
  EXPECT_FALSE(
      at::allclose(hooked.cache.get("transformer.h.0"), clean.cache.get("transformer.h.0")));
}

TEST_F(Gpt2Golden, ResidualStreamDecomposesIntoAttentionAndMlpOutputs) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"blocks.*.hook_resid_pre", "blocks.*.hook_attn_out", "blocks.*.hook_mlp_out",
                   "blocks.*.hook_resid_mid", "blocks.*.hook_resid_post"};
  auto out = model().forward({first_row()}, options);
  EXPECT_EQ(out.cache.size(), 15u);
  for (int l = 0; l < 3; ++l) {
    auto p = "blocks." + std::to_string(l) + ".";
    EXPECT_TENSOR_CLOSE(out.cache.get(p + "hook_resid_mid"),
                        out.cache.get(p + "hook_resid_pre") + out.cache.get(p + "hook_attn_out"),
                        1e-6, 1e-6);
    EXPECT_TENSOR_CLOSE(out.cache.get(p + "hook_resid_post"),
                        out.cache.get(p + "hook_resid_mid") + out.cache.get(p + "hook_mlp_out"),
                        1e-6, 1e-6);
  }
}

TEST_F(Gpt2Golden, PerHeadSitesRecombineIntoCAttnAndPattern) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"transformer.h.1.attn.c_attn",   "blocks.1.attn.hook_q",
                   "blocks.1.attn.hook_k",          "blocks.1.attn.hook_v",
                   "blocks.1.attn.hook_pattern",    "blocks.1.attn.hook_z",
                   "blocks.1.attn.hook_attn_scores"};
  options.output_attentions = true;
  auto out = model().forward({first_row()}, options);
  auto q = out.cache.get("blocks.1.attn.hook_q");
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{1, 16, 4, 16}));
  auto qkv = at::cat({q.flatten(2), out.cache.get("blocks.1.attn.hook_k").flatten(2),
                      out.cache.get("blocks.1.attn.hook_v").flatten(2)},
                     -1);
  EXPECT_TRUE(qkv.equal(out.cache.get("transformer.h.1.attn.c_attn")));
  EXPECT_TRUE(out.cache.get("blocks.1.attn.hook_pattern").equal(out.attentions[1]));
  EXPECT_TENSOR_CLOSE(out.cache.get("blocks.1.attn.hook_attn_scores").softmax(-1),
                      out.attentions[1], 1e-6, 1e-6);
  auto z = at::matmul(out.attentions[1], out.cache.get("blocks.1.attn.hook_v").transpose(1, 2))
               .transpose(1, 2);
  EXPECT_TENSOR_CLOSE(out.cache.get("blocks.1.attn.hook_z"), z, 1e-6, 1e-6);
  // Unobserved scores are scaled, masked and softmaxed in one pass: the same pattern.
  ForwardOptions plain;
  plain.output_attentions = true;
  EXPECT_TENSOR_CLOSE(model().forward({first_row()}, plain).attentions[1], out.attentions[1], 1e-6,
                      1e-6);
}

TEST_F(Gpt2Golden, FinalHiddenStateIsLnFOfTheLastBlock) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.output_hidden_states = true;
  options.cache = {"transformer.ln_f", "blocks.*.hook_resid_post"};
  auto out = model().forward({first_row()}, options);
  EXPECT_TRUE(out.hidden_states.back().equal(out.cache.get("ln_final.hook_normalized")));
  for (int l = 0; l < 2; ++l) {
    EXPECT_TRUE(out.hidden_states[static_cast<size_t>(l + 1)].equal(
        out.cache.get("blocks." + std::to_string(l) + ".hook_resid_post")));
  }
}

TEST_F(Gpt2Golden, StopAtLayerSkipsTheRestAndReportsSilentHooks) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.stop_at_layer = 1;
  options.cache = {"blocks.0.hook_resid_post"};
  options.hooks = {{"blocks.2.mlp.hook_post",
                    [](const at::Tensor&, const HookContext&) { return at::Tensor(); }}};
  options.output_hidden_states = true;
  auto out = model().forward({first_row()}, options);
  EXPECT_FALSE(out.logits.defined());
  EXPECT_EQ(out.hidden_states.size(), 2u);
  EXPECT_TRUE(out.cache.contains("blocks.0.hook_resid_post"));
  ASSERT_EQ(out.firings.size(), 1u);
  EXPECT_EQ(out.firings[0].calls, 0);
  options.strict_hooks = true;
  try {
    model().forward({first_row()}, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("'blocks.2.mlp.hook_post' never fired (the pass stopped at layer 1)"));
  }
  options.stop_at_layer = 7;
  EXPECT_THROW(model().forward({first_row()}, options), Error);
}

TEST_F(Gpt2Golden, ReplacementOfTheWrongShapeIsAClearError) {
  ForwardOptions options;
  options.hooks = {{"blocks.0.mlp.hook_post",
                    [](const at::Tensor& a, const HookContext&) { return a.narrow(-1, 0, 3); }}};
  try {
    model().forward({first_row()}, options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("hook 'blocks.0.mlp.hook_post' returned a tensor of shape [1, 16, 3]"));
    EXPECT_THAT(e.what(), HasSubstr("expected [1, 16, 256]"));
  }
}

TEST_F(Gpt2Golden, CacheLookupOfAnUncachedSiteNamesIt) {
  ForwardOptions options;
  options.cache = {"blocks.0.hook_resid_post"};
  auto out = model().forward({first_row()}, options);
  EXPECT_THROW(out.cache.get("blocks.1.hook_resid_post"), Error);
  EXPECT_THROW(model().forward({first_row()}, ForwardOptions{{}, {"blocks.*.nothing"}}), Error);
}

}  // namespace
}  // namespace llmscope::testing
