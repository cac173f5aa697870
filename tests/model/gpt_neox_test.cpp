// GPT-NeoX specifics beyond the shared parity checks (pythia-tiny): its hook point snapshot, the
// residual wiring in both modes, rotary only on its fraction of each head, tied heads, configs as
// transformers 4.x and 5.x write them, bfloat16 checkpoints, and configuration errors.
#include <gmock/gmock.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(GptNeoxHookPoints, MatchTheSnapshot) {
  EXPECT_TRUE(
      matches_hook_snapshot(hook_point_table("gpt_neox", 2), "hook_points_gpt_neox_2_layers.txt"));
}

nlohmann::json golden_config() {
  std::ifstream in(golden_path("pythia-tiny/config.json"));
  return nlohmann::json::parse(in);
}

// pythia-tiny with `config` instead of its config.json (and `weights` when given).
fs::path variant(const std::string& name, const nlohmann::json& config,
                 const std::map<std::string, at::Tensor>* weights = nullptr) {
  const auto dir = scratch_dir("gpt-neox-" + name);
  if (weights) {
    save_safetensors(dir / "model.safetensors", std::vector<std::pair<std::string, at::Tensor>>(
                                                    weights->begin(), weights->end()));
  } else {
    fs::copy(golden_path("pythia-tiny/model.safetensors"), dir / "model.safetensors");
  }
  std::ofstream(dir / "config.json") << config.dump(1);
  return dir;
}

std::map<std::string, at::Tensor> golden_weights() {
  auto file = SafetensorsFile::open(golden_path("pythia-tiny/model.safetensors"));
  std::map<std::string, at::Tensor> out;
  for (const auto& e : file.entries()) out[e.name] = file.tensor(e.name).clone();
  return out;
}

at::Tensor ids() { return at::arange(12, at::kLong).unsqueeze(0) * 37 % 1000; }

at::Tensor logits(Model& model) {
  at::NoGradGuard no_grad;
  return model.forward({ids()}).logits;
}

std::map<std::string, at::Tensor> cached(Model& model, const std::vector<std::string>& names,
                                         const at::Tensor& input = ids()) {
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = names;
  auto out = model.forward({input}, options);
  std::map<std::string, at::Tensor> values;
  for (const auto& name : names) values[name] = out.cache.get(name);
  return values;
}

const std::vector<std::string> kResidualSites = {
    "blocks.1.hook_resid_pre",  "blocks.1.hook_attn_out",       "blocks.1.hook_mlp_out",
    "blocks.1.hook_resid_post", "blocks.1.ln2.hook_normalized", "blocks.1.hook_resid_mid"};

TEST(GptNeoxModel, ParallelResidualAddsAttentionAndMlpToTheBlockInput) {
  auto model = load_model(golden_path("pythia-tiny"));
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"blocks.1.hook_resid_pre", "blocks.1.hook_attn_out", "blocks.1.hook_mlp_out",
                   "blocks.1.hook_resid_post", "gpt_neox.layers.1.post_attention_layernorm:input"};
  auto out = model->forward({ids()}, options);
  const auto& c = out.cache;
  EXPECT_TRUE(tensors_close(c.get("blocks.1.hook_resid_post"),
                            c.get("blocks.1.hook_resid_pre") + c.get("blocks.1.hook_attn_out") +
                                c.get("blocks.1.hook_mlp_out"),
                            1e-5, 1e-5));
  // The MLP reads the block input, not the attention output.
  EXPECT_TRUE(tensors_close(c.get("gpt_neox.layers.1.post_attention_layernorm:input"),
                            c.get("blocks.1.hook_resid_pre"), 0, 0));
  // No resid_mid in parallel mode: a hook there never fires, and strict_hooks says so.
  ForwardOptions strict;
  strict.strict_hooks = true;
  strict.hooks.push_back(
      {"blocks.0.hook_resid_mid", [](const at::Tensor& t, const HookContext&) { return t; }});
  EXPECT_THAT([&] { model->forward({ids()}, strict); },
              ::testing::ThrowsMessage<Error>(HasSubstr("blocks.0.hook_resid_mid")));
}

TEST(GptNeoxModel, SequentialResidualFeedsTheMlpTheAttentionSum) {
  auto config = golden_config();
  config["use_parallel_residual"] = false;
  auto sequential = load_model(variant("sequential", config));
  auto parallel = load_model(golden_path("pythia-tiny"));
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"blocks.1.hook_resid_pre",  "blocks.1.hook_attn_out",
                   "blocks.1.hook_resid_mid",  "blocks.1.hook_mlp_out",
                   "blocks.1.hook_resid_post", "gpt_neox.layers.1.post_attention_layernorm:input"};
  auto out = sequential->forward({ids()}, options);
  const auto& c = out.cache;
  EXPECT_TRUE(tensors_close(c.get("blocks.1.hook_resid_mid"),
                            c.get("blocks.1.hook_resid_pre") + c.get("blocks.1.hook_attn_out"),
                            1e-5, 1e-5));
  EXPECT_TRUE(tensors_close(c.get("gpt_neox.layers.1.post_attention_layernorm:input"),
                            c.get("blocks.1.hook_resid_mid"), 0, 0));
  EXPECT_TRUE(tensors_close(c.get("blocks.1.hook_resid_post"),
                            c.get("blocks.1.hook_resid_mid") + c.get("blocks.1.hook_mlp_out"), 1e-5,
                            1e-5));
  // The same weights wired the other way give other logits (the fixtures' README: by ~2.6).
  EXPECT_GT((out.logits - logits(*parallel)).abs().max().item<double>(), 0.1);
}

TEST(GptNeoxModel, RotaryTouchesOnlyItsFractionOfEachHead) {
  auto model = load_model(golden_path("pythia-tiny"));  // head size 16, rotary_pct 0.25: 4 dims
  auto c = cached(*model, {"blocks.0.attn.hook_q", "blocks.0.attn.hook_rot_q",
                           "blocks.0.attn.hook_k", "blocks.0.attn.hook_rot_k"});
  for (const char* which : {"q", "k"}) {
    const auto before = c.at(std::string("blocks.0.attn.hook_") + which);
    const auto after = c.at(std::string("blocks.0.attn.hook_rot_") + which);
    ASSERT_EQ(before.sizes(), after.sizes());
    EXPECT_TRUE(tensors_close(after.narrow(-1, 4, 12), before.narrow(-1, 4, 12), 0, 0)) << which;
    // Position 0 is not rotated (angle 0); later positions are.
    EXPECT_TRUE(tensors_close(after.select(1, 0), before.select(1, 0), 1e-6, 1e-6)) << which;
    EXPECT_GT((after.narrow(-1, 0, 4) - before.narrow(-1, 0, 4)).abs().max().item<double>(), 1e-3)
        << which;
    // A rotation keeps the norm of each (i, i + 2) pair.
    auto pair_norm = [](const at::Tensor& t) {
      return t.narrow(-1, 0, 2).pow(2) + t.narrow(-1, 2, 2).pow(2);
    };
    EXPECT_TRUE(tensors_close(pair_norm(after), pair_norm(before), 1e-5, 1e-6)) << which;
  }
}

TEST(GptNeoxModel, TransformersFiveConfigGivesTheSameModel) {
  auto config = golden_config();
  const double theta = config["rotary_emb_base"], pct = config["rotary_pct"];
  for (const char* key : {"rotary_emb_base", "rope_theta", "rotary_pct", "partial_rotary_factor",
                          "rope_scaling", "torch_dtype"}) {
    config.erase(key);
  }
  config["rope_parameters"] = {
      {"rope_type", "default"}, {"rope_theta", theta}, {"partial_rotary_factor", pct}};
  auto five = load_model(variant("transformers5", config));
  auto four = load_model(golden_path("pythia-tiny"));
  EXPECT_TRUE(tensors_close(logits(*five), logits(*four), 0, 0));
  // A different fraction really changes the model (so the key is read).
  config["rope_parameters"]["partial_rotary_factor"] = 1.0;
  auto full = load_model(variant("full-rotary", config));
  EXPECT_GT((logits(*full) - logits(*four)).abs().max().item<double>(), 0.01);
}

TEST(GptNeoxModel, LinearRopeScalingDividesThePositions) {
  auto config = golden_config();
  config["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  auto scaled = load_model(variant("linear-rope", config));
  auto plain = load_model(golden_path("pythia-tiny"));
  // One token everywhere: layer 0's q is then the same at every position (no position
  // embeddings), and position 2p scaled by 2 must be rotated as position p unscaled.
  const auto same = at::full({1, 12}, 5, at::kLong);
  auto rot_scaled =
      cached(*scaled, {"blocks.0.attn.hook_rot_q"}, same).at("blocks.0.attn.hook_rot_q");
  auto rot_plain =
      cached(*plain, {"blocks.0.attn.hook_rot_q"}, same).at("blocks.0.attn.hook_rot_q");
  for (int64_t p = 0; p < 6; ++p) {
    EXPECT_TRUE(tensors_close(rot_scaled.select(1, 2 * p), rot_plain.select(1, p), 1e-5, 1e-5))
        << "position " << p;
  }
  EXPECT_GT((logits(*scaled) - logits(*plain)).abs().max().item<double>(), 1e-3);
  config["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_THAT([&] { load_model(variant("dynamic-rope", config)); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("rope scaling of type 'dynamic' is not supported")));
}

TEST(GptNeoxModel, TiedEmbeddingsNeedNoEmbedOut) {
  auto weights = golden_weights();
  weights.erase("embed_out.weight");
  auto config = golden_config();
  config["tie_word_embeddings"] = true;
  auto tied = load_model(variant("tied", config, &weights));
  at::NoGradGuard no_grad;
  ForwardOptions options;
  options.cache = {"gpt_neox.final_layer_norm"};
  auto out = tied->forward({ids()}, options);
  auto expected = at::matmul(out.cache.get("gpt_neox.final_layer_norm"),
                             weights["gpt_neox.embed_in.weight"].t());
  EXPECT_TRUE(tensors_close(out.logits, expected, 1e-5, 1e-5));
  for (const auto& [name, tensor] : tied->named_parameters()) EXPECT_NE(name, "embed_out.weight");
  // Untied, a missing head is an error that names it.
  config["tie_word_embeddings"] = false;
  EXPECT_THAT([&] { load_model(variant("untied-missing", config, &weights)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("embed_out.weight")));
}

TEST(GptNeoxModel, BfloatSixteenCheckpointsLoadAsFloat32OrBfloat16) {
  auto weights = golden_weights();
  for (auto& [name, t] : weights) t = t.to(at::kBFloat16);
  auto bf16_dir = variant("bf16", golden_config(), &weights);
  for (auto& [name, t] : weights) t = t.to(at::kFloat);
  auto rounded = load_model(variant("bf16-rounded", golden_config(), &weights));
  auto as_f32 = load_model(bf16_dir);
  // Loading bf16 into float32 is exact: the same as the rounded weights stored in float32.
  EXPECT_TRUE(tensors_close(logits(*as_f32), logits(*rounded), 0, 0));
  LoadOptions bf16;
  bf16.dtype = at::kBFloat16;
  auto as_bf16 = load_model(bf16_dir, bf16);
  EXPECT_EQ(as_bf16->dtype(), at::kBFloat16);
  auto l = logits(*as_bf16);
  EXPECT_EQ(l.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(tensors_close(l.to(at::kFloat), logits(*rounded), 0.05, 0.1));
}

TEST(GptNeoxConfig, ErrorsNameTheKey) {
  auto config = golden_config();
  config["num_attention_heads"] = 5;
  EXPECT_THAT([&] { load_model(variant("bad-heads", config)); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("hidden_size (64) must be divisible by num_attention_heads (5)")));
  config = golden_config();
  config["rotary_pct"] = 0.01;
  config.erase("partial_rotary_factor");
  EXPECT_THAT([&] { load_model(variant("bad-rotary", config)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("rotary dimensions")));
  config = golden_config();
  config["use_parallel_residual"] = "yes";
  EXPECT_THAT([&] { load_model(variant("bad-flag", config)); },
              ::testing::ThrowsMessage<Error>(HasSubstr("use_parallel_residual must be true")));
}

}  // namespace
}  // namespace llmscope::testing
