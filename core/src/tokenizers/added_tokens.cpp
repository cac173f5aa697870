#include "tokenizers/added_tokens.hpp"

#include <nlohmann/json.hpp>

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "llmscope/error.hpp"
#include "tokenizers/regex_split.hpp"

namespace llmscope::detail {

namespace {

using json = nlohmann::json;

AddedToken added_token_from(const json& t, int64_t id, const std::filesystem::path& path,
                            const std::string& where) {
  if (!t.is_object() || !t.contains("content") || !t["content"].is_string()) {
    throw_file_error(path, where + ": expected an object with a string \"content\"");
  }
  const std::string source = path.string() + ": " + where;
  auto flag = [&](const char* key, bool fallback) {
    return optional_flag(t, key, fallback, source);
  };
  AddedToken token;
  token.content = t["content"].get<std::string>();
  token.id = id;
  token.special = flag("special", false);
  token.normalized = flag("normalized", !token.special);
  token.lstrip = flag("lstrip", false);
  token.rstrip = flag("rstrip", false);
  token.single_word = flag("single_word", false);
  return token;
}

// Unicode White_Space, as Rust's char::is_whitespace that HF's lstrip/rstrip use.
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

const RegexSplit& word_char() {
  static const RegexSplit re(R"(\w)", "the word-character test");
  return re;
}

// Start of the last code point of text[0, end).
size_t last_char_start(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Where the run of whitespace that ends at `end` starts, not before `floor`.
size_t whitespace_run_start(std::string_view text, size_t floor, size_t end) {
  size_t start = end;
  while (start > floor) {
    size_t i = last_char_start(text, start);
    uint32_t cp = 0;
    size_t j = i;
    if (!next_code_point(text, &j, &cp) || !is_white_space(cp)) break;
    start = i;
  }
  return start;
}

size_t whitespace_run_end(std::string_view text, size_t begin) {
  size_t end = begin;
  while (end < text.size()) {
    size_t j = end;
    uint32_t cp = 0;
    if (!next_code_point(text, &j, &cp) || !is_white_space(cp)) break;
    end = j;
  }
  return end;
}

}  // namespace

std::vector<AddedToken> read_added_tokens(const json& doc, const std::filesystem::path& path) {
  std::vector<AddedToken> out;
  if (!doc.contains("added_tokens") || doc["added_tokens"].is_null()) return out;
  const json& list = doc["added_tokens"];
  if (!list.is_array()) throw_file_error(path, "expected added_tokens to be an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        t["id"].get<int64_t>() < 0) {
      throw_file_error(path, where +
                                 ": expected an object with an integer \"id\" >= 0 and a "
                                 "string \"content\"");
    }
    AddedToken token = added_token_from(t, t["id"].get<int64_t>(), path, where);
    if (!token.content.empty()) out.push_back(std::move(token));
  }
  return out;
}

std::vector<AddedToken> read_added_tokens_decoder(const json& config,
                                                  const std::filesystem::path& path) {
  std::vector<AddedToken> out;
  const auto it = config.find("added_tokens_decoder");
  if (it == config.end() || it->is_null()) return out;
  if (!it->is_object()) throw_file_error(path, "expected added_tokens_decoder to be an object");
  for (const auto& [key, t] : it->items()) {
    const std::string where = "added_tokens_decoder[\"" + key + "\"]";
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      if (used != key.size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0) throw_file_error(path, where + ": expected the key to be a token id >= 0");
    AddedToken token = added_token_from(t, id, path, where);
    if (!token.content.empty()) out.push_back(std::move(token));
  }
  return out;
}

void split_added_tokens(std::string_view text, const std::vector<const AddedToken*>& tokens,
                        const std::function<void(std::string_view)>& on_text,
                        const std::function<void(const AddedToken&)>& on_token) {
  // next[i]: where tokens[i] next occurs at or after the search position (npos: never again);
  // refreshed only when the search has passed it, so a long text costs one scan per token.
  constexpr size_t npos = std::string_view::npos;
  std::vector<size_t> next(tokens.size(), 0);
  for (size_t i = 0; i < tokens.size(); ++i) next[i] = text.find(tokens[i]->content);
  size_t pos = 0;      // where the search goes on
  size_t emitted = 0;  // text before this has been passed on
  while (pos < text.size()) {
    size_t start = npos;
    const AddedToken* found = nullptr;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (next[i] != npos && next[i] < pos) next[i] = text.find(tokens[i]->content, pos);
      if (next[i] == npos) continue;
      if (next[i] < start ||
          (next[i] == start && tokens[i]->content.size() > found->content.size())) {
        start = next[i];
        found = tokens[i];
      }
    }
    if (found == nullptr) break;
    size_t end = start + found->content.size();
    pos = end;
    if (found->single_word) {
      const bool word_before =
          start > 0 && word_char().match_at(text, last_char_start(text, start)) != npos;
      const bool word_after = end < text.size() && word_char().match_at(text, end) != npos;
      if (word_before || word_after) continue;  // stays text
    }
    if (found->lstrip) start = whitespace_run_start(text, emitted, start);
    if (found->rstrip) end = pos = whitespace_run_end(text, end);
    if (start > emitted) on_text(text.substr(emitted, start - emitted));
    on_token(*found);
    emitted = end;
  }
  if (emitted < text.size()) on_text(text.substr(emitted));
}

void check_id_range(int64_t largest_id, size_t tokens, const std::filesystem::path& source) {
  const int64_t limit = 4 * static_cast<int64_t>(tokens) + 65536;
  if (largest_id >= limit) {
    throw_file_error(source, "token id " + std::to_string(largest_id) + " for a vocabulary of " +
                                 std::to_string(tokens) + " tokens: ids must be below " +
                                 std::to_string(limit) + " (numbered from 0, with few gaps)");
  }
}

}  // namespace llmscope::detail
