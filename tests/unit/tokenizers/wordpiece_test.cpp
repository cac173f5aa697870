// WordPiece tokenizer: exact parity with Hugging Face's BertWordPieceTokenizer on the goldens
// (single texts and a sentence pair), BERT's normalisation and splitting on hand-picked Unicode
// cases, tokenizer.json and folder loading, decoding, and the errors a user sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testing::error_of;

using testing::write_text_file;

fs::path wordpiece_dir() { return testing::golden_path("tokenizers/wordpiece"); }

json load_golden() {
  std::ifstream in(wordpiece_dir() / "golden.json");
  EXPECT_TRUE(in) << "missing tokenizers/wordpiece/golden.json";
  return json::parse(in);
}

std::vector<std::string> token_texts(const Tokenizer& tok, const std::vector<int64_t>& ids) {
  std::vector<std::string> out;
  for (const int64_t id : ids) out.push_back(tok.token_text(id));
  return out;
}

// Compares every golden case; reports the first few mismatches by index and text.
void expect_matches_golden(const Tokenizer& tok, const json& golden) {
  const json& cases = golden.at("cases");
  ASSERT_EQ(cases.size(), 1538u);
  int id_mismatches = 0;
  int token_mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string text = cases[i].at("text").get<std::string>();
    const auto expected = cases[i].at("ids").get<std::vector<int64_t>>();
    const auto got = tok.encode(text);
    if (got != expected && id_mismatches++ < 5) {
      ADD_FAILURE() << "ids differ: case " << i << " text " << json(text).dump() << "\n  expected "
                    << json(expected).dump() << "\n  got      " << json(got).dump();
    }
    const auto tokens = token_texts(tok, got);
    if (tokens != cases[i].at("tokens").get<std::vector<std::string>>() && token_mismatches++ < 5) {
      ADD_FAILURE() << "tokens differ: case " << i << " text " << json(text).dump()
                    << "\n  expected " << cases[i]["tokens"].dump() << "\n  got      "
                    << json(tokens).dump();
    }
  }
  EXPECT_EQ(id_mismatches, 0) << "of " << cases.size() << " cases";
  EXPECT_EQ(token_mismatches, 0) << "of " << cases.size() << " cases";
}

class WordPieceGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tok_ = WordPieceTokenizer::from_vocab_txt(wordpiece_dir() / "vocab.txt");
    golden_ = load_golden();
  }
  static void TearDownTestSuite() { tok_.reset(); }
  static std::unique_ptr<WordPieceTokenizer> tok_;
  static json golden_;
};
std::unique_ptr<WordPieceTokenizer> WordPieceGoldenTest::tok_;
json WordPieceGoldenTest::golden_;

TEST_F(WordPieceGoldenTest, MatchesEveryGoldenCase) { expect_matches_golden(*tok_, golden_); }

TEST_F(WordPieceGoldenTest, SentencePairMatchesGolden) {
  const json& pair = golden_.at("pair_example");
  const PairEncoding enc =
      tok_->encode_pair(pair.at("a").get<std::string>(), pair.at("b").get<std::string>());
  EXPECT_EQ(enc.input_ids, pair.at("input_ids").get<std::vector<int64_t>>());
  EXPECT_EQ(enc.token_type_ids, pair.at("token_type_ids").get<std::vector<int64_t>>());

  // Without special tokens: a then b, type ids still 0 then 1.
  const PairEncoding bare = tok_->encode_pair("hello world", "the jury", EncodePairOptions{false});
  const auto a = tok_->encode("hello world", EncodeOptions{false, false});
  const auto b = tok_->encode("the jury", EncodeOptions{false, false});
  std::vector<int64_t> ids = a;
  ids.insert(ids.end(), b.begin(), b.end());
  EXPECT_EQ(bare.input_ids, ids);
  std::vector<int64_t> types(a.size(), 0);
  types.resize(ids.size(), 1);
  EXPECT_EQ(bare.token_type_ids, types);
}

TEST_F(WordPieceGoldenTest, BasicsAndSpecialTokens) {
  EXPECT_EQ(tok_->kind(), "wordpiece");
  EXPECT_EQ(tok_->vocab_size(), 3000);
  EXPECT_EQ(tok_->special_token_id("[PAD]"), 0);
  EXPECT_EQ(tok_->special_token_id("[UNK]"), 1);
  EXPECT_EQ(tok_->special_token_id("[CLS]"), 2);
  EXPECT_EQ(tok_->special_token_id("[SEP]"), 3);
  EXPECT_EQ(tok_->special_token_id("[MASK]"), 4);
  EXPECT_EQ(tok_->special_token_id("the"), -1);
  EXPECT_EQ(tok_->encode(""), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(tok_->encode("", EncodeOptions{false, false}), std::vector<int64_t>{});

  const auto framed = tok_->encode("Hello world");
  const auto bare = tok_->encode("Hello world", EncodeOptions{false, false});
  EXPECT_EQ(std::vector<int64_t>(framed.begin() + 1, framed.end() - 1), bare);
  EXPECT_THAT(token_texts(*tok_, bare), ElementsAre("hel", "##lo", "world"));
}

TEST_F(WordPieceGoldenTest, MaskWrittenInTextIsKeptWhole) {
  const auto ids = tok_->encode("Robert helped Lucy with [MASK] project.");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 4), 1);
  EXPECT_THAT(token_texts(*tok_, ids), ElementsAre("[CLS]", "robert", "help", "##ed", "lu", "##cy",
                                                   "with", "[MASK]", "project", ".", "[SEP]"));
  // Whatever allow_special says, and even with no space around it.
  EXPECT_EQ(tok_->encode("with [MASK] project", EncodeOptions{true}),
            tok_->encode("with [MASK] project", EncodeOptions{false}));
  EXPECT_THAT(token_texts(*tok_, tok_->encode("with[MASK]project", EncodeOptions{false, false})),
              ElementsAre("with", "[MASK]", "project"));
  // Matching is on the raw text and case-sensitive, as in HF: "[mask]" is ordinary text.
  const auto lower = tok_->encode("[mask]", EncodeOptions{false, false});
  EXPECT_EQ(std::count(lower.begin(), lower.end(), 4), 0);
}

TEST_F(WordPieceGoldenTest, DecodeRoundTripsPlainSentences) {
  for (const std::string text :
       {"the jury said it was a good election.", "robert helped lucy with her project.",
        "it was a dark and stormy night, and the city was quiet!", "is this the end?",
        "the jury said they can't and won't, but he's here."}) {
    EXPECT_EQ(tok_->decode(tok_->encode(text)), text) << "text " << json(text).dump();
  }
}

TEST_F(WordPieceGoldenTest, DecodeJoinsContinuationsAndSkipsFraming) {
  // [CLS] hel ##lo world [SEP] [PAD]
  EXPECT_EQ(tok_->decode({2, tok_->encode("hello", EncodeOptions{false, false})[0]}), "hel");
  auto ids = tok_->encode("Hello world");
  ids.push_back(0);
  EXPECT_EQ(tok_->decode(ids), "hello world");
  // [UNK] and [MASK] stay visible.
  EXPECT_EQ(tok_->decode(tok_->encode("with [MASK] ☃ project")), "with [MASK] [UNK] project");
  // A leading continuation keeps its prefix, as HF's WordPiece decoder does.
  const auto lo = tok_->encode("hello", EncodeOptions{false, false})[1];
  EXPECT_EQ(tok_->token_text(lo), "##lo");
  EXPECT_EQ(tok_->decode({lo}), "##lo");
  EXPECT_EQ(tok_->decode({}), "");
  EXPECT_EQ(tok_->decode({2, 3}), "");
}

TEST_F(WordPieceGoldenTest, OutOfRangeIdsAreErrors) {
  const std::vector<int64_t> ids{2, 3000};
  EXPECT_THAT(error_of([&] { tok_->decode(ids); }),
              HasSubstr("token id 3000 is out of range for this tokenizer (vocabulary size 3000)"));
  EXPECT_THAT(error_of([&] { tok_->token_text(-1); }),
              HasSubstr("token id -1 is out of range for this tokenizer (vocabulary size 3000)"));
}

TEST_F(WordPieceGoldenTest, InvalidUtf8TextIsAnError) {
  EXPECT_THAT(error_of([&] { tok_->encode(std::string("ab\xFF") + "c"); }),
              HasSubstr("text is not valid UTF-8 at byte 2"));
  EXPECT_THAT(error_of([&] { tok_->encode("x\xE2\x82"); }),
              HasSubstr("text is not valid UTF-8 at byte 1"));
  EXPECT_THAT(error_of([&] { tok_->encode_pair("ok", "\xED\xA0\x80"); }), HasSubstr("at byte 0"));
}

TEST_F(WordPieceGoldenTest, ConcurrentEncodesAgree) {
  // Unicode categories are filled in lazily, so first use from several threads must be safe.
  const std::string text = "Ünïcödé naïve café 日本語 «quoted» — ¿qué? Ἀθῆναι Йод 한국어";
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> got(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) got[t] = tok_->encode(text);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < 4; ++t) EXPECT_EQ(got[t], got[0]) << "thread " << t;
}

// ---------------------------------------------------------------------------------------------
// Normalisation and splitting on a tiny vocabulary. Every expectation was produced by Hugging
// Face tokenizers 0.23 (BertNormalizer + BertPreTokenizer + WordPiece) on the same vocabulary.

constexpr const char* kTinyVocab[] = {
    "[PAD]",  "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "naive", "resume", "angstrom", "ß",
    "i",      "n",     "u",     "a",     "b",      "c",    "d",     "e",      "f",        "ab",
    "##a",    "##b",   "中",    "文",    "豈",     "$",    "^",     "`",      "|",        "~",
    "+",      "—",     "«",     "»",     "・",     "°",    "ᄒ",    "##ᅡ",   "##ᆫ",     "か",
    "αθηναι", "иод",   "stra",  "##ße",  ".",      ",",    "'",     "t",      "can",      "don"};

fs::path write_tiny_vocab(const fs::path& dir) {
  std::string text;
  for (const char* t : kTinyVocab) text += std::string(t) + "\n";
  write_text_file(dir / "vocab.txt", text);
  return dir / "vocab.txt";
}

std::vector<std::string> tiny_tokens(const Tokenizer& tok, const std::string& text) {
  return token_texts(tok, tok.encode(text, EncodeOptions{false, false}));
}

TEST(WordPieceNormalizationTest, MatchesHuggingFaceOnUnicodeCases) {
  const auto tok =
      WordPieceTokenizer::from_vocab_txt(write_tiny_vocab(testing::scratch_dir("tiny")));
  using V = std::vector<std::string>;
  const std::vector<std::pair<std::string, V>> cases = {
      // Accents stripped (NFD, then Mn removed), then lower-cased.
      {"Café Naïve RÉSUMÉ", {"cafe", "naive", "resume"}},
      {"Ångström", {"angstrom"}},
      {"ñ ü", {"n", "u"}},
      {"a\u0301", {"a"}},                   // an already-decomposed accent
      {"straße ẞ", {"stra", "##ße", "ß"}},  // ß has no decomposition; ẞ lower-cases to it
      {"İ", {"i"}},
      {"Ἀθῆναι", {"αθηναι"}},
      {"Йод", {"иод"}},
      {"が", {"か"}},                  // the voicing mark is Mn
      {"한", {"ᄒ", "##ᅡ", "##ᆫ"}},  // Hangul syllables decompose into jamo
      // Whitespace splits; control and format characters vanish.
      {"a\u00A0b a\u3000b a\u200Bb", {"a", "b", "a", "b", "ab"}},
      {"a\u2028b a\u1680b", {"a", "b", "a", "b"}},
      {"a\ab", {"ab"}},
      {"a\vb a\fb a\u0085b", {"ab", "ab", "ab"}},  // Cc, so removed before whitespace is mapped
      {"a\u061Cb a\u180Eb \u00ADab", {"ab", "ab", "ab"}},
      {"a\uFFFDb", {"ab"}},
      {std::string("a\0b", 3), {"ab"}},
      {"\uE000ab a\U000F0000b", {"ab", "ab"}},  // private use
      {"a\U000E0001b", {"ab"}},                 // a tag character (Cf)
      {"a\u0378", {"[UNK]"}},                   // unassigned: kept
      // CJK ideographs stand alone; a compatibility ideograph becomes its unified form.
      {"中文", {"中", "文"}},
      {"\uF900", {"豈"}},
      // ASCII symbols split like punctuation, so does Unicode P*; other symbols do not.
      {"a$b^c`d|e~f", {"a", "$", "b", "^", "c", "`", "d", "|", "e", "~", "f"}},
      {"a+b", {"a", "+", "b"}},
      {"a—b «a»", {"a", "—", "b", "«", "a", "»"}},
      {"a・b", {"a", "・", "b"}},
      {"a°b", {"[UNK]"}},
      {"a€b", {"[UNK]"}},
      // Special tokens, split from the raw text.
      {"b[MASK]a", {"b", "[MASK]", "a"}},
      {"[CLS][SEP]", {"[CLS]", "[SEP]"}},
      {"[mask]", {"[UNK]", "[UNK]", "[UNK]"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(tiny_tokens(*tok, cases[i].first), cases[i].second)
        << "case " << i << " text " << json(cases[i].first).dump();
  }
}

TEST(WordPieceNormalizationTest, LongWordsBecomeOneUnknown) {
  const auto tok =
      WordPieceTokenizer::from_vocab_txt(write_tiny_vocab(testing::scratch_dir("long")));
  // 100 characters is still spelt; 101 is [UNK] whatever the vocabulary holds.
  const auto hundred = tiny_tokens(*tok, std::string(100, 'a'));
  ASSERT_EQ(hundred.size(), 100u);
  EXPECT_EQ(hundred.front(), "a");
  EXPECT_EQ(hundred.back(), "##a");
  EXPECT_EQ(tiny_tokens(*tok, std::string(101, 'a')), std::vector<std::string>{"[UNK]"});
  // A word that cannot be spelt to the end is one [UNK], not a partial spelling.
  EXPECT_EQ(tiny_tokens(*tok, "abz b"), (std::vector<std::string>{"[UNK]", "b"}));
}

TEST(WordPieceNormalizationTest, CasedOptionsKeepCaseAndAccents) {
  const fs::path dir = testing::scratch_dir("cased");
  write_text_file(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nCafé\ncafe\nAb\n");
  WordPieceOptions cased;
  cased.lowercase = false;
  const auto tok = WordPieceTokenizer::from_vocab_txt(dir / "vocab.txt", cased);
  EXPECT_EQ(tiny_tokens(*tok, "Café Ab"), (std::vector<std::string>{"Café", "Ab"}));
  EXPECT_EQ(tiny_tokens(*tok, "cafe café"), (std::vector<std::string>{"cafe", "[UNK]"}));

  // The same through the folder: tokenizer_config.json's do_lower_case, as transformers reads.
  write_text_file(dir / "tokenizer_config.json", R"({"do_lower_case": false})");
  EXPECT_EQ(tiny_tokens(*Tokenizer::load(dir), "Café Ab"),
            (std::vector<std::string>{"Café", "Ab"}));
  write_text_file(dir / "tokenizer_config.json", R"({"do_lower_case": true})");
  EXPECT_EQ(tiny_tokens(*Tokenizer::load(dir), "Café AB"),
            (std::vector<std::string>{"cafe", "[UNK]"}));
  write_text_file(dir / "tokenizer_config.json", R"({"do_lower_case": "yes"})");
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("\"do_lower_case\""));
}

// ---------------------------------------------------------------------------------------------
// Loading

TEST(WordPieceLoadTest, LoadFindsVocabTxt) {
  EXPECT_TRUE(Tokenizer::exists_in(wordpiece_dir()));
  const auto tok = Tokenizer::load(wordpiece_dir());
  EXPECT_EQ(tok->kind(), "wordpiece");
  EXPECT_EQ(tok->vocab_size(), 3000);
  expect_matches_golden(*tok, load_golden());
}

// tokenizer.json as Hugging Face saves BertWordPieceTokenizer, with either post-processor.
json bert_tokenizer_json(const fs::path& vocab_txt, bool template_processing) {
  std::ifstream in(vocab_txt);
  json vocab = json::object();
  std::string line;
  for (int id = 0; std::getline(in, line); ++id) vocab[line] = id;
  json added = json::array();
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    added.push_back({{"id", vocab.at(s)},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  json doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  doc["added_tokens"] = added;
  doc["normalizer"] = {{"type", "BertNormalizer"},
                       {"clean_text", true},
                       {"handle_chinese_chars", true},
                       {"strip_accents", nullptr},
                       {"lowercase", true}};
  doc["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  const int64_t cls = vocab.at("[CLS]");
  const int64_t sep = vocab.at("[SEP]");
  if (template_processing) {
    auto special = [](const char* id, int type) {
      return json{{"SpecialToken", {{"id", id}, {"type_id", type}}}};
    };
    auto seq = [](const char* id, int type) {
      return json{{"Sequence", {{"id", id}, {"type_id", type}}}};
    };
    doc["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)}},
        {"pair",
         {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)}},
        {"special_tokens",
         {{"[CLS]", {{"id", "[CLS]"}, {"ids", {cls}}, {"tokens", {"[CLS]"}}}},
          {"[SEP]", {{"id", "[SEP]"}, {"ids", {sep}}, {"tokens", {"[SEP]"}}}}}}};
  } else {
    doc["post_processor"] = {
        {"type", "BertProcessing"}, {"sep", {"[SEP]", sep}}, {"cls", {"[CLS]", cls}}};
  }
  doc["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
  doc["model"] = {{"type", "WordPiece"},
                  {"unk_token", "[UNK]"},
                  {"continuing_subword_prefix", "##"},
                  {"max_input_chars_per_word", 100},
                  {"vocab", vocab}};
  return doc;
}

TEST(WordPieceLoadTest, TokenizerJsonMatchesGoldenWithEitherPostProcessor) {
  const json golden = load_golden();
  for (const bool tp : {false, true}) {
    SCOPED_TRACE(tp ? "TemplateProcessing" : "BertProcessing");
    const fs::path dir = testing::scratch_dir(tp ? "json_tp" : "json_bp");
    write_text_file(dir / "tokenizer.json",
                    bert_tokenizer_json(wordpiece_dir() / "vocab.txt", tp).dump());
    const auto tok = Tokenizer::load(dir);
    ASSERT_EQ(tok->kind(), "wordpiece");
    expect_matches_golden(*tok, golden);
    const auto* wp = dynamic_cast<const WordPieceTokenizer*>(tok.get());
    ASSERT_NE(wp, nullptr);
    const json& pair = golden.at("pair_example");
    const auto enc =
        wp->encode_pair(pair.at("a").get<std::string>(), pair.at("b").get<std::string>());
    EXPECT_EQ(enc.input_ids, pair.at("input_ids").get<std::vector<int64_t>>());
    EXPECT_EQ(enc.token_type_ids, pair.at("token_type_ids").get<std::vector<int64_t>>());
  }
}

TEST(WordPieceLoadTest, UnsupportedTokenizerJsonPartsAreNamed) {
  const fs::path dir = testing::scratch_dir("json_bad");
  const fs::path vocab = wordpiece_dir() / "vocab.txt";
  json doc = bert_tokenizer_json(vocab, false);
  doc["pre_tokenizer"] = {{"type", "Whitespace"}};
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }),
              HasSubstr("pre_tokenizer is Whitespace, expected BertPreTokenizer"));

  doc = bert_tokenizer_json(vocab, false);
  doc["normalizer"] = {{"type", "NFKC"}};
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("normalizer is NFKC"));

  doc = bert_tokenizer_json(vocab, false);
  doc["model"]["unk_token"] = "<unk>";
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }),
              HasSubstr("model.unk_token \"<unk>\" is not in model.vocab"));

  doc = bert_tokenizer_json(vocab, true);
  doc["post_processor"]["single"].erase(0);
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("TemplateProcessing"));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(WordPieceErrorTest, MissingVocabNamesTheFolder) {
  const fs::path dir = testing::scratch_dir("novocab");
  EXPECT_FALSE(Tokenizer::exists_in(dir));
  std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr(dir.string()));
  EXPECT_THAT(msg, HasSubstr("vocab.txt"));
  msg = error_of([&] { WordPieceTokenizer::from_folder(dir); });
  EXPECT_THAT(msg, HasSubstr(dir.string()));
  EXPECT_THAT(msg, HasSubstr("no vocab.txt"));
  EXPECT_THAT(error_of([&] { WordPieceTokenizer::from_vocab_txt(dir / "vocab.txt"); }),
              HasSubstr((dir / "vocab.txt").string() + ": file not found"));
}

TEST(WordPieceErrorTest, VocabWithoutUnkOrFramingTokens) {
  const fs::path dir = testing::scratch_dir("nounk");
  write_text_file(dir / "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
  std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr((dir / "vocab.txt").string()));
  EXPECT_THAT(msg, HasSubstr("no \"[UNK]\" token"));

  write_text_file(dir / "vocab.txt", "[UNK]\n[SEP]\nhello\n");
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("no \"[CLS]\" token"));
  write_text_file(dir / "vocab.txt", "");
  EXPECT_THAT(error_of([&] { Tokenizer::load(dir); }), HasSubstr("vocabulary is empty"));
}

TEST(WordPieceErrorTest, CrlfVocabLoads) {
  const fs::path dir = testing::scratch_dir("crlf");
  write_text_file(dir / "vocab.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##s");
  const auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->vocab_size(), 6);
  EXPECT_EQ(tok->encode("Hellos"), (std::vector<int64_t>{2, 4, 5, 3}));
  EXPECT_EQ(tok->decode({2, 4, 5, 3}), "hellos");
}

}  // namespace
}  // namespace llmscope
