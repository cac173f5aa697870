// BERT specifics beyond the shared parity checks: its hook point snapshot, sentence pairs
// (token types), masked-token prediction and the errors for causal-only operations.
#include <gmock/gmock.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/generation.hpp"
#include "llmscope/masked_lm.hpp"
#include "llmscope/model.hpp"
#include "llmscope/safetensors.hpp"

namespace llmscope::testing {
namespace {

using ::testing::HasSubstr;

TEST(BertHookPoints, MatchTheSnapshot) {
  EXPECT_TRUE(matches_hook_snapshot(hook_point_table("bert", 2), "hook_points_bert_2_layers.txt"));
}

class Bert : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = load_model(golden_path("bert-tiny")).release(); }
  static void TearDownTestSuite() { delete model_; }
  static inline Model* model_ = nullptr;
};

TEST_F(Bert, TokenTypesChangeTheOutputAndAreChecked) {
  at::NoGradGuard no_grad;
  auto ids = at::arange(8, at::kLong).unsqueeze(0) + 10;
  auto first = model_->forward({ids}).logits;
  auto zeros = model_->forward({ids, {}, {}, at::zeros({1, 8}, at::kLong)}).logits;
  EXPECT_TRUE(first.equal(zeros));
  auto pair = at::cat({at::zeros({1, 4}, at::kLong), at::ones({1, 4}, at::kLong)}, 1);
  EXPECT_FALSE(at::allclose(model_->forward({ids, {}, {}, pair}).logits, first));
  EXPECT_THAT(
      [&] {
        model_->forward({ids, {}, {}, at::full({1, 8}, 2, at::kLong)});
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("token_type_ids must be in [0, 2)")));
  EXPECT_THAT(
      [&] {
        model_->forward({ids, {}, {}, at::zeros({1, 3}, at::kLong)});
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("token_type_ids must be [1, 8]")));
}

TEST_F(Bert, PredictsMaskedTokensFromTheMlmHead) {
  auto ids = at::tensor({1, 50, 103, 60, 103, 2}, at::kLong);
  auto predictions = predict_masks(*model_, ids, 103, 3);
  ASSERT_EQ(predictions.size(), 2u);
  EXPECT_EQ(predictions[0].position, 2);
  EXPECT_EQ(predictions[1].position, 4);
  at::NoGradGuard no_grad;
  auto logits = model_->forward({ids.unsqueeze(0)}).logits[0][2];
  EXPECT_EQ(predictions[0].ids[0], logits.argmax().item<int64_t>());
  EXPECT_NEAR(predictions[0].probabilities[0], logits.softmax(-1).max().item<double>(), 1e-6);
  EXPECT_GE(predictions[0].probabilities[0], predictions[0].probabilities[1]);
  EXPECT_THAT(
      [&] {
        predict_masks(*model_, at::tensor({1, 2, 3}, at::kLong), 103);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("the input has no [MASK] token (id 103)")));
}

TEST_F(Bert, GenerationIsRefusedWithAHint) {
  EXPECT_THAT(
      [&] {
        generate(*model_, {at::tensor({1, 2}, at::kLong)}, {});
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("bert is a masked language model")));
}

TEST(BertCheckpoint, BareEncoderWithoutTheMlmHeadIsAClearError) {
  auto dir = scratch_dir("bare");
  auto file = SafetensorsFile::open(golden_path("bert-tiny/model.safetensors"));
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& e : file.entries()) {
    if (e.name.rfind("cls.", 0) != 0)
      tensors.emplace_back(e.name.substr(5), file.tensor(e.name));  // hub layout
  }
  save_safetensors(dir / "model.safetensors", tensors);
  std::filesystem::copy_file(golden_path("bert-tiny/config.json"), dir / "config.json");
  EXPECT_THAT([&] { load_model(dir); },
              ::testing::ThrowsMessage<Error>(HasSubstr("has no masked-LM head")));
}

}  // namespace
}  // namespace llmscope::testing
