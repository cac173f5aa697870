// The Llama graph beyond the shared parity checks (llama-tiny, qwen2-tiny): its hook point
// snapshot, grouped-query attention against the same model with k/v repeated per query head, an
// explicit head_dim, Mistral's sliding window, configs as transformers 5.x writes them, and
// configuration errors.
#include <gmock/gmock.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using Weights = std::map<std::string, at::Tensor>;

TEST(LlamaHookPoints, MatchTheSnapshot) {
  EXPECT_TRUE(
      matches_hook_snapshot(hook_point_table("llama", 2), "hook_points_llama_2_layers.txt"));
  // Mistral and Qwen2 are the same graph with the same sites.
  for (const char* type : {"mistral", "qwen2"}) {
    EXPECT_EQ(hook_point_table(type, 2).size(), hook_point_table("llama", 2).size()) << type;
  }
}

nlohmann::json config_of(const std::string& fixture) {
  std::ifstream in(golden_path(fixture + "/config.json"));
  return nlohmann::json::parse(in);
}

Weights weights_of(const std::string& fixture) {
  auto file = SafetensorsFile::open(golden_path(fixture + "/model.safetensors"));
  Weights out;
  for (const auto& e : file.entries()) out[e.name] = file.tensor(e.name).to(at::kFloat).clone();
  return out;
}

fs::path write_model(const std::string& name, const nlohmann::json& config,
                     const Weights& weights) {
  const auto dir = scratch_dir("llama-" + name);
  save_safetensors(dir / "model.safetensors",
                   std::vector<std::pair<std::string, at::Tensor>>(weights.begin(), weights.end()));
  std::ofstream(dir / "config.json") << config.dump(1);
  return dir;
}

at::Tensor ids(int64_t n = 12) { return (at::arange(n, at::kLong).unsqueeze(0) * 37 + 3) % 1000; }

at::Tensor logits(Model& model, const at::Tensor& input = ids()) {
  at::NoGradGuard no_grad;
  return model.forward({input}).logits;
}

TEST(LlamaModel, GroupedQueryAttentionEqualsRepeatingKeysAndValuesPerQueryHead) {
  // llama-tiny: 4 query heads, 2 kv heads, head_dim 16; query head h reads kv head h / 2.
  auto config = config_of("llama-tiny");
  auto weights = weights_of("llama-tiny");
  auto gqa = load_model(write_model("gqa", config, weights));
  for (int layer = 0; layer < 2; ++layer) {
    for (const char* proj : {"k_proj", "v_proj"}) {
      const std::string name =
          "model.layers." + std::to_string(layer) + ".self_attn." + proj + ".weight";
      weights[name] = weights[name].view({2, 16, 64}).repeat_interleave(2, 0).reshape({64, 64});
    }
  }
  config["num_key_value_heads"] = 4;
  auto mha = load_model(write_model("mha", config, weights));
  EXPECT_TRUE(tensors_close(logits(*gqa), logits(*mha), 1e-5, 1e-5));

  // hook_k and hook_v keep the kv heads; the pattern has one per query head.
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
                   "blocks.0.attn.hook_rot_k", "blocks.0.attn.hook_pattern"};
  auto out = gqa->forward({ids()}, options);
  EXPECT_EQ(out.cache.get("blocks.0.attn.hook_q").sizes(), (at::IntArrayRef{1, 12, 4, 16}));
  EXPECT_EQ(out.cache.get("blocks.0.attn.hook_k").sizes(), (at::IntArrayRef{1, 12, 2, 16}));
  EXPECT_EQ(out.cache.get("blocks.0.attn.hook_v").sizes(), (at::IntArrayRef{1, 12, 2, 16}));
  EXPECT_EQ(out.cache.get("blocks.0.attn.hook_rot_k").sizes(), (at::IntArrayRef{1, 12, 2, 16}));
  EXPECT_EQ(out.cache.get("blocks.0.attn.hook_pattern").sizes(), (at::IntArrayRef{1, 4, 12, 12}));

  // A hook that returns one k per query head is told why its shape is wrong.
  ForwardOptions wrong;
  wrong.hooks.push_back({"blocks.0.attn.hook_k", [](const at::Tensor& k, const HookContext&) {
                           return k.repeat_interleave(2, 2);
                         }});
  EXPECT_THAT([&] { gqa->forward({ids()}, wrong); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("num_key_value_heads heads under grouped-query attention")));
}

TEST(LlamaModel, AnExplicitHeadDimSizesTheProjections) {
  // 4 heads of 8 (32 wide) in a 64-wide model, 1 kv head: q_proj [32, 64], o_proj [64, 32].
  auto config = config_of("llama-tiny");
  config["head_dim"] = 8;
  config["num_key_value_heads"] = 1;
  auto weights = weights_of("llama-tiny");
  at::manual_seed(7);
  for (int layer = 0; layer < 2; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".self_attn.";
    weights[p + "q_proj.weight"] = at::randn({32, 64}) * 0.08;
    weights[p + "k_proj.weight"] = at::randn({8, 64}) * 0.08;
    weights[p + "v_proj.weight"] = at::randn({8, 64}) * 0.08;
    weights[p + "o_proj.weight"] = at::randn({64, 32}) * 0.08;
  }
  auto model = load_model(write_model("head-dim", config, weights));
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.1.attn.hook_z"};
  auto out = model->forward({ids()}, options);
  EXPECT_EQ(out.cache.get("blocks.1.attn.hook_q").sizes(), (at::IntArrayRef{1, 12, 4, 8}));
  EXPECT_EQ(out.cache.get("blocks.1.attn.hook_k").sizes(), (at::IntArrayRef{1, 12, 1, 8}));
  EXPECT_EQ(out.cache.get("blocks.1.attn.hook_z").sizes(), (at::IntArrayRef{1, 12, 4, 8}));
  EXPECT_TRUE(at::isfinite(out.logits).all().item<bool>());
  // Weights of the wrong width are an error naming the tensor and the config.
  weights["model.layers.0.self_attn.q_proj.weight"] = at::randn({64, 64});
  EXPECT_THAT([&] { load_model(write_model("head-dim-wrong", config, weights)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("model.layers.0.self_attn.q_proj.weight")));
}

TEST(LlamaModel, MistralAttendsWithinItsSlidingWindow) {
  auto config = config_of("llama-tiny");
  config["model_type"] = "mistral";
  config["architectures"] = {"MistralForCausalLM"};
  config["sliding_window"] = 3;
  config.erase("rope_scaling");
  auto model = load_model(write_model("mistral", config, weights_of("llama-tiny")));
  EXPECT_EQ(model->architecture(), "mistral");
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.output_attentions = true;
  auto out = model->forward({ids()}, options);
  auto distance = at::arange(12).unsqueeze(1) - at::arange(12).unsqueeze(0);  // query - key
  auto outside = distance.ge(3).logical_or(distance.lt(0)).view({1, 1, 12, 12});
  EXPECT_EQ(out.attentions[0]
                .masked_select(outside.expand_as(out.attentions[0]))
                .abs()
                .max()
                .item<float>(),
            0.0f);
  // Within the window it is Llama: a window longer than the input changes nothing.
  config["sliding_window"] = 64;
  auto wide = load_model(write_model("mistral-wide", config, weights_of("llama-tiny")));
  config.erase("sliding_window");
  config["model_type"] = "llama";
  config["architectures"] = {"LlamaForCausalLM"};
  auto llama = load_model(write_model("llama-no-scaling", config, weights_of("llama-tiny")));
  EXPECT_TRUE(tensors_close(logits(*wide), logits(*llama), 0, 0));
}

TEST(LlamaModel, TransformersFiveRopeParametersGiveTheSameModel) {
  auto config = config_of("llama-tiny");
  auto rope = config["rope_scaling"];
  rope["rope_theta"] = config["rope_theta"];
  config.erase("rope_scaling");
  config.erase("rope_theta");
  config["rope_parameters"] = rope;
  auto five = load_model(write_model("transformers5", config, weights_of("llama-tiny")));
  auto four = load_model(golden_path("llama-tiny"));
  EXPECT_TRUE(tensors_close(logits(*five), logits(*four), 0, 0));
  // Without the llama3 scaling the model differs (the fixtures' README: by ~0.5).
  config["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", rope["rope_theta"]}};
  auto plain = load_model(write_model("no-llama3", config, weights_of("llama-tiny")));
  EXPECT_GT((logits(*plain) - logits(*four)).abs().max().item<double>(), 0.01);
}

TEST(LlamaModel, LlamaThreeListsOfEndOfTextIdsStopAtTheFirst) {
  auto config = config_of("llama-tiny");
  config["eos_token_id"] = {7, 8, 9};
  auto model = load_model(write_model("eos-list", config, weights_of("llama-tiny")));
  EXPECT_EQ(model->eos_token_id(), 7);
}

TEST(LlamaConfig, ErrorsNameTheKey) {
  auto config = config_of("llama-tiny");
  config["num_key_value_heads"] = 3;
  EXPECT_THAT([&] { load_model(write_model("bad-kv", config, weights_of("llama-tiny"))); },
              ::testing::ThrowsMessage<Error>(HasSubstr(
                  "num_attention_heads (4) must be a multiple of num_key_value_heads (3)")));
  config = config_of("llama-tiny");
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THAT([&] { load_model(write_model("bad-rope", config, weights_of("llama-tiny"))); },
              ::testing::ThrowsMessage<Error>(HasSubstr("rope scaling of type 'yarn'")));
  config = config_of("llama-tiny");
  config["rope_scaling"]["original_max_position_embeddings"] = 0;
  EXPECT_THAT([&] { load_model(write_model("bad-llama3", config, weights_of("llama-tiny"))); },
              ::testing::ThrowsMessage<Error>(HasSubstr("original_max_position_embeddings")));
  // Untied without lm_head: the missing tensor is named.
  config = config_of("llama-tiny");
  auto weights = weights_of("llama-tiny");
  weights.erase("lm_head.weight");
  EXPECT_THAT([&] { load_model(write_model("no-head", config, weights)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("lm_head.weight")));
}

}  // namespace
}  // namespace llmscope::testing
