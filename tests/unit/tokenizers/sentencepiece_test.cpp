// SentencePiece through the library: the Llama-2-style golden (byte fallback, split digits, the
// dummy prefix, BOS from tokenizer_config.json), special tokens, token texts, `legacy: false`
// and broken files.
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

// tokenizer.model with `config` as its tokenizer_config.json.
fs::path sp_copy(const std::string& name, const std::string& config) {
  const fs::path dir = testing::scratch_dir(name);
  fs::copy_file(sp_dir() / "tokenizer.model", dir / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  write_text_file(dir / "tokenizer_config.json", config);
  return dir;
}

std::vector<std::string> golden_texts() {
  std::ifstream in(testing::golden_path("tokenizers/sentencepiece_golden.json"));
  const json golden = json::parse(in);
  std::vector<std::string> texts;
  for (const auto& c : golden.at("cases")) texts.push_back(c.at("text"));
  return texts;
}

// legacy = false changes only where the "▁" goes around added tokens: a text with none split out
// of it encodes as the library does, every golden case.
TEST(SentencePieceLegacyTest, WithoutAddedTokensItIsTheLibrary) {
  const auto tok = Tokenizer::load(sp_copy("legacy_false", R"({"legacy": false})"));
  testing::expect_golden_cases(*tok, "tokenizers/sentencepiece_golden.json", 501, {}, true);
}

// transformers' own example (LlamaTokenizer's docstring): the "." of "Hello <s>." is "▁." with
// legacy = true and "." with legacy = false (this model has no "▁." piece: "▁" then "." in
// legacy); a special token at the start takes no "▁" before it or after it.
TEST(SentencePieceLegacyTest, TextAfterASpecialTokenGetsNoPrefix) {
  const auto legacy = Tokenizer::load(sp_dir());
  const auto plain = Tokenizer::load(sp_copy("legacy_false", R"({"legacy": false})"));
  EncodeOptions split;
  split.allow_special = true;
  split.add_special_tokens = false;
  const auto after_special = [&](const Tokenizer& tok, const std::vector<int64_t>& ids) {
    const auto bos = std::find(ids.begin(), ids.end(), 1);
    std::string text;
    for (auto it = bos == ids.end() ? bos : bos + 1; it != ids.end(); ++it) {
      text += tok.token_text(*it);
    }
    return text;
  };
  const auto old_ids = legacy->encode("Hello <s>.", split);
  const auto new_ids = plain->encode("Hello <s>.", split);
  EXPECT_EQ(after_special(*legacy, old_ids), " .");
  EXPECT_EQ(after_special(*plain, new_ids), ".");
  const auto old_head = std::find(old_ids.begin(), old_ids.end(), 1);
  const auto new_head = std::find(new_ids.begin(), new_ids.end(), 1);
  EXPECT_EQ(std::vector<int64_t>(new_ids.begin(), new_head),
            std::vector<int64_t>(old_ids.begin(), old_head));
  EXPECT_EQ(plain->decode(new_ids), "Hello <s>.");

  const auto at_start = plain->encode("<s>there", split);
  ASSERT_GE(at_start.size(), 2u);
  EXPECT_EQ(at_start[0], 1);
  EXPECT_EQ(plain->token_text(at_start[1]).front(), 't');
  EXPECT_EQ(plain->decode(at_start), "<s>there");
  // Framed, the BOS comes first as ever.
  EXPECT_EQ(plain->encode("<s>there", EncodeOptions{true, true}).front(), 1);
  // "▁" written in the text is a space, as transformers replaces it.
  EXPECT_EQ(plain->encode("a\xE2\x96\x81"
                          "b"),
            plain->encode("a b"));
  EXPECT_EQ(plain->encode("\xE2\x96\x81"
                          "b"),
            plain->encode(" b"));
}

// The fast tokenizer.json that transformers converts for legacy = false (Metaspace,
// prepend_scheme "first") is built to agree with the slow class; it does, on every golden text
// around special tokens, but for a text that starts with a space (Metaspace adds no "▁" there).
TEST(SentencePieceLegacyTest, AgreesWithTheFastConversionAroundSpecialTokens) {
  const auto plain = Tokenizer::load(sp_copy("legacy_false", R"({"legacy": false})"));
  const auto fast =
      Tokenizer::load(testing::golden_path("tokenizers/sentencepiece-converted/first"));
  ASSERT_EQ(fast->kind(), "bpe");
  EncodeOptions split;
  split.allow_special = true;
  const auto texts = golden_texts();
  int compared = 0;
  int mismatches = 0;
  for (size_t i = 0; i + 1 < texts.size(); i += 2) {
    const std::string& a = texts[i];
    const std::string& b = texts[i + 1];
    if (a.empty() || a.front() == ' ') continue;
    for (const std::string& text :
         {a + "<s>" + b, a + " </s> " + b, "<s>" + b, a + "<unk>", "</s>" + a + "<s>"}) {
      ++compared;
      if (plain->encode(text, split) != fast->encode(text, split) && mismatches++ < 3) {
        ADD_FAILURE() << "differs from the fast conversion: " << json(text).dump();
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(compared, 1000);
}

TEST(SentencePieceLegacyTest, AddPrefixSpaceFalseLeavesOutTheFirstPrefix) {
  const auto bare =
      Tokenizer::load(sp_copy("no_prefix", R"({"legacy": false, "add_prefix_space": false})"));
  const auto ids = bare->encode("Hello world", EncodeOptions{false, false});
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(bare->token_text(ids.front()).front(), 'H');
  EXPECT_EQ(bare->decode(ids), "Hello world");
  EXPECT_THAT(error_of([] { Tokenizer::load(sp_copy("bad_legacy", R"({"legacy": "no"})")); }),
              HasSubstr("legacy must be true or false"));
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
