// The built-in model (models/brown-gpt2, trained by `llmscope train`): it loads with its
// tokenizer, its weights are the ones its card describes, and on the card's validation slice
// it still beats the bigram baseline the card reports.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "llmscope/corpus.hpp"
#include "llmscope/error.hpp"
#include "llmscope/sha256.hpp"
#include "llmscope/training.hpp"

namespace llmscope {
namespace {

const std::filesystem::path kModel =
    std::filesystem::path(LLMSCOPE_SOURCE_DIR) / "models" / "brown-gpt2";

nlohmann::json summary() {
  std::ifstream in(kModel / "training_summary.json");
  return nlohmann::json::parse(in);
}

TEST(BuiltinModel, LoadsWithItsTokenizer) {
  auto model = load_model(kModel);
  EXPECT_EQ(model->architecture(), "gpt2");
  ASSERT_NE(model->tokenizer(), nullptr);
  EXPECT_EQ(model->tokenizer()->vocab_size(), model->vocab_size());
  EXPECT_GE(model->tokenizer()->special_token_id("<|endoftext|>"), 0);
}

TEST(BuiltinModel, WeightsMatchTheCard) {
  const std::string hash = sha256_file(kModel / "model.safetensors");
  EXPECT_EQ(hash, summary()["weights_sha256"].get<std::string>());
  std::ifstream card_in(kModel / "README.md");
  const std::string card((std::istreambuf_iterator<char>(card_in)),
                         std::istreambuf_iterator<char>());
  EXPECT_NE(card.find(hash), std::string::npos) << "README.md does not state the weights' sha256";
}

TEST(BuiltinModel, BeatsTheBigramBaselineOnTheValidationSlice) {
  std::filesystem::path corpus_dir;
  try {
    corpus_dir = default_corpus_dir();
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  const auto facts = summary();
  auto model = load_model(kModel);
  const auto texts =
      brown_text_split(load_brown(corpus_dir), facts["validation_every"].get<int64_t>());
  EXPECT_EQ(texts.sha256(), facts["corpus_sha256"].get<std::string>())
      << "the corpus text differs from the one the model was trained on";
  const auto eos = model->tokenizer()->special_token_id("<|endoftext|>");
  const auto ids = encode_documents(*model->tokenizer(), texts.validation, eos);
  const double loss = evaluate_loss(*model, ids, facts["context"].get<int64_t>(),
                                    facts["eval_tokens"].get<int64_t>());
  EXPECT_NEAR(loss, facts["validation_loss"].get<double>(), 1e-3);
  EXPECT_LT(loss, facts["bigram_loss"].get<double>() - 0.15)
      << "no clear margin over the bigram baseline";
}

}  // namespace
}  // namespace llmscope
