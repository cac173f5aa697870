// GPT-2 byte-level BPE: loading vocab.json + merges.txt or tokenizer.json, PCRE2
// pre-tokenisation, merges by rank with a per-word cache, and lossy UTF-8 decoding.
#include "llmscope/tokenizer.hpp"

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "tokenizers/tokenizer_json.hpp"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <mutex>
#include <queue>
#include <sstream>
#include <utility>

#include "llmscope/error.hpp"

namespace llmscope {

namespace {

namespace fs = std::filesystem;
using detail::append_utf8;
using detail::find_invalid_utf8;
using detail::utf8_lossy;
using detail::utf8_sequence;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// GPT-2's bytes_to_unicode: every byte gets a printable character, so a vocabulary of strings
// can hold arbitrary bytes. Printable Latin-1 bytes map to themselves, the rest to U+0100 onward.

struct ByteMap {
  std::array<std::string, 256> byte_to_char;  // UTF-8 of the stand-in character
  std::unordered_map<uint32_t, unsigned char> char_to_byte;

  ByteMap() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      const uint32_t cp = printable ? b : next++;
      append_utf8(byte_to_char[b], cp);
      char_to_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

// The bytes a vocabulary string stands for. A string holding a character outside the byte map
// (an added token, say) stands for its own UTF-8, as Hugging Face's ByteLevel decoder does.
std::string token_bytes(const std::string& token) {
  const auto& map = byte_map().char_to_byte;
  const auto* s = reinterpret_cast<const unsigned char*>(token.data());
  std::string out;
  size_t i = 0;
  while (i < token.size()) {
    size_t bad = 0;
    const size_t len = utf8_sequence(s, token.size(), i, &bad);
    if (len == 0) {
      return token;
    }
    uint32_t cp = (len == 1) ? s[i] : (s[i] & (0x7F >> len));
    for (size_t k = 1; k < len; ++k) {
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    const auto it = map.find(cp);
    if (it == map.end()) {
      return token;
    }
    out += static_cast<char>(it->second);
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenisation: GPT-2's regex, compiled once for the process.

constexpr const char* kGpt2Pattern =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class Pretokenizer {
 public:
  Pretokenizer() {
    int code = 0;
    PCRE2_SIZE offset = 0;
    re_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                        PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
    if (re_ == nullptr) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(code, buf, sizeof(buf));
      throw Error(std::string("GPT-2 pre-tokenizer regex failed to compile: ") +
                  reinterpret_cast<const char*>(buf));
    }
    // JIT is an optimisation only; without it (unsupported CPU, W^X policy) matching still works.
    pcre2_jit_compile(re_, PCRE2_JIT_COMPLETE);
  }
  ~Pretokenizer() { pcre2_code_free(re_); }
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls fn(piece) for each piece of `text`, which must be valid UTF-8 (checked by the caller,
  // since PCRE2_NO_UTF_CHECK on invalid input is undefined behaviour).
  template <typename Fn>
  void split(std::string_view text, Fn&& fn) const {
    if (text.empty()) {
      return;
    }
    // Match data is per call so concurrent encodes never share it.
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(re_, nullptr), &pcre2_match_data_free);
    if (!md) {
      throw Error("out of memory creating PCRE2 match data");
    }
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
      const int rc =
          pcre2_match(re_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) {
        fn(text.substr(pos));
        return;
      }
      if (rc < 0) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(rc, buf, sizeof(buf));
        throw Error(std::string("pre-tokenizer regex failed: ") +
                    reinterpret_cast<const char*>(buf));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
      const size_t start = ov[0];
      const size_t end = ov[1];
      // Every character matches some alternative, so gaps cannot occur; keep them if they do,
      // as Hugging Face's Split(Isolated) would.
      if (start > pos) {
        fn(text.substr(pos, start - pos));
      }
      if (end == start) {  // an empty match cannot happen either; never loop forever
        pos = start + 1;
        while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) {
          ++pos;
        }
        continue;
      }
      fn(text.substr(start, end - start));
      pos = end;
    }
  }

 private:
  pcre2_code* re_ = nullptr;
};

const Pretokenizer& gpt2_pretokenizer() {
  static const Pretokenizer pre;
  return pre;
}

// ---------------------------------------------------------------------------------------------
// File reading

using detail::parse_json;
using detail::read_file;

struct PairHash {
  size_t operator()(const std::pair<std::string, std::string>& p) const {
    return std::hash<std::string>()(p.first) * 31 + std::hash<std::string>()(p.second);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------

void gpt2_pretokenize(std::string_view text, const std::function<void(std::string_view)>& fn) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  gpt2_pretokenizer().split(text, fn);
}

const std::array<std::string, 256>& gpt2_byte_to_unicode() { return byte_map().byte_to_char; }

// ---------------------------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  struct Merge {
    int32_t rank;
    int64_t result;
  };
  struct AddedToken {
    std::string content;
    int64_t id;
    bool special;
  };

  std::unordered_map<std::string, int64_t> vocab;  // byte-mapped token string → id
  std::unordered_map<uint64_t, Merge> merges;      // (left id, right id) → merge
  std::array<int64_t, 256> byte_token{};           // id of each single-byte token, or -1
  std::vector<std::string> id_bytes;               // id → the bytes it stands for
  std::vector<bool> id_known;                      // false for holes in the id range
  std::vector<AddedToken> added;
  int64_t size = 0;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // piece bytes → ids

  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
  }

  // Builds the id tables once vocab, merges and added tokens are in place.
  void finish() {
    size = 0;
    for (const auto& [tok, id] : vocab) {
      size = std::max(size, id + 1);
    }
    for (const auto& a : added) {
      size = std::max(size, a.id + 1);
    }
    id_bytes.assign(static_cast<size_t>(size), std::string());
    id_known.assign(static_cast<size_t>(size), false);
    for (const auto& a : added) {
      id_bytes[a.id] = token_bytes(a.content);
      id_known[a.id] = true;
    }
    for (const auto& [tok, id] : vocab) {
      id_bytes[id] = token_bytes(tok);
      id_known[id] = true;
    }
    const auto& map = byte_map();
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab.find(map.byte_to_char[b]);
      byte_token[b] = it == vocab.end() ? -1 : it->second;
    }
  }

  // Adds one merge; `where` prefixes any error ("merges.txt line 7", "model.merges[3]").
  void add_merge(const std::string& a, const std::string& b, int32_t rank, const fs::path& file,
                 const std::string& where) {
    const auto ia = vocab.find(a);
    const auto ib = vocab.find(b);
    const auto ir = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || ir == vocab.end()) {
      const std::string& missing = ia == vocab.end() ? a : ib == vocab.end() ? b : a + b;
      throw_file_error(file, where + ": merge \"" + a + " " + b + "\" uses token \"" + missing +
                                 "\", which is not in the vocabulary");
    }
    // The first (lowest-rank) entry wins if a pair is listed twice.
    merges.emplace(pair_key(ia->second, ib->second), Merge{rank, ir->second});
  }

  // BPE on one pre-tokenised piece: start from single bytes and apply the lowest-ranked merge
  // (leftmost on ties) until none applies. A heap keeps long pieces (runs of spaces) O(n log n).
  std::vector<int64_t> bpe(std::string_view piece) const {
    struct Sym {
      int64_t id;
      int prev, next;
    };
    std::vector<Sym> syms;
    syms.reserve(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) {
      const auto byte = static_cast<unsigned char>(piece[i]);
      const int64_t id = byte_token[byte];
      if (id < 0) {
        throw Error("cannot encode byte 0x" + std::string(1, "0123456789abcdef"[byte >> 4]) +
                    std::string(1, "0123456789abcdef"[byte & 15]) +
                    ": this tokenizer's vocabulary has no token for it");
      }
      syms.push_back({id, static_cast<int>(i) - 1, static_cast<int>(i) + 1});
    }
    if (syms.empty()) {
      return {};
    }
    syms.back().next = -1;

    struct Cand {
      int32_t rank;
      int pos;  // index of the left symbol
      int64_t left, right, result;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
    auto push = [&](int pos) {
      const int nx = syms[pos].next;
      if (nx < 0) {
        return;
      }
      const auto it = merges.find(pair_key(syms[pos].id, syms[nx].id));
      if (it != merges.end()) {
        heap.push({it->second.rank, pos, syms[pos].id, syms[nx].id, it->second.result});
      }
    };
    for (int i = 0; i + 1 < static_cast<int>(syms.size()); ++i) {
      push(i);
    }

    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& left = syms[c.pos];
      // Stale candidates (a side was merged away since) are skipped.
      if (left.id != c.left || left.next < 0 || syms[left.next].id != c.right) {
        continue;
      }
      const int right = left.next;
      left.id = c.result;
      left.next = syms[right].next;
      if (left.next >= 0) {
        syms[left.next].prev = c.pos;
      }
      syms[right].id = -1;  // dead
      if (left.prev >= 0) {
        push(left.prev);
      }
      push(c.pos);
    }
    std::vector<int64_t> out;
    for (int i = 0; i >= 0; i = syms[i].next) {
      out.push_back(syms[i].id);
    }
    return out;
  }

  void encode_ordinary(std::string_view text, std::vector<int64_t>& out) const {
    // Pieces are short and repeat a lot in natural text; very long ones (whitespace runs,
    // base64) would only bloat the cache.
    constexpr size_t kMaxCachedPiece = 64;
    constexpr size_t kMaxCacheEntries = 1 << 16;
    gpt2_pretokenizer().split(text, [&](std::string_view piece) {
      if (piece.size() <= kMaxCachedPiece) {
        std::string key(piece);
        {
          std::lock_guard<std::mutex> lock(cache_mutex);
          const auto it = cache.find(key);
          if (it != cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
          }
        }
        std::vector<int64_t> ids = bpe(piece);
        out.insert(out.end(), ids.begin(), ids.end());
        std::lock_guard<std::mutex> lock(cache_mutex);
        if (cache.size() >= kMaxCacheEntries) {
          cache.clear();
        }
        cache.emplace(std::move(key), std::move(ids));
      } else {
        const std::vector<int64_t> ids = bpe(piece);
        out.insert(out.end(), ids.begin(), ids.end());
      }
    });
  }

  void check_id(int64_t id) const {
    if (id < 0 || id >= size || !id_known[static_cast<size_t>(id)]) {
      throw Error("token id " + std::to_string(id) +
                  " is out of range for this tokenizer (vocabulary size " + std::to_string(size) +
                  ")");
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Loading

namespace {

void read_vocab_object(const json& obj, const fs::path& file, const std::string& where,
                       BpeTokenizer::Impl& impl) {
  if (!obj.is_object()) {
    throw_file_error(
        file, "expected " + where + " to be a JSON object mapping token strings to integer ids");
  }
  impl.vocab.reserve(obj.size());
  for (const auto& [tok, val] : obj.items()) {
    if (!val.is_number_integer() || val.get<int64_t>() < 0 ||
        val.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw_file_error(file, where + ": token \"" + tok + "\" maps to " + val.dump() +
                                 ", expected a non-negative integer id");
    }
    impl.vocab.emplace(tok, val.get<int64_t>());
  }
  if (impl.vocab.empty()) {
    throw_file_error(file, where + " is empty, expected at least one token");
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_files(const fs::path& vocab_json,
                                                       const fs::path& merges_txt) {
  auto impl = std::make_unique<Impl>();
  read_vocab_object(parse_json(vocab_json, "a JSON object mapping token strings to integer ids"),
                    vocab_json, "the vocabulary", *impl);

  const std::string text = read_file(merges_txt);
  std::istringstream lines(text);
  std::string line;
  int line_no = 0;
  int32_t rank = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.empty()) {
      continue;
    }
    if (line_no == 1 && line.rfind("#version", 0) == 0) {
      continue;
    }
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size() ||
        line.find(' ', sp + 1) != std::string::npos) {
      throw_file_error(merges_txt, "line " + std::to_string(line_no) +
                                       ": expected two tokens separated by one space, got \"" +
                                       line + "\"");
    }
    impl->add_merge(line.substr(0, sp), line.substr(sp + 1), rank++, merges_txt,
                    "line " + std::to_string(line_no));
  }

  // GPT-2's vocab.json carries its one special token as an ordinary entry.
  const auto eot = impl->vocab.find("<|endoftext|>");
  if (eot != impl->vocab.end()) {
    impl->added.push_back({eot->first, eot->second, true});
  }
  impl->finish();
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const fs::path& path) {
  const json doc = detail::read_tokenizer_json(path);
  const json& model = doc["model"];
  if (model.contains("type") && model["type"] != "BPE") {
    throw_file_error(path, "model.type is " + model["type"].dump() + ", expected \"BPE\"");
  }
  // Only GPT-2-style byte-level BPE is implemented; any other pre-tokenizer would silently give
  // different ids, so refuse it.
  if (doc.contains("pre_tokenizer") && !doc["pre_tokenizer"].is_null()) {
    const json& pre = doc["pre_tokenizer"];
    if (!pre.is_object() || pre.value("type", "") != "ByteLevel") {
      throw_file_error(path,
                       "pre_tokenizer is " +
                           (pre.is_object() ? pre.value("type", std::string("?")) : pre.dump()) +
                           ", expected ByteLevel (only GPT-2 byte-level BPE is supported)");
    }
  }

  auto impl = std::make_unique<Impl>();
  if (!model.contains("vocab")) {
    throw_file_error(path, "expected model.vocab (an object mapping token strings to ids)");
  }
  read_vocab_object(model["vocab"], path, "model.vocab", *impl);

  if (!model.contains("merges") || !model["merges"].is_array()) {
    throw_file_error(path, "expected model.merges (an array of \"a b\" strings or [a, b] pairs)");
  }
  int32_t rank = 0;
  for (const auto& m : model["merges"]) {
    const std::string where = "model.merges[" + std::to_string(rank) + "]";
    std::string a;
    std::string b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() ||
          s.find(' ', sp + 1) != std::string::npos) {
        throw_file_error(path,
                         where + ": expected two tokens separated by one space, got \"" + s + "\"");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw_file_error(path, where + ": expected \"a b\" or [\"a\", \"b\"], got " + m.dump());
    }
    impl->add_merge(a, b, rank++, path, where);
  }

  for (auto& t : detail::read_added_tokens(doc, path)) {
    impl->added.push_back({std::move(t.content), t.id, t.special});
  }
  impl->finish();
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

// ---------------------------------------------------------------------------------------------
// Encoding and decoding

std::vector<int64_t> BpeTokenizer::encode(std::string_view text,
                                          const EncodeOptions& options) const {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  // Non-special added tokens are always split out (as Hugging Face does); special ones only
  // when asked, so text that merely mentions "<|endoftext|>" cannot inject one.
  std::vector<const Impl::AddedToken*> active;
  for (const auto& a : impl_->added) {
    if (!a.special || options.allow_special) {
      active.push_back(&a);
    }
  }
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    // Leftmost occurrence of any active token, the longest on ties.
    size_t best = std::string_view::npos;
    const Impl::AddedToken* tok = nullptr;
    for (const auto* a : active) {
      const size_t at = text.find(a->content, pos);
      if (at == std::string_view::npos) {
        continue;
      }
      if (at < best || (at == best && a->content.size() > tok->content.size())) {
        best = at;
        tok = a;
      }
    }
    if (tok == nullptr) {
      impl_->encode_ordinary(text.substr(pos), out);
      break;
    }
    impl_->encode_ordinary(text.substr(pos, best - pos), out);
    out.push_back(tok->id);
    pos = best + tok->content.size();
  }
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string bytes;
  for (const int64_t id : ids) {
    impl_->check_id(id);
    bytes += impl_->id_bytes[static_cast<size_t>(id)];
  }
  return utf8_lossy(bytes);
}

int64_t BpeTokenizer::vocab_size() const { return impl_->size; }

std::string BpeTokenizer::token_text(int64_t id) const {
  impl_->check_id(id);
  return utf8_lossy(impl_->id_bytes[static_cast<size_t>(id)]);
}

int64_t BpeTokenizer::special_token_id(const std::string& token) const {
  for (const auto& a : impl_->added) {
    if (a.special && a.content == token) {
      return a.id;
    }
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------

namespace {

// model.type of a tokenizer.json ("BPE", "WordPiece"...), or "" when it has none. Everything
// below the second level is discarded while parsing, so a large vocabulary costs little here.
std::string tokenizer_json_model_type(const fs::path& path) {
  const std::string text = read_file(path);
  json doc;
  try {
    doc = json::parse(text, [](int depth, json::parse_event_t event, json& parsed) {
      return !(event == json::parse_event_t::key && depth >= 2 && parsed != "type");
    });
  } catch (const json::parse_error& e) {
    throw_file_error(path, std::string("not valid JSON (expected a Hugging Face tokenizer.json "
                                       "object): ") +
                               e.what());
  }
  if (!doc.is_object() || !doc.contains("model") || !doc["model"].is_object() ||
      !doc["model"].contains("type") || !doc["model"]["type"].is_string()) {
    return "";
  }
  return doc["model"]["type"].get<std::string>();
}

}  // namespace

bool Tokenizer::exists_in(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "tokenizer.json", ec) ||
         (fs::is_regular_file(dir / "vocab.json", ec) &&
          fs::is_regular_file(dir / "merges.txt", ec)) ||
         fs::is_regular_file(dir / "vocab.txt", ec);
}

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) {
    if (tokenizer_json_model_type(dir / "tokenizer.json") == "WordPiece") {
      return WordPieceTokenizer::from_tokenizer_json(dir / "tokenizer.json");
    }
    return BpeTokenizer::from_tokenizer_json(dir / "tokenizer.json");
  }
  if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec)) {
    return BpeTokenizer::from_files(dir / "vocab.json", dir / "merges.txt");
  }
  if (fs::is_regular_file(dir / "vocab.txt", ec)) {
    return WordPieceTokenizer::from_folder(dir);
  }
  throw_file_error(dir,
                   "no tokenizer found (expected tokenizer.json, vocab.json and merges.txt, or "
                   "vocab.txt)");
}

}  // namespace llmscope
