// The `corpus` module: the POS-tagged Brown corpus as Lua tables (categories, documents,
// sentences, words, tags), its plain-text view, word lists by tag, and reading any UTF-8 text
// file. Loaded corpora are shared: corpus.brown() twice reads the files once.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "binding.hpp"
#include "llmscope/corpus.hpp"
#include "llmscope/error.hpp"

namespace llmscope::lua {
namespace {

inline constexpr const char* kCorpusType = "llmscope.Corpus";

struct CorpusBox {
  std::shared_ptr<const Corpus> corpus;
};

const Corpus& check_corpus(lua_State* L, int arg) {
  return *check_userdata<CorpusBox>(L, arg, kCorpusType, "corpus").corpus;
}

// One loaded copy per folder while any Lua value holds it.
std::shared_ptr<const Corpus> shared_brown(const std::filesystem::path& dir) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<const Corpus>> loaded;
  std::error_code ec;
  std::filesystem::path key = std::filesystem::weakly_canonical(dir, ec);
  if (ec) key = dir;
  std::lock_guard<std::mutex> lock(mutex);
  std::weak_ptr<const Corpus>& slot = loaded[key.string()];
  if (std::shared_ptr<const Corpus> corpus = slot.lock()) return corpus;
  auto corpus = std::make_shared<const Corpus>(load_brown(dir));
  slot = corpus;
  return corpus;
}

// ---- arguments ----

// opts[key] as a list of strings: a string or an array of strings; empty when absent.
std::vector<std::string> string_list_option(lua_State* L, int opts, const char* key) {
  std::vector<std::string> values;
  if (is_none_or_nil(L, opts)) return values;
  if (lua_type(L, opts) != LUA_TTABLE) type_error(L, opts, "table of options");
  const int type = lua_getfield(L, opts, key);
  if (type == LUA_TSTRING) {
    values.emplace_back(lua_tostring(L, -1));
  } else if (type == LUA_TTABLE) {
    const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = 1; i <= n; ++i) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
        lua_pop(L, 2);
        throw ArgError(opts, "option '" + std::string(key) +
                                 "' must be a string or an array of "
                                 "strings, entry " +
                                 std::to_string(i) + " is not a string");
      }
      values.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  } else if (type != LUA_TNIL) {
    std::string got = type_name(L, -1);
    lua_pop(L, 1);
    throw ArgError(opts, "option '" + std::string(key) +
                             "' must be a string or an array of "
                             "strings, got " +
                             got);
  }
  lua_pop(L, 1);
  return values;
}

CorpusSelection selection_option(lua_State* L, int opts) {
  CorpusSelection selection;
  selection.categories = string_list_option(L, opts, "category");
  selection.documents = string_list_option(L, opts, "document");
  return selection;
}

// The selected documents of the corpus at `self`; options `category` and `document` only.
std::vector<const CorpusDocument*> selected(lua_State* L, int self, int opts) {
  const Corpus& corpus = check_corpus(L, self);
  check_option_keys(L, opts, {"category", "document"});
  return corpus.select(selection_option(L, opts));
}

// ---- results ----

void push_string(lua_State* L, const std::string& s) { lua_pushlstring(L, s.data(), s.size()); }

void push_strings(lua_State* L, const std::vector<std::string>& values) {
  lua_createtable(L, static_cast<int>(values.size()), 0);
  lua_Integer i = 0;
  for (const std::string& v : values) {
    push_string(L, v);
    lua_rawseti(L, -2, ++i);
  }
}

void push_ids(lua_State* L, const std::vector<const CorpusDocument*>& documents) {
  lua_createtable(L, static_cast<int>(documents.size()), 0);
  lua_Integer i = 0;
  for (const CorpusDocument* d : documents) {
    push_string(L, d->id);
    lua_rawseti(L, -2, ++i);
  }
}

size_t sentence_count(const std::vector<const CorpusDocument*>& documents) {
  size_t n = 0;
  for (const CorpusDocument* d : documents) n += d->sentences.size();
  return n;
}

size_t word_count(const std::vector<const CorpusDocument*>& documents) {
  size_t n = 0;
  for (const CorpusDocument* d : documents) n += d->word_count();
  return n;
}

enum class Field { kWord, kTag, kPair };

void push_word(lua_State* L, const TaggedWord& w, Field field) {
  if (field == Field::kWord) {
    push_string(L, w.word);
  } else if (field == Field::kTag) {
    push_string(L, w.tag);
  } else {
    lua_createtable(L, 2, 0);
    push_string(L, w.word);
    lua_rawseti(L, -2, 1);
    push_string(L, w.tag);
    lua_rawseti(L, -2, 2);
  }
}

// Sentences as arrays of words / of {word, tag}.
int push_sentences(lua_State* L, const std::vector<const CorpusDocument*>& documents, Field field) {
  lua_createtable(L, static_cast<int>(sentence_count(documents)), 0);
  lua_Integer i = 0;
  for (const CorpusDocument* d : documents) {
    for (const TaggedSentence& sentence : d->sentences) {
      lua_createtable(L, static_cast<int>(sentence.size()), 0);
      lua_Integer j = 0;
      for (const TaggedWord& w : sentence) {
        push_word(L, w, field);
        lua_rawseti(L, -2, ++j);
      }
      lua_rawseti(L, -2, ++i);
    }
  }
  return 1;
}

// Every word (or tag) of the selection in one flat array.
int push_flat(lua_State* L, const std::vector<const CorpusDocument*>& documents, Field field) {
  lua_createtable(L, static_cast<int>(word_count(documents)), 0);
  lua_Integer i = 0;
  for (const CorpusDocument* d : documents) {
    for (const TaggedSentence& sentence : d->sentences) {
      for (const TaggedWord& w : sentence) {
        push_word(L, w, field);
        lua_rawseti(L, -2, ++i);
      }
    }
  }
  return 1;
}

// ---- corpus.brown, corpus.read_text ----

// corpus.brown([dir]) -> corpus
int c_brown(lua_State* L) {
  std::filesystem::path dir =
      is_none_or_nil(L, 1) ? default_corpus_dir() : std::filesystem::path(check_string(L, 1));
  push_userdata<CorpusBox>(L, kCorpusType, CorpusBox{shared_brown(dir)});
  return 1;
}

// corpus.read_text(path) -> string
int c_read_text(lua_State* L) {
  push_string(L, read_text_file(check_string(L, 1)));
  return 1;
}

// corpus.detokenize(words) -> string
int c_detokenize(lua_State* L) {
  check_table(L, 1);
  std::vector<std::string> words;
  const lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 1));
  for (lua_Integer i = 1; i <= n; ++i) {
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING) {
      lua_pop(L, 1);
      throw ArgError(1,
                     "array of strings expected, entry " + std::to_string(i) + " is not a string");
    }
    words.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  push_string(L, detokenize(words));
  return 1;
}

// ---- words_with_tag ----

// `pattern` anchored at both ends, so 'nn' means the tag nn and not nns or fw-nn.
std::string anchored(const std::string& pattern) {
  std::string result = pattern;
  if (result.empty() || result.front() != '^') result.insert(result.begin(), '^');
  // Trailing '%'s: an odd run escapes the last character (or, at the end, is malformed and left
  // for Lua to report rather than turned into a valid "%$").
  auto odd_escapes_before = [&](size_t end) {
    size_t n = 0;
    for (; end > 1 && result[end - 1] == '%'; --end) ++n;
    return n % 2 == 1;
  };
  if (odd_escapes_before(result.size())) return result;
  if (result.size() > 1 && result.back() == '$' && !odd_escapes_before(result.size() - 1))
    return result;
  return result + '$';
}

// words, counts = words_with_tag(corpus, pattern, opts): distinct words whose tag matches the
// Lua pattern, most frequent first.
int push_words_with_tag(lua_State* L, const Corpus& corpus, int pattern_arg, int opts,
                        const std::vector<const char*>& extra_keys) {
  const std::string pattern = check_string(L, pattern_arg);
  std::vector<const char*> keys = {"category",  "document", "lower",
                                   "min_count", "limit",    "modifiers"};
  keys.insert(keys.end(), extra_keys.begin(), extra_keys.end());
  check_option_keys(L, opts, keys);
  std::vector<const CorpusDocument*> documents = corpus.select(selection_option(L, opts));
  WordCountOptions options;
  options.lower = opt_boolean(L, opts, "lower").value_or(false);
  options.base_tags = !opt_boolean(L, opts, "modifiers").value_or(false);
  options.min_count = opt_integer(L, opts, "min_count").value_or(1);
  const int64_t limit = opt_integer(L, opts, "limit").value_or(0);
  if (limit < 0) throw ArgError(opts, "option 'limit' must be >= 0 (0: no limit)");

  // Tags are matched with Lua's own string.find, once per distinct tag.
  const std::string lua_pattern = anchored(pattern);
  if (lua_getglobal(L, "string") != LUA_TTABLE || lua_getfield(L, -1, "find") != LUA_TFUNCTION)
    throw Error("corpus.words_with_tag needs Lua's string.find");
  lua_remove(L, -2);
  const int find = lua_gettop(L);
  auto find_in = [&](std::string_view tag, const std::string& with) {
    lua_pushvalue(L, find);
    lua_pushlstring(L, tag.data(), tag.size());
    push_string(L, with);
    try {
      pcall(L, 2, 1);
    } catch (const LuaError& e) {
      throw ArgError(pattern_arg, "bad tag pattern '" + pattern + "': " + e.what());
    }
    const bool found = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return found;
  };
  auto matches = [&](std::string_view tag) { return find_in(tag, lua_pattern); };
  // The user's own pattern first: anchoring can hide a malformed one ("nn%" + "$").
  find_in("", pattern);
  std::vector<WordCount> counts = words_with_tag(documents, matches, options);
  lua_settop(L, find - 1);
  if (limit > 0 && counts.size() > static_cast<size_t>(limit))
    counts.resize(static_cast<size_t>(limit));

  lua_createtable(L, static_cast<int>(counts.size()), 0);
  lua_createtable(L, static_cast<int>(counts.size()), 0);
  lua_Integer i = 0;
  for (const WordCount& wc : counts) {
    ++i;
    push_string(L, wc.word);
    lua_rawseti(L, -3, i);
    lua_pushinteger(L, wc.count);
    lua_rawseti(L, -2, i);
  }
  return 2;
}

// corpus.words_with_tag(pattern, {corpus = brown(), category=, document=, lower=, min_count=,
// limit=, modifiers=}) -> words, counts
int c_words_with_tag(lua_State* L) {
  std::shared_ptr<const Corpus> corpus;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "corpus");
    if (!lua_isnil(L, -1)) {
      auto* box = test_userdata<CorpusBox>(L, -1, kCorpusType);
      if (box == nullptr) {
        std::string got = type_name(L, -1);
        lua_pop(L, 1);
        throw ArgError(2, "option 'corpus' must be a corpus, got " + got);
      }
      corpus = box->corpus;
    }
    lua_pop(L, 1);
  }
  if (!corpus) corpus = shared_brown(default_corpus_dir());
  return push_words_with_tag(L, *corpus, 1, 2, {"corpus"});
}

// ---- methods ----

int corpus_categories(lua_State* L) {
  push_strings(L, check_corpus(L, 1).categories());
  return 1;
}

int corpus_documents(lua_State* L) {
  push_ids(L, selected(L, 1, 2));
  return 1;
}

int corpus_sentences(lua_State* L) { return push_sentences(L, selected(L, 1, 2), Field::kWord); }

int corpus_tagged_sentences(lua_State* L) {
  return push_sentences(L, selected(L, 1, 2), Field::kPair);
}

int corpus_words(lua_State* L) { return push_flat(L, selected(L, 1, 2), Field::kWord); }

int corpus_tags(lua_State* L) { return push_flat(L, selected(L, 1, 2), Field::kTag); }

int corpus_text(lua_State* L) {
  push_string(L, plain_text(selected(L, 1, 2)));
  return 1;
}

int corpus_size(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(word_count(selected(L, 1, 2))));
  return 1;
}

// c:category(id) -> the document's category
int corpus_category(lua_State* L) {
  const Corpus& corpus = check_corpus(L, 1);
  const std::string id = check_string(L, 2);
  std::vector<const CorpusDocument*> documents = corpus.select({{}, {id}});  // unknown id: error
  push_string(L, documents.front()->category);
  return 1;
}

// c:split({every = 10, category=, document=}) -> train ids, validation ids
int corpus_split(lua_State* L) {
  const Corpus& corpus = check_corpus(L, 1);
  check_option_keys(L, 2, {"every", "category", "document"});
  const int64_t every = opt_integer(L, 2, "every").value_or(10);
  if (every < 2 || every > 1000000) throw ArgError(2, "option 'every' must be at least 2");
  DocumentSplit split =
      split_documents(corpus.select(selection_option(L, 2)), static_cast<int>(every));
  push_ids(L, split.train);
  push_ids(L, split.validation);
  return 2;
}

int corpus_words_with_tag(lua_State* L) {
  return push_words_with_tag(L, check_corpus(L, 1), 2, 3, {});
}

int corpus_len(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_corpus(L, 1).word_count()));
  return 1;
}

int corpus_tostring(lua_State* L) {
  const Corpus& c = check_corpus(L, 1);
  std::string text = "Corpus(" + std::to_string(c.documents().size()) + " documents, " +
                     std::to_string(c.categories().size()) + " categories, " +
                     std::to_string(c.word_count()) + " words, " + c.source().string() + ")";
  push_string(L, text);
  return 1;
}

const luaL_Reg kCorpusMethods[] = {
    {"categories", entry<corpus_categories>},
    {"documents", entry<corpus_documents>},
    {"sentences", entry<corpus_sentences>},
    {"tagged_sentences", entry<corpus_tagged_sentences>},
    {"words", entry<corpus_words>},
    {"tags", entry<corpus_tags>},
    {"text", entry<corpus_text>},
    {"size", entry<corpus_size>},
    {"category", entry<corpus_category>},
    {"split", entry<corpus_split>},
    {"words_with_tag", entry<corpus_words_with_tag>},
    {nullptr, nullptr},
};

}  // namespace

void open_corpus(lua_State* L) {
  new_type(L, kCorpusType, kCorpusMethods, destroy_userdata<CorpusBox>);
  lua_pushcfunction(L, entry<corpus_len>);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, entry<corpus_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  const luaL_Reg functions[] = {
      {"brown", entry<c_brown>},
      {"read_text", entry<c_read_text>},
      {"detokenize", entry<c_detokenize>},
      {"words_with_tag", entry<c_words_with_tag>},
      {nullptr, nullptr},
  };
  luaL_newlib(L, functions);
  lua_setglobal(L, "corpus");
}

}  // namespace llmscope::lua
