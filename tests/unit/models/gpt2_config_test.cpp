// GPT-2 config.json parsing: defaults, Hugging Face's attribute aliases, and clear errors.
#include <gmock/gmock.h>

#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/gpt2_config.hpp"

namespace llmscope {
namespace {

using ::testing::HasSubstr;

std::string error_of(const nlohmann::json& json) {
  try {
    Gpt2Config::from_json(json, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Gpt2Config, ReadsTheGoldenConfig) {
  auto c = Gpt2Config::from_file(testing::golden_path("gpt2-tiny/config.json"));
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_inner, 256);  // null in the file: 4 * n_embd
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.n_positions, 64);
  EXPECT_EQ(c.activation_function, "gelu_new");
  EXPECT_DOUBLE_EQ(c.layer_norm_epsilon, 1e-5);
  EXPECT_TRUE(c.scale_attn_weights);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_id, 50256);
}

TEST(Gpt2Config, AcceptsHuggingFaceAttributeAliasesAndDefaults) {
  auto c = Gpt2Config::from_json({{"vocab_size", 10},
                                  {"max_position_embeddings", 8},
                                  {"hidden_size", 12},
                                  {"num_hidden_layers", 2},
                                  {"num_attention_heads", 3},
                                  {"n_inner", 20}},
                                 "config.json");
  EXPECT_EQ(c.n_positions, 8);
  EXPECT_EQ(c.n_embd, 12);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 3);
  EXPECT_EQ(c.head_dim(), 4);
  EXPECT_EQ(c.n_inner, 20);
  EXPECT_EQ(c.activation_function, "gelu_new");
  auto round_trip = Gpt2Config::from_json(c.to_json(), "again");
  EXPECT_EQ(round_trip.to_json(), c.to_json());
}

TEST(Gpt2Config, ErrorsNameTheFileAndTheKey) {
  nlohmann::json base = {
      {"vocab_size", 10}, {"n_positions", 8}, {"n_embd", 12}, {"n_layer", 2}, {"n_head", 3}};
  auto no_vocab = base;
  no_vocab.erase("vocab_size");
  EXPECT_THAT(error_of(no_vocab), HasSubstr("config.json: missing required key 'vocab_size'"));
  auto negative = base;
  negative["n_layer"] = -1;
  EXPECT_THAT(error_of(negative), HasSubstr("'n_layer' must be a positive integer, got -1"));
  auto eps = base;
  eps["layer_norm_epsilon"] = "small";
  EXPECT_THAT(error_of(eps), HasSubstr("'layer_norm_epsilon' must be a number"));
  auto other = base;
  other["model_type"] = "bert";
  EXPECT_THAT(error_of(other), HasSubstr("model_type is 'bert', expected 'gpt2'"));
  EXPECT_THAT(error_of(nlohmann::json::array()), HasSubstr("expected a JSON object"));
  EXPECT_THROW(Gpt2Config::from_file("/nonexistent/config.json"), Error);
}

}  // namespace
}  // namespace llmscope
