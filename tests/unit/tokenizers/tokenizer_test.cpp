// BPE tokenizer: exact parity with Hugging Face on the GPT-2 goldens, both file formats, special
// tokens, lossy decoding, and the error messages a user sees for bad files and bad input.
#include "llmscope/tokenizer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "tokenizer_golden.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::HasSubstr;

using testing::error_of;

using testing::write_text_file;

fs::path gpt2_dir() { return testing::golden_path("tokenizers/gpt2"); }

// GPT-2's bytes_to_unicode, written independently of the implementation: byte b → its character.
std::string byte_char(int b) {
  static const std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int next = 256;
    for (int i = 0; i < 256; ++i) {
      const bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE;
      const int cp = printable ? i : next++;
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      t[i] = s;
    }
    return t;
  }();
  return table[b];
}

// A small byte-level tokenizer.json: ids 0..255 are the single bytes (id == byte value), then a
// few merges that build "hello" and " hello", and one special token.
json tiny_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab[byte_char(' ') + "hello"] = 260;
  json doc;
  doc["version"] = "1.0";
  doc["added_tokens"] = json::array({{{"id", 261},
                                      {"content", "<|eot|>"},
                                      {"single_word", false},
                                      {"lstrip", false},
                                      {"rstrip", false},
                                      {"normalized", false},
                                      {"special", true}}});
  doc["normalizer"] = nullptr;
  doc["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}};
  doc["decoder"] = {{"type", "ByteLevel"}};
  // Both merge spellings Hugging Face writes: "a b" strings (older) and [a, b] pairs (newer).
  doc["model"] = {{"type", "BPE"},
                  {"vocab", vocab},
                  {"merges", json::array({"h e", json::array({"l", "l"}), "he ll", "hell o",
                                          json::array({byte_char(' '), "hello"})})}};
  return doc;
}

std::unique_ptr<BpeTokenizer> tiny_tokenizer() {
  const fs::path dir = testing::scratch_dir("tiny");
  write_text_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  return BpeTokenizer::from_tokenizer_json(dir / "tokenizer.json");
}

class Gpt2BpeTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = BpeTokenizer::from_files(gpt2_dir() / "vocab.json", gpt2_dir() / "merges.txt");
  }
  static void TearDownTestSuite() { tok_.reset(); }
  static std::unique_ptr<BpeTokenizer> tok_;
};
std::unique_ptr<BpeTokenizer> Gpt2BpeTokenizerTest::tok_;

TEST_F(Gpt2BpeTokenizerTest, MatchesEveryGoldenCase) {
  testing::expect_golden_cases(*tok_, "tokenizers/gpt2_bpe_golden.json", 1538, {}, false);
}

TEST_F(Gpt2BpeTokenizerTest, BasicsAndTokenText) {
  EXPECT_EQ(tok_->kind(), "bpe");
  EXPECT_EQ(tok_->vocab_size(), 50257);
  EXPECT_EQ(tok_->encode("Hello world"), (std::vector<int64_t>{15496, 995}));
  EXPECT_EQ(tok_->token_text(995), " world");
  EXPECT_EQ(tok_->encode(""), std::vector<int64_t>{});
  EXPECT_EQ(tok_->decode({}), "");
}

TEST_F(Gpt2BpeTokenizerTest, SpecialTokenOnlyWhenAllowed) {
  EXPECT_EQ(tok_->special_token_id("<|endoftext|>"), 50256);
  EXPECT_EQ(tok_->special_token_id("Hello"), -1);

  const std::string text = "Hi<|endoftext|> there";
  const auto plain = tok_->encode(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(tok_->decode(plain), text);

  auto expected = tok_->encode("Hi");
  expected.push_back(50256);
  for (auto id : tok_->encode(" there")) expected.push_back(id);
  EXPECT_EQ(tok_->encode(text, EncodeOptions{true}), expected);
  EXPECT_EQ(tok_->encode("<|endoftext|><|endoftext|>", EncodeOptions{true}),
            (std::vector<int64_t>{50256, 50256}));
  EXPECT_EQ(tok_->decode({50256}), "<|endoftext|>");
}

TEST_F(Gpt2BpeTokenizerTest, LonePartialUtf8ByteDecodesToReplacementCharacter) {
  // "€" is E2 82 AC; the single-byte token for E2 is "â" in GPT-2's byte map.
  std::ifstream in(gpt2_dir() / "vocab.json");
  const json vocab = json::parse(in);
  const int64_t e2 = vocab.at(byte_char(0xE2)).get<int64_t>();
  const int64_t x82 = vocab.at(byte_char(0x82)).get<int64_t>();
  EXPECT_EQ(tok_->decode({e2}), "\xEF\xBF\xBD");
  EXPECT_EQ(tok_->token_text(e2), "\xEF\xBF\xBD");
  // A truncated sequence is one maximal subpart, hence one U+FFFD.
  EXPECT_EQ(tok_->decode({e2, x82}), "\xEF\xBF\xBD");
  const auto ab = tok_->encode("ab");
  std::vector<int64_t> ids{e2, x82};
  ids.insert(ids.end(), ab.begin(), ab.end());
  EXPECT_EQ(tok_->decode(ids), std::string("\xEF\xBF\xBD") + "ab");
}

TEST_F(Gpt2BpeTokenizerTest, OutOfRangeIdsAreErrors) {
  const std::vector<int64_t> ids{15496, 50257};
  EXPECT_THAT(error_of([&] { tok_->decode(ids); }),
              HasSubstr("token id 50257 is out of range for this tokenizer (vocabulary size "
                        "50257)"));
  EXPECT_THAT(error_of([&] { tok_->token_text(-1); }), HasSubstr("token id -1 is out of range"));
}

TEST_F(Gpt2BpeTokenizerTest, InvalidUtf8TextIsAnError) {
  const std::string bad = std::string("ab\xFF") + "c";
  EXPECT_THAT(error_of([&] { tok_->encode(bad); }), HasSubstr("text is not valid UTF-8 at byte 2"));
  EXPECT_THAT(error_of([&] { tok_->encode("x\xE2\x82"); }),
              HasSubstr("text is not valid UTF-8 at byte 1"));
  // Surrogates and overlong forms are invalid UTF-8 too.
  EXPECT_THAT(error_of([&] { tok_->encode("\xED\xA0\x80"); }), HasSubstr("at byte 0"));
  EXPECT_THAT(error_of([&] { tok_->encode("a\xC0\xAF"); }), HasSubstr("at byte 1"));
}

TEST_F(Gpt2BpeTokenizerTest, ConcurrentEncodesAgree) {
  const std::string text = "The quick brown fox jumps over the lazy dog. Ünïcödé 日本語 123";
  const auto expected = tok_->encode(text);
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      int good = 0;
      for (int i = 0; i < 200; ++i) good += tok_->encode(text + std::to_string(i % 7)).size() > 0;
      ok[t] = good == 200 && tok_->encode(text) == expected;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
}

TEST(TokenizerLoadTest, LoadFindsVocabAndMerges) {
  EXPECT_TRUE(Tokenizer::exists_in(gpt2_dir()));
  const auto tok = Tokenizer::load(gpt2_dir());
  EXPECT_EQ(tok->kind(), "bpe");
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->encode(" Hello world"), (std::vector<int64_t>{18435, 995}));
}

TEST(TokenizerLoadTest, LoadPrefersTokenizerJson) {
  const fs::path dir = testing::scratch_dir("both");
  write_text_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  fs::copy_file(gpt2_dir() / "vocab.json", dir / "vocab.json");
  fs::copy_file(gpt2_dir() / "merges.txt", dir / "merges.txt");
  EXPECT_EQ(Tokenizer::load(dir)->vocab_size(), 262);
}

TEST(TokenizerLoadTest, EmptyFolderIsAnErrorNamingIt) {
  const fs::path dir = testing::scratch_dir("empty");
  EXPECT_FALSE(Tokenizer::exists_in(dir));
  const std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr(dir.string()));
  EXPECT_THAT(msg, HasSubstr("tokenizer.json"));
  // vocab.json alone is not enough.
  write_text_file(dir / "vocab.json", "{}");
  EXPECT_FALSE(Tokenizer::exists_in(dir));
}

TEST(TokenizerJsonTest, TinyTokenizerLoadsAndEncodes) {
  const auto tok = tiny_tokenizer();
  EXPECT_EQ(tok->vocab_size(), 262);
  EXPECT_EQ(tok->encode("hello hello"), (std::vector<int64_t>{259, 260}));
  EXPECT_EQ(tok->encode("helo"), (std::vector<int64_t>{256, 'l', 'o'}));
  EXPECT_EQ(tok->encode("hello!"), (std::vector<int64_t>{259, '!'}));
  EXPECT_EQ(tok->decode({259, 260}), "hello hello");
  EXPECT_EQ(tok->token_text(260), " hello");

  EXPECT_EQ(tok->special_token_id("<|eot|>"), 261);
  EXPECT_EQ(tok->encode("hello<|eot|>", EncodeOptions{true}), (std::vector<int64_t>{259, 261}));
  const auto plain = tok->encode("hello<|eot|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 261), 0);
  EXPECT_EQ(tok->decode(plain), "hello<|eot|>");
  EXPECT_EQ(tok->decode({261}), "<|eot|>");
}

TEST(TokenizerJsonTest, LossyDecodeFollowsMaximalSubparts) {
  // In the tiny tokenizer id == byte, so ids spell raw byte strings.
  const auto tok = tiny_tokenizer();
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(tok->decode({0xE2}), fffd);
  EXPECT_EQ(tok->decode({0xE2, 0x82, 'a'}), fffd + "a");
  EXPECT_EQ(tok->decode({0xE2, 0x82, 0xAC}), "\xE2\x82\xAC");
  EXPECT_EQ(tok->decode({0xFF, 0xFE}), fffd + fffd);
  EXPECT_EQ(tok->decode({0xED, 0xA0, 0x80}), fffd + fffd + fffd);  // a surrogate
  EXPECT_EQ(tok->decode({0xC0, 0xAF}), fffd + fffd);               // overlong
  EXPECT_EQ(tok->decode({0xF0, 0x9F, 0x98}), fffd);
  EXPECT_EQ(tok->decode({0xF0, 0x9F, 0x98, 0x80}), "\xF0\x9F\x98\x80");
  EXPECT_EQ(tok->decode({0xF4, 0x90, 0x80, 0x80}), fffd + fffd + fffd + fffd);  // > U+10FFFF
}

TEST(TokenizerJsonTest, MissingModelVocabIsAnError) {
  const fs::path dir = testing::scratch_dir("novocab");
  json doc = tiny_tokenizer_json();
  doc["model"].erase("vocab");
  write_text_file(dir / "tokenizer.json", doc.dump());
  const std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr("tokenizer.json"));
  EXPECT_THAT(msg, HasSubstr("model.vocab"));

  doc.erase("model");
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("\"model\""));
}

TEST(TokenizerJsonTest, BadMergeAndUnsupportedModelAreErrors) {
  const fs::path dir = testing::scratch_dir("badmerge");
  json doc = tiny_tokenizer_json();
  doc["model"]["merges"].push_back("h e l");
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("model.merges[5]"));

  doc = tiny_tokenizer_json();
  doc["model"]["merges"].push_back("zz q");
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("not in the vocabulary"));

  doc = tiny_tokenizer_json();
  doc["model"]["type"] = "WordLevel";
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }),
              HasSubstr("a WordLevel model is not supported"));

  write_text_file(dir / "tokenizer.json", "{not json");
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("not valid JSON"));
}

class BpeFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::scratch_dir("files"); }
  std::string load_error() {
    return error_of([&] { BpeTokenizer::from_files(dir_ / "vocab.json", dir_ / "merges.txt"); });
  }
  fs::path dir_;
};

TEST_F(BpeFilesTest, VocabNotJsonNamesTheFile) {
  write_text_file(dir_ / "vocab.json", "{\"a\": 0,");
  write_text_file(dir_ / "merges.txt", "#version: 0.2\n");
  const std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr("vocab.json"));
  EXPECT_THAT(msg, HasSubstr("not valid JSON"));
}

TEST_F(BpeFilesTest, VocabNotAnObjectOfIds) {
  write_text_file(dir_ / "merges.txt", "#version: 0.2\n");
  write_text_file(dir_ / "vocab.json", "[1, 2, 3]");
  EXPECT_THAT(load_error(), HasSubstr("JSON object mapping token strings to integer ids"));
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": "one"})");
  const std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr("vocab.json"));
  EXPECT_THAT(msg, HasSubstr("\"b\""));
  EXPECT_THAT(msg, HasSubstr("integer id"));
}

// Found by fuzzing: one huge id made the id tables take gigabytes.
TEST_F(BpeFilesTest, AnIdFarBeyondTheVocabularyIsRefused) {
  write_text_file(dir_ / "merges.txt", "#version: 0.2\n");
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": 2000000000})");
  const std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr("vocab.json"));
  EXPECT_THAT(msg, HasSubstr("token id 2000000000 for a vocabulary of 2 tokens"));
  // Gaps of a real size are fine (trimmed vocabularies, added tokens numbered on).
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": 50000})");
  EXPECT_EQ(BpeTokenizer::from_files(dir_ / "vocab.json", dir_ / "merges.txt")->vocab_size(),
            50001);
}

TEST_F(BpeFilesTest, BadMergesLineReportsFileAndLine) {
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_text_file(dir_ / "merges.txt", "#version: 0.2\na b\nab\n");
  const std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr("merges.txt"));
  EXPECT_THAT(msg, HasSubstr("line 3"));
  EXPECT_THAT(msg, HasSubstr("two tokens"));

  write_text_file(dir_ / "merges.txt", "a b c\n");
  EXPECT_THAT(load_error(), HasSubstr("line 1"));
}

TEST_F(BpeFilesTest, MergeOfUnknownTokenReportsLine) {
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_text_file(dir_ / "merges.txt", "#version: 0.2\na b\nab c\n");
  const std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr("merges.txt"));
  EXPECT_THAT(msg, HasSubstr("line 3"));
  EXPECT_THAT(msg, HasSubstr("\"c\""));
  EXPECT_THAT(msg, HasSubstr("not in the vocabulary"));
}

TEST_F(BpeFilesTest, MissingFilesAreNamed) {
  write_text_file(dir_ / "merges.txt", "#version: 0.2\n");
  std::string msg = load_error();
  EXPECT_THAT(msg, HasSubstr((dir_ / "vocab.json").string()));
  EXPECT_THAT(msg, HasSubstr("not found"));

  write_text_file(dir_ / "vocab.json", R"({"a": 0})");
  fs::remove(dir_ / "merges.txt");
  msg = load_error();
  EXPECT_THAT(msg, HasSubstr((dir_ / "merges.txt").string()));
  EXPECT_THAT(msg, HasSubstr("not found"));

  EXPECT_THAT(error_of([&] { BpeTokenizer::from_tokenizer_json(dir_ / "tokenizer.json"); }),
              HasSubstr("tokenizer.json: file not found"));
}

TEST_F(BpeFilesTest, CrlfMergesAndMissingByteTokens) {
  // Windows line endings are tolerated; a byte with no token is a clear error, not a crash.
  write_text_file(dir_ / "vocab.json", R"({"a": 0, "b": 1, "ab": 2})");
  write_text_file(dir_ / "merges.txt", "#version: 0.2\r\na b\r\n");
  const auto tok = BpeTokenizer::from_files(dir_ / "vocab.json", dir_ / "merges.txt");
  EXPECT_EQ(tok->encode("abba"), (std::vector<int64_t>{2, 1, 0}));
  EXPECT_THAT(error_of([&] { tok->encode("abc"); }), HasSubstr("no token"));
}

}  // namespace
}  // namespace llmscope
