// Byte-level BPE from a tokenizer.json in general: the Llama-3-style golden (its own Split regex,
// ignore_merges, 16 special added tokens, a TemplateProcessing BOS), the pipeline pieces one by
// one (normalizers between added tokens, added-token flags, Split sequences, templates) and the
// errors for files llmscope does not run.
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

fs::path llama3_dir() { return testing::golden_path("tokenizers/llama3-style"); }

class Llama3StyleTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tok_ = Tokenizer::load(llama3_dir()); }
  static void TearDownTestSuite() { tok_.reset(); }
  static std::unique_ptr<Tokenizer> tok_;
};
std::unique_ptr<Tokenizer> Llama3StyleTest::tok_;

// ids = encode(text, add_special_tokens=True) with special-token strings split out, as HF's
// tokenizers do; decoded = decode(ids, skip_special_tokens=True).
TEST_F(Llama3StyleTest, MatchesEveryGoldenCase) {
  EncodeOptions hf;
  hf.allow_special = true;
  testing::expect_golden_cases(*tok_, "tokenizers/llama3_bpe_golden.json", 1720, hf, true);
}

TEST_F(Llama3StyleTest, BosComesFromThePostProcessorOnlyWhenFraming) {
  EXPECT_EQ(tok_->kind(), "bpe");
  EXPECT_EQ(tok_->special_token_id("<|begin_of_text|>"), 50268);
  EXPECT_EQ(tok_->encode("Hello world"), (std::vector<int64_t>{50268, 15496, 995}));
  EncodeOptions bare;
  bare.add_special_tokens = false;
  EXPECT_EQ(tok_->encode("Hello world", bare), (std::vector<int64_t>{15496, 995}));
  EXPECT_EQ(tok_->encode("", bare), std::vector<int64_t>{});
  EXPECT_TRUE(tok_->is_special(50268));
  EXPECT_FALSE(tok_->is_special(15496));
  // decode keeps special tokens (they are part of what the model saw); HF's skip is separate.
  EXPECT_EQ(tok_->decode({50268, 15496}), "<|begin_of_text|>Hello");
  EXPECT_EQ(tok_->decode_skipping_special({50268, 15496}), "Hello");
  EXPECT_EQ(tok_->token_text(50277), "<|eot_id|>");
}

TEST_F(Llama3StyleTest, SpecialStringsStayTextUnlessAllowed) {
  EncodeOptions bare;
  bare.add_special_tokens = false;
  const auto plain = tok_->encode("Hi<|eot_id|>", bare);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50277), 0);
  EXPECT_EQ(tok_->decode(plain), "Hi<|eot_id|>");
  bare.allow_special = true;
  const auto split = tok_->encode("Hi<|eot_id|>", bare);
  EXPECT_EQ(split.back(), 50277);
  EXPECT_EQ(split.size(), 2u);
}

TEST_F(Llama3StyleTest, IgnoreMergesEmitsWholeVocabularyPieces) {
  EncodeOptions bare;
  bare.add_special_tokens = false;
  // " tokenization" is a vocabulary entry no merge reaches; " tokenizations" is not one.
  const auto whole = tok_->encode(" tokenization", bare);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(tok_->token_text(whole[0]), " tokenization");
  EXPECT_GT(tok_->encode(" tokenizations", bare).size(), 1u);
  // Llama 3's digits go in threes, left to right.
  const auto digits = tok_->encode("1234567", bare);
  ASSERT_EQ(digits.size(), 3u);
  EXPECT_EQ(tok_->token_text(digits[0]), "123");
  EXPECT_EQ(tok_->token_text(digits[2]), "7");
}

// A small byte-level tokenizer.json (ids 0..255 are the bytes in GPT-2's alphabet order) to vary
// one pipeline piece at a time.
json small_tokenizer_json() {
  const auto& chars = gpt2_byte_to_unicode();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[chars[b]] = b;
  vocab["ab"] = 256;
  vocab[chars[' '] + "ab"] = 257;
  json doc;
  doc["model"] = {
      {"type", "BPE"},
      {"vocab", vocab},
      {"merges", json::array({json::array({"a", "b"}), json::array({chars[' '], "ab"})})}};
  doc["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  doc["decoder"] = {{"type", "ByteLevel"}};
  doc["added_tokens"] = json::array();
  return doc;
}

std::unique_ptr<Tokenizer> load_json(const json& doc, const std::string& name) {
  const fs::path dir = testing::scratch_dir(name);
  write_text_file(dir / "tokenizer.json", doc.dump());
  return Tokenizer::load(dir);
}

json added(int64_t id, const std::string& content, json flags = json::object()) {
  json t = {{"id", id},        {"content", content}, {"special", false},    {"normalized", false},
            {"lstrip", false}, {"rstrip", false},    {"single_word", false}};
  for (const auto& [k, v] : flags.items()) t[k] = v;
  return t;
}

TEST(ByteLevelJsonTest, NfcRunsBetweenAddedTokensNeverAcrossThem) {
  json doc = small_tokenizer_json();
  doc["normalizer"] = {{"type", "NFC"}};
  doc["added_tokens"] = json::array({added(258, "<x>")});
  const auto tok = load_json(doc, "nfc");
  const std::string composed = "\xC3\xA9";     // é
  const std::string decomposed = "e\xCC\x81";  // e + combining acute
  EXPECT_EQ(tok->encode(decomposed), tok->encode(composed));
  EXPECT_EQ(tok->encode(decomposed).size(), 2u);  // é's two bytes
  // The acute after an added token has nothing to combine with on its side of the token.
  const auto split = tok->encode("e<x>\xCC\x81");
  EXPECT_EQ(split, (std::vector<int64_t>{'e', 258, 0xCC, 0x81}));
  EXPECT_EQ(tok->decode(split), "e<x>\xCC\x81");
}

TEST(ByteLevelJsonTest, NormalizedAddedTokensMatchAfterTheNormalizer) {
  json doc = small_tokenizer_json();
  doc["normalizer"] = {{"type", "Lowercase"}};
  doc["added_tokens"] =
      json::array({added(258, "<raw>"), added(259, "<low>", {{"normalized", true}})});
  const auto tok = load_json(doc, "normalized");
  EXPECT_EQ(tok->encode("<LOW>"), (std::vector<int64_t>{259}));  // lower-cased first
  EXPECT_EQ(tok->encode("<raw>"), (std::vector<int64_t>{258}));
  EXPECT_GT(tok->encode("<RAW>").size(), 1u);  // raw text must match as is
}

TEST(ByteLevelJsonTest, StripAndSingleWordFlags) {
  json doc = small_tokenizer_json();
  doc["added_tokens"] = json::array({added(258, "<m>", {{"lstrip", true}, {"rstrip", true}}),
                                     added(259, "ab", {{"single_word", true}})});
  const auto tok = load_json(doc, "flags");
  // lstrip/rstrip swallow the spaces beside the token.
  EXPECT_EQ(tok->encode("x  <m> y"), (std::vector<int64_t>{'x', 258, 'y'}));
  // single_word: only where no word character touches it.
  EXPECT_EQ(tok->encode("ab"), (std::vector<int64_t>{259}));
  EXPECT_EQ(tok->encode("cab"), (std::vector<int64_t>{'c', 256}));
  EXPECT_EQ(tok->encode("x ab"), (std::vector<int64_t>{'x', ' ', 259}));
}

TEST(ByteLevelJsonTest, SplitSequenceAndTemplates) {
  json doc = small_tokenizer_json();
  // Split on single digits (Isolated) before ByteLevel without its own regex: "ab12" →
  // "ab","1","2".
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array({{{"type", "Split"},
                     {"pattern", {{"Regex", "\\p{N}"}}},
                     {"behavior", "Isolated"},
                     {"invert", false}},
                    {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  doc["added_tokens"] = json::array(
      {added(258, "<s>", {{"special", true}}), added(259, "</s>", {{"special", true}})});
  doc["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       json::array(
           {{{"type", "ByteLevel"}},
            {{"type", "TemplateProcessing"},
             {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                     {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}})},
             {"special_tokens",
              {{"<s>", {{"id", "<s>"}, {"ids", {258}}, {"tokens", {"<s>"}}}},
               {"</s>", {{"id", "</s>"}, {"ids", {259}}, {"tokens", {"</s>"}}}}}}}})}};
  const auto tok = load_json(doc, "split");
  // Without the Split, " ab" would be one piece; with use_regex false spaces stay attached.
  EXPECT_EQ(tok->encode("ab12 ab"), (std::vector<int64_t>{258, 256, '1', '2', 257, 259}));
  EncodeOptions bare;
  bare.add_special_tokens = false;
  EXPECT_EQ(tok->encode("ab12", bare), (std::vector<int64_t>{256, '1', '2'}));
  EXPECT_EQ(tok->decode_skipping_special(tok->encode("ab12 ab")), "ab12 ab");
}

TEST(ByteLevelJsonTest, PrefixSpaceRobertaFramingAndCompatibilityForms) {
  json doc = small_tokenizer_json();
  // RoBERTa-style: ByteLevel adds a space before text that has none; <s> ... </s> around it.
  doc["pre_tokenizer"]["add_prefix_space"] = true;
  doc["added_tokens"] = json::array(
      {added(258, "<s>", {{"special", true}}), added(259, "</s>", {{"special", true}})});
  doc["post_processor"] = {{"type", "RobertaProcessing"},
                           {"sep", json::array({"</s>", 259})},
                           {"cls", json::array({"<s>", 258})}};
  doc["normalizer"] = {{"type", "NFKC"}};
  const auto tok = load_json(doc, "roberta");
  EXPECT_EQ(tok->encode("ab"), (std::vector<int64_t>{258, 257, 259}));   // " ab"
  EXPECT_EQ(tok->encode(" ab"), (std::vector<int64_t>{258, 257, 259}));  // already spaced
  // NFKC folds the full-width letters to "ab".
  EXPECT_EQ(tok->encode("\xEF\xBD\x81\xEF\xBD\x82"), tok->encode("ab"));
  EXPECT_EQ(tok->decode_skipping_special(tok->encode("ab")), " ab");
}

TEST(ByteLevelJsonTest, FilesLlmscopeDoesNotRunAreRefusedWithWhatWasFound) {
  json doc = small_tokenizer_json();
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "UnicodeScripts"}}, {{"type", "ByteLevel"}}})}};
  std::string msg = error_of([&] { load_json(doc, "scripts"); });
  EXPECT_THAT(msg, HasSubstr("tokenizer.json"));
  EXPECT_THAT(msg, HasSubstr("pre_tokenizer UnicodeScripts is not supported"));

  doc = small_tokenizer_json();
  doc["normalizer"] = {{"type", "Precompiled"}};
  EXPECT_THAT(error_of([&] { load_json(doc, "precompiled"); }),
              HasSubstr("normalizer Precompiled is not supported"));

  doc = small_tokenizer_json();
  doc["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  EXPECT_THAT(error_of([&] { load_json(doc, "no_sequence"); }),
              HasSubstr("post_processor.single: expected the sequence $A exactly once"));
  doc["post_processor"]["single"].push_back({{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}});
  EXPECT_THAT(error_of([&] { load_json(doc, "unlisted"); }),
              HasSubstr("neither a Sequence nor a SpecialToken listed in special_tokens"));

  doc = small_tokenizer_json();
  doc["added_tokens"] = json::array({added(258, "<x>", {{"special", 1}})});
  msg = error_of([&] { load_json(doc, "flag"); });
  EXPECT_THAT(msg, HasSubstr("added_tokens[0]: special must be true or false, got 1"));

  doc = small_tokenizer_json();
  doc["post_processor"] = {{"type", "Unknown"}};
  EXPECT_THAT(error_of([&] { load_json(doc, "post"); }),
              HasSubstr("post_processor Unknown is not supported"));

  doc = small_tokenizer_json();
  doc["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       json::array(
           {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
            {{"type", "ByteLevel"}}})}};
  msg = error_of([&] { load_json(doc, "regex"); });
  EXPECT_THAT(msg, HasSubstr("(unclosed"));
  EXPECT_THAT(msg, HasSubstr("does not compile"));
}

}  // namespace
}  // namespace llmscope
