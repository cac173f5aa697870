// Today's families at the shapes of real checkpoints (their config.json with two layers and a
// small vocabulary), built by random_model without any weights, so size-dependent paths (head_dim
// from the config, GQA at real ratios, partial rotary, rope scaling, tied heads) run in CI: a
// pass, a hook, and 8 greedy tokens, cached and uncached alike.
#include <gmock/gmock.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/model.hpp"

namespace llmscope::testing {
namespace {

struct RealShape {
  const char* name;
  const char* config;  // the hub config, with num_hidden_layers 2 and vocab_size 1000
  int64_t kv_heads, head_dim;
};

const RealShape kShapes[] = {
    {"Llama-3.2-1B", R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32,
      "num_key_value_heads": 8, "head_dim": 64, "num_hidden_layers": 2, "vocab_size": 1000,
      "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
      "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
      "tie_word_embeddings": true, "hidden_act": "silu", "attention_bias": false,
      "mlp_bias": false, "bos_token_id": 128000, "eos_token_id": [1, 2, 3]})",
     8, 64},
    {"Qwen2.5-0.5B", R"({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
      "hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14,
      "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
      "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
      "tie_word_embeddings": true, "hidden_act": "silu", "use_sliding_window": false,
      "sliding_window": 32768, "torch_dtype": "bfloat16"})",
     2, 64},
    {"pythia-410m", R"({"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
      "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
      "num_hidden_layers": 2, "vocab_size": 1000, "max_position_embeddings": 2048,
      "layer_norm_eps": 1e-05, "rotary_pct": 0.25, "rotary_emb_base": 10000,
      "use_parallel_residual": true, "tie_word_embeddings": false, "hidden_act": "gelu",
      "eos_token_id": 0})",
     16, 64},
};

std::filesystem::path config_file(const RealShape& shape) {
  const auto dir = scratch_dir(std::string("real-shape-") + shape.name);
  std::ofstream(dir / "config.json") << shape.config;
  return dir / "config.json";
}

TEST(RealShapes, APassAHookAndGreedyTokensRunAtEachFamilysRealWidth) {
  for (const auto& shape : kShapes) {
    SCOPED_TRACE(shape.name);
    auto model = random_model(config_file(shape), 1);
    const auto config = nlohmann::json::parse(shape.config);
    EXPECT_EQ(model->d_model(), config["hidden_size"].get<int64_t>());
    const auto ids = (at::arange(16, at::kLong).unsqueeze(0) * 61 + 7) % 1000;
    at::NoGradGuard no_grad;
    ForwardOptions options;
    options.cache = {"blocks.1.attn.hook_k", "blocks.1.attn.hook_q", "blocks.1.mlp.hook_post"};
    auto out = model->forward({ids}, options);
    EXPECT_EQ(out.logits.sizes(), (at::IntArrayRef{1, 16, 1000}));
    EXPECT_TRUE(at::isfinite(out.logits).all().item<bool>());
    EXPECT_EQ(out.cache.get("blocks.1.attn.hook_k").sizes(),
              (at::IntArrayRef{1, 16, shape.kv_heads, shape.head_dim}));
    EXPECT_EQ(out.cache.get("blocks.1.attn.hook_q").size(3), shape.head_dim);
    EXPECT_EQ(out.cache.get("blocks.1.mlp.hook_post").size(-1),
              config["intermediate_size"].get<int64_t>());
    // Logits are not all alike: the random weights reach the output.
    EXPECT_GT(out.logits.std().item<double>(), 0.0);

    GenerationOptions greedy;
    greedy.max_new_tokens = 8;
    greedy.eos_token_id = -1;
    auto generated = generate(*model, {ids.narrow(1, 0, 4)}, greedy);  // cached
    EXPECT_EQ(generated.sizes(), (at::IntArrayRef{1, 12}));
    greedy.use_cache = false;
    EXPECT_TRUE(generate(*model, {ids.narrow(1, 0, 4)}, greedy).equal(generated));
  }
}

TEST(RealShapes, TheSameSeedGivesTheSameModelAndAnotherSeedAnother) {
  const auto path = config_file(kShapes[1]);
  const auto ids = at::arange(6, at::kLong).unsqueeze(0);
  at::NoGradGuard no_grad;
  auto a = random_model(path, 5)->forward({ids}).logits;
  auto b = random_model(path, 5)->forward({ids}).logits;
  auto c = random_model(path, 6)->forward({ids}).logits;
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(c));
  // Norm weights start at 1 and biases at 0, as freshly initialised models do.
  for (const auto& [name, tensor] : random_model(path, 5)->named_parameters()) {
    if (name.find("norm.weight") != std::string::npos) {
      EXPECT_TRUE(tensor.eq(1).all().item<bool>()) << name;
    }
    if (name.find(".bias") != std::string::npos) {
      EXPECT_TRUE(tensor.eq(0).all().item<bool>()) << name;
    }
  }
}

TEST(RealShapes, ABadConfigIsRejectedAsByLoadModel) {
  const auto dir = scratch_dir("real-shape-bad");
  std::ofstream(dir / "config.json") << R"({"model_type": "mamba", "hidden_size": 8})";
  EXPECT_THAT([&] { random_model(dir / "config.json", 1); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("model_type 'mamba'")));
  EXPECT_THAT([&] { random_model(dir / "missing.json", 1); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("cannot open")));
}

}  // namespace
}  // namespace llmscope::testing
