// BPE tokenizer.json files beyond byte level: the SentencePiece conversions of Llama 2 and
// Mistral (legacy and prepend_scheme "first") checked against the SentencePiece library's own
// goldens, every pre-tokenizer step and delimiter behaviour, the decoder chain, the template
// that LlamaTokenizerFast rebuilds from tokenizer_config.json, and the errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "golden.hpp"
#include "llmscope/tokenizer.hpp"
#include "tokenizer_golden.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::ElementsAre;
using testing::error_of;
using ::testing::HasSubstr;
using testing::write_text_file;

fs::path converted(const std::string& variant) {
  return testing::golden_path("tokenizers/sentencepiece-converted/" + variant);
}

// A copy of a converted folder, with its tokenizer_config.json replaced by `config`.
fs::path converted_copy(const std::string& name, const std::string& variant,
                        const std::string& config) {
  const fs::path dir = testing::scratch_dir(name);
  fs::copy_file(converted(variant) / "tokenizer.json", dir / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  write_text_file(dir / "tokenizer_config.json", config);
  return dir;
}

TEST(SentencePieceConversionTest, LegacyConversionMatchesTheLibrarysGoldens) {
  const auto tok = Tokenizer::load(converted("legacy"));
  EXPECT_EQ(tok->kind(), "bpe");
  EXPECT_EQ(tok->vocab_size(), 4000);
  testing::expect_golden_cases(*tok, "tokenizers/sentencepiece_golden.json", 501, {}, true);
}

// Metaspace does not prepend "▁" to a text that already starts with a space (HF's rule), so
// " x" encodes as SentencePiece's "x" and "  x" as its " x"; every other text as the library.
TEST(SentencePieceConversionTest, MetaspaceConversionMatchesTheGoldensButForALeadingSpace) {
  const auto first = Tokenizer::load(converted("first"));
  const auto legacy = Tokenizer::load(converted("legacy"));
  std::ifstream in(testing::golden_path("tokenizers/sentencepiece_golden.json"));
  const json cases = json::parse(in).at("cases");
  ASSERT_EQ(cases.size(), 501u);
  int mismatches = 0;
  int leading = 0;
  for (const auto& c : cases) {
    const std::string text = c.at("text");
    auto expected = c.at("ids").get<std::vector<int64_t>>();
    if (text == " ") {
      expected = {1, 3923};  // "▁" alone (SentencePiece gives nothing for an empty text)
      ++leading;
    } else if (!text.empty() && text.front() == ' ') {
      expected = legacy->encode(text.substr(1));
      ++leading;
    }
    if (first->encode(text) != expected && mismatches++ == 0) {
      ADD_FAILURE() << "first mismatch: " << json(text).dump();
    }
    EXPECT_EQ(first->decode_skipping_special(c.at("ids").get<std::vector<int64_t>>()),
              c.at("decoded").get<std::string>());
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(leading, 5);
  EXPECT_EQ(first->encode(" Hello world"), first->encode("Hello world"));
}

TEST(SentencePieceConversionTest, TextAfterASpecialTokenGetsThePrefixOnlyInLegacyFiles) {
  const auto sp = Tokenizer::load(testing::golden_path("tokenizers/sentencepiece"));
  const auto legacy = Tokenizer::load(converted("legacy"));
  const auto first = Tokenizer::load(converted("first"));
  EncodeOptions hf;
  hf.allow_special = true;
  // legacy (Prepend + Replace normalizer) is raw SentencePiece on each stretch of text.
  EXPECT_EQ(legacy->encode("Hi<s>there", hf), sp->encode("Hi<s>there", hf));
  EXPECT_EQ(legacy->encode("<s>there", hf), sp->encode("<s>there", hf));
  // prepend_scheme "first": only the stretch that starts the input gets "▁".
  const auto ids = first->encode("Hi<s>there", hf);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids[0], 1);  // the template's BOS
  const auto split = std::find(ids.begin() + 1, ids.end(), 1);
  ASSERT_NE(split, ids.end());
  EXPECT_EQ(first->token_text(*(split + 1)).front(), 't');
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), split), legacy->encode("Hi", hf));
  EXPECT_EQ(first->decode_skipping_special(ids), "Hithere");
  EXPECT_EQ(legacy->decode_skipping_special(legacy->encode("Hi<s>there", hf)), "Hi there");
  const auto at_start = first->encode("<s>there", hf);
  EXPECT_EQ(first->token_text(at_start[2]).front(), 't');
}

TEST(SentencePieceConversionTest, TokenTextsAndByteFallbackDecoding) {
  const auto tok = Tokenizer::load(converted("legacy"));
  EncodeOptions bare;
  bare.add_special_tokens = false;
  const auto hello = tok->encode("Hello world", bare);
  EXPECT_EQ(hello, (std::vector<int64_t>{436, 307, 3927, 889}));
  std::string spelled;
  for (const int64_t id : hello) spelled += tok->token_text(id);
  EXPECT_EQ(spelled, " Hello world");  // alone, a token keeps its space
  const auto snow = tok->encode("\xE2\x98\x83", bare);
  ASSERT_GE(snow.size(), 3u);
  EXPECT_EQ(tok->decode(snow), "\xE2\x98\x83");
  EXPECT_EQ(tok->token_text(snow.back()), "\xEF\xBF\xBD");
  // A byte run that is not UTF-8 shows one U+FFFD per byte token, as HF's ByteFallback does.
  EXPECT_EQ(tok->decode({snow.back(), snow.back()}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  std::vector<int64_t> framed = {1};
  framed.insert(framed.end(), hello.begin(), hello.end());
  EXPECT_EQ(tok->decode(framed), "<s> Hello world");
  EXPECT_EQ(tok->decode_skipping_special(framed), "Hello world");
}

TEST(SentencePieceConversionTest, LlamaFastClassesRebuildTheTemplateFromTheConfig) {
  const auto no_bos_eos = Tokenizer::load(
      converted_copy("llama_fast", "legacy",
                     R"({"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": false,
          "add_eos_token": true, "eos_token": {"content": "</s>", "special": true}})"));
  EXPECT_EQ(no_bos_eos->encode("Hello world"), (std::vector<int64_t>{436, 307, 3927, 889, 2}));
  // Other classes keep tokenizer.json's own template.
  const auto other = Tokenizer::load(
      converted_copy("other_fast", "legacy",
                     R"({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false})"));
  EXPECT_EQ(other->encode("Hello world"), (std::vector<int64_t>{1, 436, 307, 3927, 889}));
  const std::string msg = error_of([] {
    Tokenizer::load(converted_copy(
        "bad_eos", "legacy",
        R"({"tokenizer_class": "LlamaTokenizer", "add_eos_token": true, "eos_token": "<end>"})"));
  });
  EXPECT_THAT(msg, HasSubstr("tokenizer_config.json"));
  EXPECT_THAT(msg, HasSubstr("eos_token \"<end>\" is not a token"));
}

TEST(SentencePieceConversionTest, TokenizerJsonWinsOverTokenizerModelAsInHuggingFace) {
  const fs::path dir = converted_copy("both", "first", "{}");
  fs::copy_file(testing::golden_path("tokenizers/sentencepiece/tokenizer.model"),
                dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  EXPECT_EQ(Tokenizer::load(dir)->kind(), "bpe");
  // A tokenizer.json llmscope does not read gives way to the model file beside it.
  write_text_file(dir / "tokenizer.json",
                  R"({"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}})");
  EXPECT_EQ(Tokenizer::load(dir)->kind(), "sentencepiece");
  fs::remove(dir / "tokenizer.model");
  const std::string msg = error_of([&] { Tokenizer::load(dir); });
  EXPECT_THAT(msg, HasSubstr("a Unigram model is not supported"));
  EXPECT_THAT(msg, HasSubstr("tokenizer.model"));
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer steps, seen through a vocabulary that holds every substring of the texts as one
// token with ignore_merges: each piece the pre-tokenizer makes comes back as one token.

std::vector<std::string> pieces(const json& pre_tokenizer, const std::string& text,
                                const std::vector<std::string>& forms = {}) {
  json vocab = json::object();
  int64_t next = 0;
  auto add_substrings = [&](const std::string& s) {  // on character boundaries
    std::vector<size_t> starts;
    for (size_t i = 0; i <= s.size(); ++i) {
      if (i == s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
    }
    for (size_t a = 0; a < starts.size(); ++a) {
      for (size_t b = a + 1; b < starts.size(); ++b) {
        const std::string sub = s.substr(starts[a], starts[b] - starts[a]);
        if (!vocab.contains(sub)) vocab[sub] = next++;
      }
    }
  };
  add_substrings(text);
  for (const auto& f : forms) add_substrings(f);
  json doc = {
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}, {"ignore_merges", true}}},
      {"pre_tokenizer", pre_tokenizer},
      {"decoder", nullptr}};
  const fs::path dir = testing::scratch_dir("pieces");
  write_text_file(dir / "tokenizer.json", doc.dump());
  const auto tok = Tokenizer::load(dir);
  std::vector<std::string> out;
  for (const int64_t id : tok->encode(text)) out.push_back(tok->token_text(id));
  return out;
}

json split(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", R"(\w+|[^\w\s]+)"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

TEST(PreTokenizerTest, SplitBehavioursAsHuggingFaceDefinesThem) {
  // The cases of tokenizers' own pre_tokenizers/split.rs test, matches inverted.
  const std::string text = "How are you doing?";
  EXPECT_THAT(pieces(split("Removed", true), text), ElementsAre("How", "are", "you", "doing", "?"));
  EXPECT_THAT(pieces(split("Isolated", true), text),
              ElementsAre("How", " ", "are", " ", "you", " ", "doing", "?"));
  EXPECT_THAT(pieces(split("MergedWithPrevious", true), text),
              ElementsAre("How ", "are ", "you ", "doing", "?"));
  EXPECT_THAT(pieces(split("MergedWithNext", true), text),
              ElementsAre("How", " are", " you", " doing", "?"));
  EXPECT_THAT(pieces(split("Contiguous", true), text),
              ElementsAre("How", " ", "are", " ", "you", " ", "doing?"));
  // Not inverted: the words are the matches.
  EXPECT_THAT(pieces(split("Removed"), text), ElementsAre(" ", " ", " "));
  const json dash = {
      {"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "MergedWithPrevious"}};
  EXPECT_THAT(pieces(dash, "The-final--countdown"),
              ElementsAre("The-", "final-", "-", "countdown"));
  json next = dash;
  next["behavior"] = "MergedWithNext";
  EXPECT_THAT(pieces(next, "The-final--countdown"),
              ElementsAre("The", "-final", "-", "-countdown"));
  next["behavior"] = "Contiguous";
  EXPECT_THAT(pieces(next, "The-final--countdown"),
              ElementsAre("The", "-", "final", "--", "countdown"));
}

TEST(PreTokenizerTest, NamedStepsAndSequences) {
  EXPECT_THAT(pieces({{"type", "Digits"}, {"individual_digits", true}}, "ab123"),
              ElementsAre("ab", "1", "2", "3"));
  EXPECT_THAT(pieces({{"type", "Digits"}, {"individual_digits", false}}, "ab123c"),
              ElementsAre("ab", "123", "c"));
  EXPECT_THAT(pieces({{"type", "Punctuation"}}, "Hey, you!"), ElementsAre("Hey", ",", " you", "!"));
  EXPECT_THAT(pieces({{"type", "WhitespaceSplit"}}, "Hey  you\tthere"),
              ElementsAre("Hey", "you", "there"));
  EXPECT_THAT(pieces({{"type", "Whitespace"}}, "Hey, you!!"), ElementsAre("Hey", ",", "you", "!!"));
  EXPECT_THAT(pieces({{"type", "BertPreTokenizer"}}, "Hey, you!!"),
              ElementsAre("Hey", ",", "you", "!", "!"));
  EXPECT_THAT(pieces({{"type", "CharDelimiterSplit"}, {"delimiter", "|"}}, "a|b||c"),
              ElementsAre("a", "b", "c"));
  const std::string mark = "\xE2\x96\x81";
  EXPECT_THAT(pieces({{"type", "Metaspace"}, {"replacement", mark}, {"prepend_scheme", "always"}},
                     "Hey you", {mark + "Hey" + mark + "you"}),
              ElementsAre(mark + "Hey", mark + "you"));
  EXPECT_THAT(pieces({{"type", "Metaspace"},
                      {"replacement", mark},
                      {"prepend_scheme", "never"},
                      {"split", false}},
                     "Hey you", {"Hey" + mark + "you"}),
              ElementsAre("Hey" + mark + "you"));
  // Falcon-style: digits split out before the byte alphabet, whose pieces are then in it.
  const std::string space = gpt2_byte_to_unicode()[' '];
  const json seq = {{"type", "Sequence"},
                    {"pretokenizers",
                     {{{"type", "Digits"}, {"individual_digits", true}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  EXPECT_THAT(pieces(seq, "ab 12", {"ab" + space}), ElementsAre("ab ", "1", "2"));
}

TEST(PreTokenizerTest, StepsAndDecodersLlmscopeDoesNotRunAreRefused) {
  const fs::path dir = testing::scratch_dir("refused");
  auto load_error = [&](const json& pre, const json& decoder) {
    const json doc = {
        {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}},
        {"pre_tokenizer", pre},
        {"decoder", decoder}};
    write_text_file(dir / "tokenizer.json", doc.dump());
    return error_of([&] { Tokenizer::load(dir); });
  };
  EXPECT_THAT(load_error({{"type", "UnicodeScripts"}}, nullptr),
              HasSubstr("pre_tokenizer UnicodeScripts is not supported"));
  EXPECT_THAT(load_error(split("Sideways"), nullptr),
              HasSubstr("behavior \"Sideways\" is not one of"));
  EXPECT_THAT(load_error({{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}}, nullptr),
              HasSubstr("prepend_scheme \"sometimes\""));
  EXPECT_THAT(load_error({{"type", "Split"}, {"pattern", {{"Regex", "("}}}}, nullptr),
              HasSubstr("does not compile"));
  EXPECT_THAT(load_error(nullptr, {{"type", "WordPiece"}}),
              HasSubstr("decoder WordPiece is not supported"));
  EXPECT_THAT(load_error(nullptr, {{"type", "Strip"}, {"content", " "}, {"start", -1}}),
              HasSubstr("start is -1"));
  // A character the vocabulary lacks, with neither byte fallback nor unk, names itself.
  write_text_file(
      dir / "tokenizer.json",
      json({{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}}}, {"merges", json::array()}}}})
          .dump());
  const auto tok = Tokenizer::load(dir);
  EXPECT_EQ(tok->encode("aa"), (std::vector<int64_t>{0, 0}));
  EXPECT_THAT(error_of([&] { tok->encode("ab"); }), HasSubstr("cannot encode \"b\""));
}

TEST(PreTokenizerTest, UnknownCharactersFuseIntoOneUnkWhenAsked) {
  const fs::path dir = testing::scratch_dir("unk");
  json doc = {{"model",
               {{"type", "BPE"},
                {"vocab", {{"<unk>", 0}, {"a", 1}}},
                {"merges", json::array()},
                {"unk_token", "<unk>"},
                {"fuse_unk", true}}}};
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_EQ(Tokenizer::load(dir)->encode("xya\xC3\xA9z"), (std::vector<int64_t>{0, 1, 0}));
  doc["model"]["fuse_unk"] = false;
  write_text_file(dir / "tokenizer.json", doc.dump());
  EXPECT_EQ(Tokenizer::load(dir)->encode("xya\xC3\xA9z"), (std::vector<int64_t>{0, 0, 1, 0, 0}));
  // No decoder: Hugging Face joins the tokens with spaces.
  EXPECT_EQ(Tokenizer::load(dir)->decode({1, 0, 1}), "a <unk> a");
}

}  // namespace
}  // namespace llmscope
