// Byte-level BPE training: pre-token counting, incremental pair counts with a pair → words index
// and a lazily corrected max-heap, and GPT-2-format output.
#include "llmscope/bpe_trainer.hpp"

#include <algorithm>
#include <array>
#include <numeric>
#include <queue>
#include <unordered_set>

#include "base/utf8.hpp"
#include "llmscope/atomic_file.hpp"
#include "llmscope/error.hpp"
#include "llmscope/tokenizer.hpp"

namespace llmscope {

namespace {

constexpr int kByteTokens = 256;

using PairKey = uint64_t;  // (left symbol << 32) | right symbol

PairKey pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(PairKey key) { return static_cast<int32_t>(key >> 32); }
int32_t right_of(PairKey key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

// GPT-2's byte order: bytes sorted by the code point of their stand-in character, so the
// printable ones ("!" = 0) come first and "Ā" (byte 0) is 188, as in GPT-2's vocab.json.
std::array<int, kByteTokens> gpt2_byte_order() {
  const auto& chars = gpt2_byte_to_unicode();
  std::array<int, kByteTokens> order{};
  std::iota(order.begin(), order.end(), 0);
  // UTF-8 compares bytewise in code point order.
  std::sort(order.begin(), order.end(), [&](int x, int y) { return chars[x] < chars[y]; });
  return order;
}

// A distinct pre-token as a sequence of symbols, and how often it occurs.
struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

struct Delta {
  PairKey key;
  int64_t change;
};

// Merges every (left, right) in `word` into `merged`, leftmost first and without overlap ("a a a"
// becomes "aa a"), recording how the counts of the neighbouring pairs change. The merged pair's
// own count is dropped by the caller. `on_new_pair` gets each pair that gained occurrences.
template <typename OnNewPair>
void merge_word(Word& word, int32_t left, int32_t right, int32_t merged, std::vector<Delta>& deltas,
                OnNewPair&& on_new_pair) {
  auto& s = word.symbols;
  const PairKey merged_key = pair_key(left, right);
  auto change = [&](int32_t a, int32_t b, int64_t sign) {
    const PairKey key = pair_key(a, b);
    if (key == merged_key) {
      return;  // left == right: its count is dropped whole, not adjusted
    }
    deltas.push_back({key, sign * word.count});
    if (sign > 0) {
      on_new_pair(key);
    }
  };
  const size_t n = s.size();
  size_t w = 0;  // write position; s[0, w) is the merged prefix
  size_t r = 0;  // read position
  while (r < n) {
    if (r + 1 < n && s[r] == left && s[r + 1] == right) {
      if (w > 0) {  // the symbol before may itself be a fresh `merged`; the deltas still cancel
        change(s[w - 1], left, -1);
        change(s[w - 1], merged, +1);
      }
      if (r + 2 < n) {
        change(right, s[r + 2], -1);
        change(merged, s[r + 2], +1);
      }
      s[w++] = merged;
      r += 2;
    } else {
      s[w++] = s[r++];
    }
  }
  s.resize(w);
}

// Leftmost occurrence of any special token in text[from...), longest on ties; npos if none.
size_t find_special(std::string_view text, size_t from, const std::vector<std::string>& specials,
                    size_t* length) {
  size_t best = std::string_view::npos;
  for (const auto& special : specials) {
    const size_t at = text.find(special, from);
    if (at == std::string_view::npos) {
      continue;
    }
    if (at < best || (at == best && special.size() > *length)) {
      best = at;
      *length = special.size();
    }
  }
  return best;
}

// A JSON string as Python's json.dumps writes it (ensure_ascii): the form of GPT-2's vocab.json.
void append_json_string(std::string& out, std::string_view utf8) {
  static const char* const kHex = "0123456789abcdef";
  auto unicode_escape = [&](uint32_t unit) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) {
      out += kHex[(unit >> shift) & 0xF];
    }
  };
  const auto* s = reinterpret_cast<const unsigned char*>(utf8.data());
  out += '"';
  size_t i = 0;
  while (i < utf8.size()) {
    size_t bad = 0;
    const size_t len = detail::utf8_sequence(s, utf8.size(), i, &bad);
    uint32_t cp = (len == 1) ? s[i] : (s[i] & (0x7F >> len));
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    i += len;
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp >= 0x20 && cp <= 0x7E) {
      out += static_cast<char>(cp);
    } else if (cp <= 0xFFFF) {
      unicode_escape(cp);
    } else {  // a surrogate pair, as JSON spells characters beyond the BMP
      cp -= 0x10000;
      unicode_escape(0xD800 + (cp >> 10));
      unicode_escape(0xDC00 + (cp & 0x3FF));
    }
  }
  out += '"';
}

}  // namespace

std::unordered_map<std::string, int64_t> BpeTrainResult::vocab_ids() const {
  std::unordered_map<std::string, int64_t> ids;
  ids.reserve(vocab.size());
  for (size_t id = 0; id < vocab.size(); ++id) {
    ids.emplace(vocab[id], static_cast<int64_t>(id));
  }
  return ids;
}

void validate_bpe_train_options(const BpeTrainOptions& options) {
  const auto specials = static_cast<int64_t>(options.special_tokens.size());
  if (options.vocab_size < kByteTokens + specials) {
    throw Error("vocab_size " + std::to_string(options.vocab_size) +
                " is too small: expected at least " + std::to_string(kByteTokens + specials) +
                " (the 256 byte tokens + " + std::to_string(specials) + " special token" +
                (specials == 1 ? "" : "s") + ")");
  }
  if (options.min_frequency < 1) {
    throw Error("min_frequency is " + std::to_string(options.min_frequency) +
                ", expected at least 1");
  }
  const auto& byte_chars = gpt2_byte_to_unicode();
  std::unordered_set<std::string> seen;
  for (const auto& special : options.special_tokens) {
    if (special.empty()) {
      throw Error("special_tokens: an empty string cannot be a special token");
    }
    if (detail::find_invalid_utf8(special) != std::string_view::npos) {
      throw Error("special_tokens: \"" + detail::utf8_lossy(special) + "\" is not valid UTF-8");
    }
    if (!seen.insert(special).second) {
      throw Error("special_tokens: \"" + special + "\" is listed twice");
    }
    if (std::find(byte_chars.begin(), byte_chars.end(), special) != byte_chars.end()) {
      throw Error("special_tokens: \"" + special +
                  "\" is already one of the 256 byte tokens, expected a token of its own");
    }
  }
}

void count_pretokens(std::string_view text, const BpeTrainOptions& options,
                     PretokenCounts& counts) {
  const size_t bad = detail::find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  for (const auto& special : options.special_tokens) {
    if (special.empty()) {
      throw Error("special_tokens: an empty string cannot be a special token");
    }
  }
  auto count = [&](std::string_view piece) { ++counts[std::string(piece)]; };
  // Special tokens written in the text (document separators, usually) are not language: cut
  // them out, as encoding does with allow_special.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length = 0;
    const size_t at = find_special(text, pos, options.special_tokens, &length);
    const size_t end = at == std::string_view::npos ? text.size() : at;
    gpt2_pretokenize(text.substr(pos, end - pos), count);
    if (at == std::string_view::npos) {
      break;
    }
    pos = at + length;
  }
}

BpeTrainResult train_bpe(const std::vector<std::string>& texts, const BpeTrainOptions& options) {
  validate_bpe_train_options(options);
  PretokenCounts counts;
  for (size_t i = 0; i < texts.size(); ++i) {
    try {
      count_pretokens(texts[i], options, counts);
    } catch (const Error& e) {
      throw Error("texts[" + std::to_string(i) + "]: " + e.what());
    }
  }
  return train_bpe_from_counts(counts, options);
}

BpeTrainResult train_bpe_from_counts(const PretokenCounts& counts, const BpeTrainOptions& options) {
  validate_bpe_train_options(options);
  BpeTrainResult result;
  std::vector<std::string>& symbols = result.vocab;  // symbol id == vocabulary id
  std::unordered_map<std::string, int32_t> symbol_ids;

  const auto& byte_chars = gpt2_byte_to_unicode();
  std::array<int32_t, kByteTokens> byte_symbol{};
  for (const int byte : gpt2_byte_order()) {
    byte_symbol[byte] = static_cast<int32_t>(symbols.size());
    symbol_ids.emplace(byte_chars[byte], byte_symbol[byte]);
    symbols.push_back(byte_chars[byte]);
  }

  // Words in byte order, so indices (and so every tie) never depend on hash order.
  std::vector<const PretokenCounts::value_type*> sorted;
  sorted.reserve(counts.size());
  for (const auto& entry : counts) {
    if (entry.second > 0) {
      sorted.push_back(&entry);
      result.pretokens += entry.second;
    }
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* x, auto* y) { return x->first < y->first; });
  result.distinct_pretokens = static_cast<int64_t>(sorted.size());

  std::vector<Word> words;
  std::unordered_map<PairKey, int64_t> pair_counts;
  std::unordered_map<PairKey, std::vector<int32_t>> pair_words;  // may hold stale or repeated ids
  for (const auto* entry : sorted) {
    const std::string& bytes = entry->first;
    if (bytes.size() < 2) {
      continue;  // nothing to merge, ever
    }
    Word word{{}, entry->second};
    word.symbols.reserve(bytes.size());
    for (const char ch : bytes) {
      word.symbols.push_back(byte_symbol[static_cast<unsigned char>(ch)]);
    }
    const auto index = static_cast<int32_t>(words.size());
    for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      const PairKey key = pair_key(word.symbols[i], word.symbols[i + 1]);
      pair_counts[key] += word.count;
      auto& list = pair_words[key];
      if (list.empty() || list.back() != index) {
        list.push_back(index);
      }
    }
    words.push_back(std::move(word));
  }

  // Max-heap on (count, then the pair's strings smallest first). Entries go stale as counts
  // change; a popped entry whose count is not the pair's current count is pushed back corrected.
  struct Entry {
    int64_t count;
    PairKey key;
  };
  auto lower_priority = [&symbols](const Entry& x, const Entry& y) {
    if (x.count != y.count) {
      return x.count < y.count;
    }
    const std::string& xl = symbols[left_of(x.key)];
    const std::string& yl = symbols[left_of(y.key)];
    if (xl != yl) {
      return xl > yl;
    }
    return symbols[right_of(x.key)] > symbols[right_of(y.key)];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower_priority)> heap(lower_priority);
  {
    // Pushed in key order so the heap's layout, too, is independent of hash order.
    std::vector<Entry> initial;
    initial.reserve(pair_counts.size());
    for (const auto& [key, count] : pair_counts) {
      initial.push_back({count, key});
    }
    std::sort(initial.begin(), initial.end(),
              [](const Entry& x, const Entry& y) { return x.key < y.key; });
    for (const auto& entry : initial) {
      heap.push(entry);
    }
  }

  const std::unordered_set<std::string> specials(options.special_tokens.begin(),
                                                 options.special_tokens.end());
  std::unordered_set<PairKey> never_merge;  // pairs whose token would equal a special token
  const size_t max_symbols =
      static_cast<size_t>(options.vocab_size) - options.special_tokens.size();
  std::vector<Delta> deltas;

  while (symbols.size() < max_symbols && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    const auto found = pair_counts.find(top.key);
    const int64_t current = found == pair_counts.end() ? 0 : found->second;
    if (current != top.count) {
      if (current > 0) {
        heap.push({current, top.key});
      }
      continue;
    }
    if (current < options.min_frequency) {
      break;  // the best pair left is too rare
    }
    if (never_merge.count(top.key) > 0) {
      continue;
    }
    const int32_t left = left_of(top.key);
    const int32_t right = right_of(top.key);
    std::string token = symbols[left] + symbols[right];
    if (specials.count(token) > 0) {
      never_merge.insert(top.key);
      continue;
    }
    // Two merges can spell the same token ("a"+"bc", "ab"+"c"); they share its symbol and id.
    int32_t merged = 0;
    const auto existing = symbol_ids.find(token);
    if (existing != symbol_ids.end()) {
      merged = existing->second;
    } else {
      merged = static_cast<int32_t>(symbols.size());
      symbol_ids.emplace(token, merged);
      symbols.push_back(std::move(token));
    }
    result.merges.emplace_back(symbols[left], symbols[right]);
    result.merge_counts.push_back(current);

    std::vector<int32_t> affected;
    if (const auto it = pair_words.find(top.key); it != pair_words.end()) {
      affected = std::move(it->second);
      pair_words.erase(it);
    }
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    deltas.clear();
    for (const int32_t index : affected) {
      merge_word(words[index], left, right, merged, deltas, [&](PairKey key) {
        auto& list = pair_words[key];
        if (list.empty() || list.back() != index) {
          list.push_back(index);
        }
      });
    }
    pair_counts.erase(top.key);

    // Net change per pair, applied in key order; pairs that grew get a fresh heap entry.
    std::sort(deltas.begin(), deltas.end(),
              [](const Delta& x, const Delta& y) { return x.key < y.key; });
    for (size_t i = 0; i < deltas.size();) {
      const PairKey key = deltas[i].key;
      int64_t change = 0;
      for (; i < deltas.size() && deltas[i].key == key; ++i) {
        change += deltas[i].change;
      }
      if (change == 0) {
        continue;
      }
      int64_t& count = pair_counts[key];
      count += change;
      if (count <= 0) {
        pair_counts.erase(key);
      } else if (change > 0) {
        heap.push({count, key});
      }
    }
  }

  for (const auto& special : options.special_tokens) {
    symbols.push_back(special);
  }
  return result;
}

void save_bpe(const BpeTrainResult& result, const std::filesystem::path& dir) {
  std::string vocab = "{";
  for (size_t id = 0; id < result.vocab.size(); ++id) {
    const std::string& token = result.vocab[id];
    if (detail::find_invalid_utf8(token) != std::string_view::npos) {
      throw_file_error(dir / "vocab.json", "token " + std::to_string(id) +
                                               " is not valid UTF-8, expected a token string");
    }
    if (id > 0) {
      vocab += ", ";
    }
    append_json_string(vocab, token);
    vocab += ": ";
    vocab += std::to_string(id);
  }
  vocab += "}";

  std::string merges = "#version: 0.2\n";
  for (size_t i = 0; i < result.merges.size(); ++i) {
    const auto& [left, right] = result.merges[i];
    for (const std::string* part : {&left, &right}) {
      if (part->empty() || part->find_first_of(" \n\r") != std::string::npos) {
        throw_file_error(dir / "merges.txt",
                         "merge " + std::to_string(i) + " has the token \"" + *part +
                             "\", expected a non-empty token without spaces or line breaks");
      }
    }
    merges += left;
    merges += ' ';
    merges += right;
    merges += '\n';
  }
  write_file_atomic(dir / "merges.txt", merges);
  write_file_atomic(dir / "vocab.json", vocab);
}

}  // namespace llmscope
