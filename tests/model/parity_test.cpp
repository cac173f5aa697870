// Every architecture against Hugging Face transformers (tests/golden/<model>), fp32, to 1e-4:
// the same checks for each fixture model.
#include <gmock/gmock.h>
#include <spdlog/spdlog.h>

#include "gpt2_fixture.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"

#include <algorithm>
#include <map>

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

// The fixture of gpt2_fixture.hpp, for any golden model folder.
class Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto& slot = models()[GetParam()];
    if (!slot.model) {
      slot.model = load_model(golden_path(GetParam()));
      slot.expected = std::make_unique<SafetensorsFile>(
          SafetensorsFile::open(golden_path(GetParam() + "/expected.safetensors")));
      std::ifstream in(golden_path(GetParam() + "/meta.json"));
      slot.meta = nlohmann::json::parse(in);
    }
    slot_ = &slot;
  }
  void TearDown() override { model().clear_hooks(); }
  Model& model() { return *slot_->model; }
  at::Tensor expected(const std::string& name) { return slot_->expected->tensor(name); }
  const nlohmann::json& meta() { return slot_->meta; }
  at::Tensor ids() { return expected("input_ids"); }
  at::Tensor mask() { return expected("attention_mask"); }
  at::Tensor first_row() { return ids().narrow(0, 0, 1); }
  at::Tensor valid_positions(int64_t trailing_dims) {
    auto m = mask().ne(0);
    for (int64_t i = 0; i < trailing_dims; ++i) m = m.unsqueeze(-1);
    return m;
  }
  bool causal() { return meta().value("causal", true); }

 private:
  struct Slot {
    std::unique_ptr<Model> model;
    std::unique_ptr<SafetensorsFile> expected;
    nlohmann::json meta;
  };
  static std::map<std::string, Slot>& models() {
    static std::map<std::string, Slot> cache;
    return cache;
  }
  Slot* slot_ = nullptr;
};

TEST_P(Parity, LogitsOfAMaskedBatchMatchWhereTheMaskIsSet) {
  at::NoGradGuard no_grad;
  auto out = model().forward({ids(), {}, mask()});
  EXPECT_TENSOR_CLOSE(out.logits, expected("logits"), 1e-4, 1e-4,
                      valid_positions(1).expand_as(out.logits));
}

TEST_P(Parity, LogitsWithoutMask) {
  at::NoGradGuard no_grad;
  auto out = model().forward({first_row()});
  EXPECT_TENSOR_CLOSE(out.logits, expected("nomask.logits"));
}

TEST_P(Parity, HiddenStatesFollowHuggingFaceIndexing) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.output_hidden_states = true;
  auto out = model().forward({ids(), {}, mask()}, options);
  ASSERT_EQ(out.hidden_states.size(), static_cast<size_t>(model().n_layer() + 1));
  for (size_t i = 0; i < out.hidden_states.size(); ++i) {
    SCOPED_TRACE("hidden_states." + std::to_string(i));
    const auto& h = out.hidden_states[i];
    EXPECT_TENSOR_CLOSE(h, expected("hidden_states." + std::to_string(i)), 1e-4, 1e-4,
                        valid_positions(1).expand_as(h));
  }
}

// The logit lens's building block: the output head on residual-stream vectors. The last block's
// output through the whole head, and the last hidden state (after a causal LM's final norm,
// which full_head = false leaves out) through the unembedding alone, give Hugging Face's logits.
TEST_P(Parity, UnembedGivesTheLogitsFromTheResidualStream) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.output_hidden_states = true;
  const std::string last = "blocks." + std::to_string(model().n_layer() - 1) + ".hook_resid_post";
  options.cache = {last};
  auto out = model().forward({ids(), {}, mask()}, options);
  const auto valid = valid_positions(1).expand_as(out.logits);
  // A causal LM's last block output comes before its final norm; BERT's last hidden state is the
  // encoder's output (its blocks end in their own LayerNorm, after hook_resid_post).
  const at::Tensor before_head = causal() ? out.cache.get(last) : out.hidden_states.back();
  EXPECT_TENSOR_CLOSE(model().unembed(before_head, true), expected("logits"), 1e-4, 1e-4, valid);
  if (causal()) {
    EXPECT_TENSOR_CLOSE(model().unembed(out.hidden_states.back(), false), expected("logits"), 1e-4,
                        1e-4, valid);
  } else {
    // BERT's decoder alone: the tied word embeddings and the prediction bias.
    at::Tensor words, bias;
    for (const auto& [name, t] : model().named_parameters()) {
      if (name == "bert.embeddings.word_embeddings.weight") words = t;
      if (name == "cls.predictions.bias") bias = t;
    }
    ASSERT_TRUE(words.defined() && bias.defined());
    const auto h = out.hidden_states.back();
    EXPECT_TENSOR_CLOSE(model().unembed(h, false), at::linear(h, words, bias), 1e-6, 1e-6);
  }
  EXPECT_TRUE(throws_message(
      [&] {
        model().unembed(at::zeros({2, 3}), true);
      },
      "unembed: expected residual-stream vectors [..., " + std::to_string(model().d_model()) +
          "] of floats, got [2, 3] Float"));
}

TEST_P(Parity, AttentionPatternsMatchForRealQueries) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.output_attentions = true;
  auto out = model().forward({ids(), {}, mask()}, options);
  ASSERT_EQ(out.attentions.size(), static_cast<size_t>(model().n_layer()));
  for (size_t i = 0; i < out.attentions.size(); ++i) {
    SCOPED_TRACE("attentions." + std::to_string(i));
    const auto& a = out.attentions[i];  // [batch, head, query, key]
    auto real_queries = mask().ne(0).view({a.size(0), 1, a.size(2), 1}).expand_as(a);
    EXPECT_TENSOR_CLOSE(a, expected("attentions." + std::to_string(i)), 1e-4, 1e-4, real_queries);
  }
}

TEST_P(Parity, EveryHookedModuleOutputMatches) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  for (const auto& name : meta()["hooks"]) options.cache.push_back(name.get<std::string>());
  ASSERT_FALSE(options.cache.empty());
  auto out = model().forward({ids(), {}, mask()}, options);
  for (const auto& name : options.cache) {
    SCOPED_TRACE(name);
    const auto& got = out.cache.get(name);
    EXPECT_TENSOR_CLOSE(got, expected("hook." + name), 1e-4, 1e-4,
                        valid_positions(1).expand_as(got));
  }
}

TEST_P(Parity, GradientWithRespectToInputsEmbeds) {
  const int layer = meta()["grad"]["layer"], dim = meta()["grad"]["dim"];
  auto embeds = expected("grad.inputs_embeds.input").clone().requires_grad_(true);
  EXPECT_TENSOR_CLOSE(model().embed_tokens(first_row()), embeds.detach());
  ForwardOptions options;
  options.output_hidden_states = true;
  auto out = model().forward({{}, embeds}, options);
  out.hidden_states[static_cast<size_t>(layer)].select(0, 0).select(-1, dim).mean().backward();
  ASSERT_TRUE(embeds.grad().defined());
  EXPECT_TENSOR_CLOSE(embeds.grad(), expected("grad.inputs_embeds"));
}

TEST_P(Parity, ZeroingNeuronsMatchesTheAblationGolden) {
  at::NoGradGuard no_grad;
  const auto& ablate = meta()["ablate"];
  auto neurons = at::tensor(ablate["neurons"].get<std::vector<int64_t>>());
  ForwardOptions options;
  options.hooks.push_back(
      {ablate["module"].get<std::string>(), [&](const at::Tensor& act, const HookContext&) {
         return act.index_fill(-1, neurons, 0.0);
       }});
  auto out = model().forward({first_row()}, options);
  EXPECT_TENSOR_CLOSE(out.logits, expected("ablate.logits"));
  EXPECT_FALSE(at::allclose(out.logits, expected("nomask.logits")));
  ASSERT_EQ(out.firings.size(), 1u);
  EXPECT_EQ(out.firings[0].calls, 1);
}

TEST_P(Parity, MedianReplacementMatchesTheGolden) {
  at::NoGradGuard no_grad;
  const auto& median = meta()["median"];
  ForwardOptions options;
  options.hooks.push_back(
      {median["module"].get<std::string>(), [&](const at::Tensor& act, const HookContext&) {
         auto out = act.clone();
         auto last = out.select(0, 0).select(0, -1);
         int64_t k = std::max<int64_t>(1, static_cast<int64_t>(0.1 * last.numel()));
         auto top = std::get<1>(last.topk(k));
         last.index_fill_(0, top, last.median().item<double>());
         return out;
       }});
  auto out = model().forward({first_row()}, options);
  EXPECT_TENSOR_CLOSE(out.logits, expected("median.logits"));
}

TEST_P(Parity, GreedyGenerationGivesTheSameIds) {
  if (!causal()) GTEST_SKIP() << "not a causal language model";
  auto want = expected("generate.ids");
  for (const bool cached : {true, false}) {
    SCOPED_TRACE(cached ? "with the key/value cache" : "recomputing every step");
    GenerationOptions options;
    options.max_new_tokens = 12;
    options.use_cache = cached;
    auto got = generate(model(), {expected("generate.prompt")}, options);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(got.equal(want)) << got << "\nexpected\n" << want;
  }
}

// The masked batch (row 1 right-padded) in cached passes: all but the last four positions, then
// one at a time twice, then the last two together; each pass's logits match the full pass at
// the real positions (grouped-query attention, rotary and GPT-Neo's local window included).
TEST_P(Parity, CachedPassesMatchTheFullPass) {
  if (!causal()) GTEST_SKIP() << "not a causal language model";
  at::NoGradGuard no_grad;
  const auto full = model().forward({ids(), {}, mask()}).logits;
  const int64_t pos = ids().size(1);
  KvCache cache;
  for (int64_t start = 0, step = pos - 4; start < pos; start += step, step = 1) {
    if (start == pos - 2) step = 2;
    SCOPED_TRACE("positions " + std::to_string(start) + ".." + std::to_string(start + step - 1));
    const auto out = model().forward_cached(
        {ids().narrow(1, start, step), {}, mask().narrow(1, start, step)}, {}, cache);
    EXPECT_EQ(cache.length(), start + step);
    const auto real = mask().narrow(1, start, step).ne(0).unsqueeze(-1).expand_as(out.logits);
    EXPECT_TENSOR_CLOSE(out.logits, full.narrow(1, start, step), 1e-4, 1e-4, real);
  }
}

TEST_P(Parity, CachedPassesRefuseWhatTheCacheCannotHold) {
  KvCache cache;
  if (!causal()) {
    EXPECT_THAT(error_of([&] { model().forward_cached({first_row()}, {}, cache); }),
                HasSubstr("masked language model"));
    return;
  }
  at::NoGradGuard no_grad;
  ForwardOptions stop;
  stop.stop_at_layer = 1;
  EXPECT_THAT(error_of([&] { model().forward_cached({first_row()}, stop, cache); }),
              HasSubstr("stop_at_layer"));
  EXPECT_EQ(cache.length(), 0);
  model().forward_cached({first_row().narrow(1, 0, 4)}, {}, cache);
  EXPECT_THAT(error_of([&] { model().forward_cached({ids().narrow(1, 4, 1)}, {}, cache); }),
              HasSubstr("the cache holds 1 rows but the input has 2"));
  // A hook that fails mid-pass leaves the cache as it was.
  ForwardOptions failing;
  failing.hooks = {{"blocks.0.hook_resid_post", [](const at::Tensor&, const HookContext&) {
                      throw Error("stop here");
                      return at::Tensor();
                    }}};
  EXPECT_THROW(model().forward_cached({first_row().narrow(1, 4, 1)}, failing, cache), Error);
  EXPECT_EQ(cache.length(), 4);
  const auto next = model().forward_cached({first_row().narrow(1, 4, 1)}, {}, cache).logits;
  EXPECT_TENSOR_CLOSE(next.select(1, 0),
                      model().forward({first_row().narrow(1, 0, 5)}).logits.select(1, 4));
}

TEST_P(Parity, InputIdsOutOfRangeAreRejected) {
  auto bad = first_row().clone();
  bad[0][3] = model().vocab_size();
  try {
    model().forward({bad});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("token id 1000 is out of range (vocab_size is 1000)"));
  }
  EXPECT_THROW(model().forward({at::full({1, 2}, -1, at::kLong)}), Error);
}

TEST_P(Parity, BadInputShapesAreRejected) {
  EXPECT_THROW(model().forward({{}, at::zeros({1, 4, 7})}), Error);
  EXPECT_THROW(model().forward({first_row(), {}, at::ones({1, 3})}), Error);
  EXPECT_THROW(model().forward({at::zeros({1, 4})}), Error);  // float ids
  EXPECT_THROW(model().forward({}), Error);
  try {
    model().forward({at::zeros({1, model().max_positions() + 1}, at::kLong)});
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("exceeds n_positions (" + std::to_string(model().max_positions()) + ")"));
  }
}

TEST_F(Gpt2Golden, ReportsArchitectureAndParameterCount) {
  EXPECT_EQ(model().architecture(), "gpt2");
  EXPECT_EQ(model().n_layer(), 3);
  EXPECT_EQ(model().d_model(), 64);
  // wte + wpe + 3 blocks + ln_f; lm_head is tied.
  const int64_t d = 64, block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) +
                                (d * 4 * d + 4 * d) + (4 * d * d + d);
  EXPECT_EQ(model().num_parameters(), 1000 * d + 64 * d + 3 * block + 2 * d);
}

INSTANTIATE_TEST_SUITE_P(Golden, Parity,
                         ::testing::Values("gpt2-tiny", "gpt-neo-tiny", "pythia-tiny", "llama-tiny",
                                           "qwen2-tiny", "bert-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

}  // namespace
}  // namespace llmscope::testing
