// SentencePiece through the library: the Llama-2-style golden (byte fallback, split digits, the
// dummy prefix, BOS from tokenizer_config.json), special tokens, token texts and broken files.
// (A SentencePiece-converted tokenizer.json beside tokenizer.model: bpe_json_pipeline_test.)
#include "llmscope/tokenizer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "tokenizer_golden.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::error_of;
using ::testing::HasSubstr;
using testing::write_text_file;

fs::path sp_dir() { return testing::golden_path("tokenizers/sentencepiece"); }

class SentencePieceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = Tokenizer::load(sp_dir()); }
  static void TearDownTestSuite() { tok_.reset(); }
  static std::unique_ptr<Tokenizer> tok_;
};
std::unique_ptr<Tokenizer> SentencePieceTest::tok_;

TEST_F(SentencePieceTest, MatchesEveryGoldenCase) {
  testing::expect_golden_cases(*tok_, "tokenizers/sentencepiece_golden.json", 501, {}, true);
}

TEST_F(SentencePieceTest, SpecialTokensAndTokenTexts) {
  EXPECT_EQ(tok_->kind(), "sentencepiece");
  EXPECT_EQ(tok_->vocab_size(), 4000);
  EXPECT_EQ(tok_->special_token_id("<s>"), 1);
  EXPECT_EQ(tok_->special_token_id("</s>"), 2);
  EXPECT_TRUE(tok_->is_special(1));
  EXPECT_FALSE(tok_->is_special(436));
  EncodeOptions bare;
  bare.add_special_tokens = false;
  const auto hello = tok_->encode("Hello world", bare);
  EXPECT_EQ(hello, (std::vector<int64_t>{436, 307, 3927, 889}));
  // "▁" shows as a space; the pieces spell the text with its dummy prefix.
  std::string spelled;
  for (const int64_t id : hello) spelled += tok_->token_text(id);
  EXPECT_EQ(spelled, " Hello world");
  // "<s>" in the text is text unless asked; asked, it is the BOS.
  const auto as_text = tok_->encode("a<s>b", bare);
  EXPECT_EQ(std::count(as_text.begin(), as_text.end(), 1), 0);
  bare.allow_special = true;
  const auto split = tok_->encode("a<s>b", bare);
  EXPECT_EQ(std::count(split.begin(), split.end(), 1), 1);
  EXPECT_EQ(tok_->decode({1, 436, 307, 3927}), "<s>Hello");
  // A character outside the vocabulary goes through byte pieces; each shows as its byte.
  const auto snow = tok_->encode("\xE2\x98\x83", EncodeOptions{false, false});
  ASSERT_GE(snow.size(), 3u);
  EXPECT_EQ(tok_->decode(snow), "\xE2\x98\x83");
  EXPECT_EQ(tok_->token_text(snow.back()), "\xEF\xBF\xBD");
  EXPECT_THAT(error_of([&] { tok_->decode({4000}); }), HasSubstr("out of range"));
}

TEST(SentencePieceFolderTest, ConfigSaysBosAndEos) {
  const fs::path dir = testing::scratch_dir("eos");
  fs::copy_file(sp_dir() / "tokenizer.model", dir / "tokenizer.model");
  write_text_file(dir / "tokenizer_config.json",
                  R"({"add_bos_token": false, "add_eos_token": true})");
  EXPECT_EQ(Tokenizer::load(dir)->encode("Hello world"),
            (std::vector<int64_t>{436, 307, 3927, 889, 2}));
}

TEST(SentencePieceFolderTest, BrokenFilesNameThemselves) {
  const fs::path dir = testing::scratch_dir("broken");
  write_text_file(dir / "tokenizer.model", "not a protobuf at all");
  std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr((dir / "tokenizer.model").string()));
  EXPECT_THAT(msg, HasSubstr("not a SentencePiece model"));

  fs::copy_file(sp_dir() / "tokenizer.model", dir / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  write_text_file(dir / "tokenizer_config.json", R"({"add_bos_token": "yes"})");
  msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr("tokenizer_config.json"));
  EXPECT_THAT(msg, HasSubstr("add_bos_token"));

  write_text_file(dir / "tokenizer_config.json",
                  R"({"added_tokens_decoder": {"one": {"content": "<s>", "special": true}}})");
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }),
              HasSubstr("added_tokens_decoder[\"one\"]: expected the key to be a token id >= 0"));
  write_text_file(dir / "tokenizer_config.json",
                  R"({"added_tokens_decoder": {"1": {"content": "<bos>", "special": true}}})");
  msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr("added_tokens_decoder[\"1\"]"));
  EXPECT_THAT(msg, HasSubstr("\"<s>\""));

  const fs::path empty = testing::scratch_dir("none");
  msg = error_of([&] { Tokenizer::load(empty); });
  EXPECT_THAT(msg, HasSubstr("tokenizer.json, tokenizer.model, vocab.json + merges.txt, or "
                             "vocab.txt"));
}

}  // namespace
}  // namespace llmscope
