// BPE trainer: merges against a brute-force reference, frequency order and tie-breaking, GPT-2's
// file format (checked against GPT-2's own vocab.json), round trips through Tokenizer::load,
// determinism, special tokens and option errors.
#include "llmscope/bpe_trainer.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "golden.hpp"
#include "llmscope/error.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Merge = std::pair<std::string, std::string>;

using testing::error_of;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A fixed English-like corpus: a paragraph plus sentences drawn from a word list by a small LCG,
// so it is the same on every machine.
std::vector<std::string> corpus() {
  std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!\n"
      "In 1961, the jury said 42 of the 1,000 voters didn't vote.  Then they'll go home.\n",
      "She sells sea shells by the sea shore, and the shells she sells are sea shells.\n"};
  // clang-format off
  const std::vector<std::string> words = {
      "the", "of", "and", "to", "in", "that", "is", "was", "he", "for", "it", "with", "as", "his",
      "on", "be", "at", "by", "had", "not", "are", "but", "from", "or", "have", "an", "they",
      "which", "one", "you", "were", "her", "all", "she", "there", "would", "their", "we", "him",
      "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said", "what", "up",
      "its", "about", "into", "than", "them", "can", "only", "other", "new", "some", "could",
      "time", "these", "two", "may", "then", "do", "first", "any", "my", "now", "such", "like",
      "our", "over", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before",
      "must", "through", "back", "years", "where", "much", "your", "way", "well", "down", "should",
      "because", "each", "just", "those", "people", "Mr.", "how", "too", "little", "state", "good",
      "very", "make", "world", "still", "own", "see", "men", "work", "long", "get", "here",
      "between", "both", "life", "being", "under", "never", "day", "same", "another", "know",
      "while", "last", "might", "us", "great", "old", "year", "off", "come", "since", "against",
      "go", "came", "right", "used", "take", "three", "1961", "'s", "n't", ",", ";", "?", "--"};
  // clang-format on
  uint32_t state = 12345;
  auto next = [&](uint32_t n) {
    state = state * 1103515245u + 12345u;
    return (state >> 16) % n;
  };
  for (int s = 0; s < 40; ++s) {
    std::string text;
    for (int sentence = 0; sentence < 8; ++sentence) {
      const uint32_t length = 5 + next(12);
      for (uint32_t i = 0; i < length; ++i) {
        // Zipf-like: low indices (frequent words) are drawn more often.
        const uint32_t w = next(static_cast<uint32_t>(words.size())) %
                           (1 + next(static_cast<uint32_t>(words.size())));
        std::string word = words[w];
        if (i == 0) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
        text += (i == 0 ? "" : " ") + word;
      }
      text += next(4) == 0 ? ".\n" : ". ";
    }
    texts.push_back(text);
  }
  return texts;
}

// Brute-force BPE as the definition says: recount every pair of every word each step, merge the
// most frequent (ties: smallest left string, then right), until `max_new` tokens or count < min.
struct Reference {
  std::vector<Merge> merges;
  std::vector<int64_t> counts;
};
Reference reference_bpe(const std::vector<std::string>& texts, size_t max_new,
                        int64_t min_frequency) {
  const auto& chars = gpt2_byte_to_unicode();
  std::map<std::string, int64_t> word_counts;
  for (const auto& text : texts) {
    gpt2_pretokenize(text, [&](std::string_view piece) { ++word_counts[std::string(piece)]; });
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [bytes, count] : word_counts) {
    std::vector<std::string> symbols;
    for (const char ch : bytes) symbols.push_back(chars[static_cast<unsigned char>(ch)]);
    words.emplace_back(symbols, count);
  }
  Reference ref;
  std::set<std::string> added;
  while (added.size() < max_new) {
    std::map<Merge, int64_t> pairs;
    for (const auto& [symbols, count] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    }
    const Merge* best = nullptr;
    int64_t best_count = 0;
    for (const auto& [pair, count] : pairs) {  // in (left, right) order, so the first max wins ties
      if (count > best_count) {
        best = &pair;
        best_count = count;
      }
    }
    if (best == nullptr || best_count < min_frequency) break;
    const Merge merge = *best;
    ref.merges.push_back(merge);
    ref.counts.push_back(best_count);
    added.insert(merge.first + merge.second);
    for (auto& [symbols, count] : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == merge.first && symbols[i + 1] == merge.second) {
          merged.push_back(merge.first + merge.second);
          ++i;
        } else {
          merged.push_back(symbols[i]);
        }
      }
      symbols = merged;
    }
  }
  return ref;
}

BpeTrainOptions options_with(int vocab_size, int min_frequency = 2) {
  BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.min_frequency = min_frequency;
  return options;
}

TEST(BpeTrainer, MergesMatchABruteForceReference) {
  const auto texts = corpus();
  const auto result = train_bpe(texts, options_with(256 + 300 + 1));
  const auto ref = reference_bpe(texts, 300, 2);
  ASSERT_FALSE(ref.merges.empty());
  EXPECT_EQ(result.merges, ref.merges);
  EXPECT_EQ(result.merge_counts, ref.counts);
}

TEST(BpeTrainer, FirstMergesFollowFrequencyThenTieOrderThenMinFrequency) {
  // Pre-tokens: "ab" once, " ab" 5 times, " cd" 3 times, " xy" once.
  const std::vector<std::string> texts = {"ab ab ab ab ab ab cd cd cd xy"};
  auto result = train_bpe(texts, options_with(1000));
  // (a,b) 6, then (Ġ,ab) 5; (c,d) and (Ġ,c) tie at 3 and "c" sorts before "Ġ"; (x,y) occurs once.
  EXPECT_EQ(result.merges,
            (std::vector<Merge>{{"a", "b"}, {"\xC4\xA0", "ab"}, {"c", "d"}, {"\xC4\xA0", "cd"}}));
  EXPECT_EQ(result.merge_counts, (std::vector<int64_t>{6, 5, 3, 3}));
  EXPECT_EQ(result.pretokens, 10);
  EXPECT_EQ(result.distinct_pretokens, 4);

  result = train_bpe(texts, options_with(1000, 1));
  ASSERT_EQ(result.merges.size(), 6u);
  EXPECT_EQ(result.merges[4], Merge("x", "y"));
  EXPECT_EQ(result.merges[5], Merge("\xC4\xA0", "xy"));
}

TEST(BpeTrainer, MergeCountsNeverIncreaseAndVocabSizeIsExact) {
  const auto result = train_bpe(corpus(), options_with(600));
  ASSERT_EQ(result.vocab.size(), 600u);
  ASSERT_EQ(result.merges.size(), result.merge_counts.size());
  for (size_t i = 1; i < result.merge_counts.size(); ++i) {
    EXPECT_LE(result.merge_counts[i], result.merge_counts[i - 1]) << "merge " << i;
  }
  EXPECT_GE(result.merge_counts.back(), 2);
  EXPECT_EQ(result.vocab_ids().size(), result.vocab.size());  // no token twice
  // Every merge's token is in the vocabulary, after both of its parts.
  const auto ids = result.vocab_ids();
  for (const auto& [left, right] : result.merges) {
    ASSERT_TRUE(ids.count(left + right)) << left << " " << right;
    EXPECT_GT(ids.at(left + right), std::max(ids.at(left), ids.at(right)));
  }
}

TEST(BpeTrainer, StopsWhenNoPairIsFrequentEnough) {
  const auto result = train_bpe({"abc xyz"}, options_with(1000));
  EXPECT_TRUE(result.merges.empty());  // every pair occurs once
  EXPECT_EQ(result.vocab.size(), 257u);
}

TEST(BpeTrainer, SavedFilesAreGpt2FormatAndLoadBack) {
  const auto dir = testing::scratch_dir("bpe_trainer_format") / "nested" / "tok";
  const auto result = train_bpe(corpus(), options_with(400));
  save_bpe(result, dir);

  const std::string vocab = read(dir / "vocab.json");
  const std::string golden = read(testing::golden_path("tokenizers/gpt2/vocab.json"));
  // The 256 byte tokens are GPT-2's, written exactly as GPT-2's vocab.json writes them.
  const std::string last_byte = "\"\\u0143\": 255, ";
  ASSERT_NE(golden.find(last_byte), std::string::npos);
  const size_t prefix = golden.find(last_byte) + last_byte.size();
  EXPECT_EQ(vocab.substr(0, prefix), golden.substr(0, prefix));
  EXPECT_THAT(vocab, ::testing::EndsWith(", \"<|endoftext|>\": 399}"));
  EXPECT_EQ(nlohmann::json::parse(vocab).size(), 400u);

  const std::string merges = read(dir / "merges.txt");
  EXPECT_EQ(merges.rfind("#version: 0.2\n", 0), 0u);
  EXPECT_EQ(std::count(merges.begin(), merges.end(), '\n'),
            static_cast<long>(result.merges.size()) + 1);
  EXPECT_THAT(merges,
              HasSubstr("\n" + result.merges[0].first + " " + result.merges[0].second + "\n"));

  const auto tokenizer = Tokenizer::load(dir);
  EXPECT_EQ(tokenizer->kind(), "bpe");
  EXPECT_EQ(tokenizer->vocab_size(), 400);
  EXPECT_EQ(tokenizer->special_token_id("<|endoftext|>"), 399);
  EXPECT_EQ(tokenizer->encode("a<|endoftext|>", EncodeOptions{true}).back(), 399);
  // The learned merges are used: " the" is one token, as common as it is in the corpus.
  const auto ids = result.vocab_ids();
  ASSERT_TRUE(ids.count("\xC4\xA0the"));
  EXPECT_EQ(tokenizer->encode(" the"), (std::vector<int64_t>{ids.at("\xC4\xA0the")}));
}

TEST(BpeTrainer, TrainedTokenizerRoundTripsAnyText) {
  auto texts = corpus();
  texts.push_back(
      "caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
      "\xF0\x9F\x98\x80\xF0\x9F\x91\x8D tabs\t\tand\n\nnewlines");
  const auto dir = testing::scratch_dir("bpe_trainer_roundtrip");
  save_bpe(train_bpe(texts, options_with(700)), dir);
  const auto tokenizer = Tokenizer::load(dir);

  std::vector<std::string> inputs = texts;
  const std::vector<std::string> unseen = {
      "",
      " ",
      "      leading and trailing spaces      ",
      "line one\nline two\r\n\r\nline four\n",
      "\t\tindented\ttabs\t",
      "digits 0123456789 3.14159 -42 1e10 2024-01-01",
      "punctuation!?.,;:'\"()[]{}<>@#$%^&*_+=~`|\\/",
      "emoji "
      "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0"
      "\x9F\x91\xA7 done",
      "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80, "
      "\xCE\xB3\xCE\xB5\xCE\xB9\xCE\xAC, \xD8\xB3\xD9\x84\xD8\xA7\xD9\x85",
      "zyxwvutsrq qqqq xkcd ZZZZ never seen in training",
      "I'm sure they'd've said it's 'quoted' and you'll see",
      "<|endoftext|> mentioned as plain text",
      std::string(1, '\0') + "control\x01\x7F chars",
  };
  inputs.insert(inputs.end(), unseen.begin(), unseen.end());
  for (const auto& text : inputs) {
    const auto ids = tokenizer->encode(text);
    for (const auto id : ids) ASSERT_LT(id, 700) << text;
    EXPECT_EQ(tokenizer->decode(ids), text);
  }
  // Merges shorten the corpus: far fewer tokens than bytes.
  const auto ids = tokenizer->encode(texts[2]);
  EXPECT_LT(ids.size() * 2, texts[2].size());
}

TEST(BpeTrainer, SameInputGivesByteIdenticalFiles) {
  const auto texts = corpus();
  const auto a = testing::scratch_dir("bpe_trainer_det_a");
  const auto b = testing::scratch_dir("bpe_trainer_det_b");
  save_bpe(train_bpe(texts, options_with(500)), a);
  // The same pre-tokens counted in another order (another hash layout) give the same files.
  PretokenCounts counts;
  counts.reserve(100000);
  for (auto it = texts.rbegin(); it != texts.rend(); ++it)
    count_pretokens(*it, options_with(500), counts);
  save_bpe(train_bpe_from_counts(counts, options_with(500)), b);
  for (const char* name : {"vocab.json", "merges.txt"}) {
    const std::string first = read(a / name);
    EXPECT_FALSE(first.empty());
    EXPECT_EQ(first, read(b / name)) << name;
  }
}

TEST(BpeTrainer, SpecialTokensComeLastAndAreNotLearned) {
  BpeTrainOptions options = options_with(400);
  options.special_tokens = {"<|endoftext|>", "<|pad|>"};
  std::vector<std::string> texts;
  for (const auto& text : corpus()) texts.push_back(text + "<|endoftext|><|pad|>");
  const auto result = train_bpe(texts, options);
  ASSERT_EQ(result.vocab.size(), 400u);
  EXPECT_EQ(result.vocab[398], "<|endoftext|>");
  EXPECT_EQ(result.vocab[399], "<|pad|>");
  // Cut out of the text before counting, so no piece of them was learned.
  for (size_t id = 256; id < 398; ++id) {
    EXPECT_EQ(result.vocab[id].find('|'), std::string::npos) << result.vocab[id];
  }
}

TEST(BpeTrainer, MergeThatWouldSpellASpecialTokenIsSkipped) {
  BpeTrainOptions options = options_with(1000);
  options.special_tokens = {"\xC4\xA0hello"};  // how " hello" is spelled in the vocabulary
  const auto result = train_bpe({"hello hello hello hello hello"}, options);
  EXPECT_EQ(result.vocab.back(), "\xC4\xA0hello");
  EXPECT_EQ(result.vocab_ids().size(), result.vocab.size());
  const auto dir = testing::scratch_dir("bpe_trainer_special_spelling");
  save_bpe(result, dir);
  const auto tokenizer = Tokenizer::load(dir);
  EXPECT_EQ(tokenizer->decode(tokenizer->encode("hello hello")), "hello hello");
}

TEST(BpeTrainer, BadOptionsAndInputAreClearErrors) {
  EXPECT_THAT(error_of([] { train_bpe({"abc"}, options_with(256)); }),
              HasSubstr("vocab_size 256 is too small: expected at least 257 (the 256 byte tokens + "
                        "1 special token)"));
  BpeTrainOptions two = options_with(257);
  two.special_tokens = {"<a>", "<b>"};
  EXPECT_THAT(error_of([&] { validate_bpe_train_options(two); }),
              HasSubstr("expected at least 258"));
  EXPECT_THAT(error_of([] { train_bpe({"abc"}, options_with(300, 0)); }),
              HasSubstr("min_frequency is 0, expected at least 1"));
  BpeTrainOptions bad = options_with(300);
  bad.special_tokens = {"<s>", "<s>"};
  EXPECT_THAT(error_of([&] { train_bpe({"abc"}, bad); }), HasSubstr("\"<s>\" is listed twice"));
  bad.special_tokens = {""};
  EXPECT_THAT(error_of([&] { train_bpe({"abc"}, bad); }), HasSubstr("empty string"));
  bad.special_tokens = {"a"};
  EXPECT_THAT(error_of([&] { train_bpe({"abc"}, bad); }),
              HasSubstr("already one of the 256 byte tokens"));
  EXPECT_THAT(error_of([] {
                train_bpe({"fine", "bad \xFF byte"}, options_with(300));
              }),
              HasSubstr("texts[1]: text is not valid UTF-8 at byte 4"));
  EXPECT_THAT(error_of([] { gpt2_pretokenize("\xC3", [](std::string_view) {}); }),
              HasSubstr("not valid UTF-8 at byte 0"));
}

TEST(BpeTrainer, PretokenizerIsGpt2s) {
  std::vector<std::string> pieces;
  gpt2_pretokenize("Hello world's  42!!\n\n  x",
                   [&](std::string_view p) { pieces.emplace_back(p); });
  EXPECT_EQ(pieces,
            (std::vector<std::string>{"Hello", " world", "'s", " ", " 42", "!!", "\n\n ", " x"}));
  EXPECT_EQ(gpt2_byte_to_unicode()[' '], "\xC4\xA0");  // Ġ
  EXPECT_EQ(gpt2_byte_to_unicode()['a'], "a");
}

}  // namespace
}  // namespace llmscope
