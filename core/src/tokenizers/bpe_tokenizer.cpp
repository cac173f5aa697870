// BPE as Hugging Face `tokenizers` runs it: GPT-2's vocab.json + merges.txt, or any BPE
// tokenizer.json, byte-level (GPT-2, Llama 3, Qwen2...) or SentencePiece-style (Llama 2 and
// Mistral conversions: Metaspace, byte fallback): added tokens split out first, the normalizer
// between them, the pre-tokenizer's pieces, merges by rank (or a whole piece when
// ignore_merges), the post-processor's template, and the file's decoder.
#include "llmscope/tokenizer.hpp"

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "tokenizers/added_tokens.hpp"
#include "tokenizers/byte_level.hpp"
#include "tokenizers/decoder.hpp"
#include "tokenizers/normalizer.hpp"
#include "tokenizers/pre_tokenizer.hpp"
#include "tokenizers/regex_split.hpp"
#include "tokenizers/tokenizer_json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <mutex>
#include <queue>
#include <sstream>
#include <utility>

#include "llmscope/error.hpp"

namespace llmscope {

namespace {

namespace fs = std::filesystem;
using detail::find_invalid_utf8;
using detail::utf8_lossy;
using json = nlohmann::json;

using detail::parse_json;
using detail::read_file;

}  // namespace

// ---------------------------------------------------------------------------------------------

void gpt2_pretokenize(std::string_view text, const std::function<void(std::string_view)>& fn) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  detail::gpt2_split().split(text, fn);
}

const std::array<std::string, 256>& gpt2_byte_to_unicode() { return detail::byte_level_chars(); }

// ---------------------------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  struct Merge {
    int32_t rank;
    int64_t result;
  };

  std::unordered_map<std::string, int64_t> vocab;  // token string → id
  std::unordered_map<uint64_t, Merge> merges;      // (left id, right id) → merge
  std::vector<std::string> id_token;               // id → its string (added: its content)
  std::vector<bool> id_known;                      // false for holes in the id range
  std::vector<detail::AddedToken> added;
  std::vector<bool> id_special;  // ids of added tokens marked special
  int64_t size = 0;

  // The pipeline around the model, from tokenizer.json (GPT-2's when read from vocab.json).
  detail::Normalizer normalizer;
  detail::PreTokenizer pre = detail::PreTokenizer::gpt2();
  detail::Decoder decoder = detail::Decoder::byte_level();
  bool ignore_merges = false;  // a piece that is itself in the vocabulary is one token
  bool byte_fallback = false;  // a character missing from the vocabulary becomes <0xNN> tokens
  bool fuse_unk = false;       // consecutive unknown characters become one unk
  int64_t unk = -1;            // for characters the vocabulary lacks, or -1 (then an error)
  std::array<int64_t, 256> byte_fallback_token{};  // id of "<0xNN>", or -1
  // Ids of the one-character tokens below U+0200 (ASCII and the whole byte-level alphabet), or
  // -1: most first symbols are found here without hashing.
  std::array<int64_t, 512> small_char_token{};
  detail::SingleTemplate framing;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // piece → ids

  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
  }

  // Builds the id tables once vocab, merges and added tokens are in place. An added token whose
  // content is already in the vocabulary keeps that id, as HF does when it loads the file.
  void finish(const fs::path& source) {
    size = 0;
    for (const auto& [tok, id] : vocab) size = std::max(size, id + 1);
    for (const auto& a : added) size = std::max(size, a.id + 1);
    detail::check_id_range(size - 1, vocab.size() + added.size(), source);
    id_token.assign(static_cast<size_t>(size), std::string());
    id_known.assign(static_cast<size_t>(size), false);
    id_special.assign(static_cast<size_t>(size), false);
    for (const auto& a : added) {
      id_token[a.id] = a.content;
      id_known[a.id] = true;
      id_special[a.id] = a.special;
    }
    for (const auto& [tok, id] : vocab) {
      id_token[id] = tok;
      id_known[id] = true;
    }
    small_char_token.fill(-1);
    for (const auto& [tok, id] : vocab) {
      size_t i = 0;
      uint32_t cp = 0;
      if (detail::next_code_point(tok, &i, &cp) && i == tok.size() &&
          cp < small_char_token.size()) {
        small_char_token[cp] = id;
      }
    }
    for (int b = 0; b < 256; ++b) {
      static const char* hex = "0123456789ABCDEF";
      const auto it = vocab.find(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
      byte_fallback_token[b] = it == vocab.end() ? -1 : it->second;
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

  // A piece's first symbols, as HF's BPE builds a word: one per character; a character missing
  // from the vocabulary becomes its <0xNN> byte tokens (byte_fallback) or unk, runs of unk fused
  // into one when fuse_unk.
  std::vector<int64_t> first_symbols(std::string_view piece) const {
    std::vector<int64_t> ids;
    ids.reserve(piece.size());
    bool after_unk = false;
    for (size_t i = 0; i < piece.size();) {
      size_t bad = 0;  // pieces are valid UTF-8; a bad byte would stand alone
      size_t n = detail::utf8_sequence(reinterpret_cast<const unsigned char*>(piece.data()),
                                       piece.size(), i, &bad);
      if (n == 0) n = std::max<size_t>(bad, 1);
      if (n <= 2) {
        size_t at = i;
        uint32_t cp = 0;
        if (detail::next_code_point(piece, &at, &cp) && cp < small_char_token.size() &&
            small_char_token[cp] >= 0) {
          ids.push_back(small_char_token[cp]);
          after_unk = false;
          i += n;
          continue;
        }
      }
      const std::string ch(piece.substr(i, n));
      i += n;
      if (const auto it = vocab.find(ch); it != vocab.end()) {
        ids.push_back(it->second);
        after_unk = false;
        continue;
      }
      if (byte_fallback && std::all_of(ch.begin(), ch.end(), [&](char c) {
            return byte_fallback_token[static_cast<unsigned char>(c)] >= 0;
          })) {
        for (const char c : ch) ids.push_back(byte_fallback_token[static_cast<unsigned char>(c)]);
        after_unk = false;
        continue;
      }
      if (unk < 0) {
        std::string shown = pre.byte_level() ? detail::from_byte_level(ch) : ch;
        std::string hex;
        for (const char c : shown) {
          hex += (hex.empty() ? "0x" : " 0x") +
                 std::string(1, "0123456789abcdef"[static_cast<unsigned char>(c) >> 4]) +
                 std::string(1, "0123456789abcdef"[static_cast<unsigned char>(c) & 15]);
        }
        throw Error("cannot encode \"" + utf8_lossy(shown) + "\" (bytes " + hex +
                    "): this tokenizer's vocabulary has no token for it and no unk_token");
      }
      if (!(fuse_unk && after_unk)) ids.push_back(unk);
      after_unk = true;
    }
    return ids;
  }

  // BPE on one pre-tokenised piece: start from single characters and apply the lowest-ranked merge
  // (leftmost on ties) until none applies. A heap keeps long pieces (runs of spaces) O(n log n).
  std::vector<int64_t> bpe(std::string_view piece) const {
    if (ignore_merges) {
      const auto it = vocab.find(std::string(piece));
      if (it != vocab.end()) return {it->second};
    }
    struct Sym {
      int64_t id;
      int prev, next;
    };
    const std::vector<int64_t> first = first_symbols(piece);
    std::vector<Sym> syms;
    syms.reserve(first.size());
    for (size_t i = 0; i < first.size(); ++i) {
      syms.push_back({first[i], static_cast<int>(i) - 1, static_cast<int>(i) + 1});
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

  void encode_piece(std::string_view piece, std::vector<int64_t>& out) const {
    // Pieces are short and repeat a lot in natural text; very long ones (whitespace runs,
    // base64) would only bloat the cache.
    constexpr size_t kMaxCachedPiece = 64;
    constexpr size_t kMaxCacheEntries = 1 << 16;
    if (piece.size() > kMaxCachedPiece) {
      const std::vector<int64_t> ids = bpe(piece);
      out.insert(out.end(), ids.begin(), ids.end());
      return;
    }
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
  }

  // Text between added tokens, already normalized; `at_start`: it begins the input.
  void encode_ordinary(std::string_view text, bool at_start, std::vector<int64_t>& out) const {
    pre.run(text, at_start, [&](std::string_view piece) { encode_piece(piece, out); });
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

void read_bpe_model(const json& model, const fs::path& path, BpeTokenizer::Impl& impl) {
  const std::string where_model = path.string() + ": model";
  if (model.contains("type") && model["type"] != "BPE") {
    throw_file_error(path, "model.type is " + model["type"].dump() + ", expected \"BPE\"");
  }
  if (!model.contains("vocab")) {
    throw_file_error(path, "expected model.vocab (an object mapping token strings to ids)");
  }
  read_vocab_object(model["vocab"], path, "model.vocab", impl);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty()) {
      throw_file_error(path, std::string("model.") + key + " is " + model[key].dump() +
                                 "; BPE with word affixes is not supported");
    }
  }
  if (model.value("dropout", json()).is_number() && model["dropout"].get<double>() > 0) {
    throw_file_error(path, "model.dropout is set; BPE dropout is for training, not supported");
  }
  impl.ignore_merges = detail::optional_flag(model, "ignore_merges", false, where_model);
  impl.byte_fallback = detail::optional_flag(model, "byte_fallback", false, where_model);
  impl.fuse_unk = detail::optional_flag(model, "fuse_unk", false, where_model);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    const auto it = impl.vocab.find(model["unk_token"].get<std::string>());
    if (it != impl.vocab.end()) impl.unk = it->second;
  }

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
    impl.add_merge(a, b, rank++, path, where);
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
    detail::AddedToken token;
    token.content = eot->first;
    token.id = eot->second;
    token.special = true;
    impl->added.push_back(std::move(token));
  }
  impl->finish(vocab_json);
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const fs::path& path) {
  const json doc = detail::read_tokenizer_json(path);
  auto impl = std::make_unique<Impl>();
  impl->pre = detail::PreTokenizer::from_json(doc.value("pre_tokenizer", json()), path);
  impl->decoder =
      detail::Decoder::from_json(doc.value("decoder", json()), path, impl->pre.byte_level());
  impl->normalizer = detail::Normalizer::from_json(doc.value("normalizer", json()), path);
  read_bpe_model(doc["model"], path, *impl);
  impl->added = detail::read_added_tokens(doc, path);
  impl->finish(path);
  impl->framing = detail::read_single_template(doc.value("post_processor", json()), path);
  const auto from_config = detail::read_config_template(
      path.parent_path() / "tokenizer_config.json", [&](const std::string& text) -> int64_t {
        for (const auto& a : impl->added) {
          if (a.content == text) return a.id;
        }
        const auto it = impl->vocab.find(text);
        return it == impl->vocab.end() ? -1 : it->second;
      });
  if (from_config) impl->framing = *from_config;
  for (const int64_t id : impl->framing.ids()) {
    if (id < 0 || id >= impl->size || !impl->id_known[static_cast<size_t>(id)]) {
      throw_file_error(path, "post_processor adds token id " + std::to_string(id) +
                                 ", which is neither in model.vocab nor an added token");
    }
  }
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
  // when asked, so text that merely mentions "<|endoftext|>" cannot inject one. Tokens marked
  // `normalized` are looked for in the normalized text, the others in the raw text.
  std::vector<const detail::AddedToken*> raw;
  std::vector<const detail::AddedToken*> normalized;
  for (const auto& a : impl_->added) {
    if (!a.special || options.allow_special) (a.normalized ? normalized : raw).push_back(&a);
  }
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 2);
  const auto& prefix = impl_->framing.prefix;
  if (options.add_special_tokens) out.insert(out.end(), prefix.begin(), prefix.end());
  auto push_token = [&](const detail::AddedToken& token) { out.push_back(token.id); };
  // Metaspace's prepend_scheme "first" needs to know which piece begins the input.
  detail::split_added_tokens(
      text, raw,
      [&](std::string_view between) {
        const bool first = between.data() == text.data();
        const std::string n = impl_->normalizer.empty()
                                  ? std::string()
                                  : impl_->normalizer.apply(std::string(between));
        const std::string_view normal = impl_->normalizer.empty() ? between : std::string_view(n);
        detail::split_added_tokens(
            normal, normalized,
            [&](std::string_view piece) {
              impl_->encode_ordinary(piece, first && piece.data() == normal.data(), out);
            },
            push_token);
      },
      push_token);
  const auto& suffix = impl_->framing.suffix;
  if (options.add_special_tokens) out.insert(out.end(), suffix.begin(), suffix.end());
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    impl_->check_id(id);
    tokens.push_back(impl_->id_token[static_cast<size_t>(id)]);
  }
  return impl_->decoder.decode(std::move(tokens));
}

int64_t BpeTokenizer::vocab_size() const { return impl_->size; }

std::string BpeTokenizer::token_text(int64_t id) const {
  impl_->check_id(id);
  return impl_->decoder.decode({impl_->id_token[static_cast<size_t>(id)]}, /*alone=*/true);
}

int64_t BpeTokenizer::special_token_id(const std::string& token) const {
  for (const auto& a : impl_->added) {
    if (a.special && a.content == token) {
      return a.id;
    }
  }
  return -1;
}

bool BpeTokenizer::is_special(int64_t id) const {
  impl_->check_id(id);
  return impl_->id_special[static_cast<size_t>(id)];
}

}  // namespace llmscope
