// Byte-level BPE as Hugging Face `tokenizers` runs it: GPT-2's vocab.json + merges.txt, or any
// byte-level tokenizer.json (GPT-2, Llama 3, Qwen2...): added tokens split out first, the
// normalizer between them, the pre-tokenizer's regex splits, the byte-level alphabet, merges by
// rank (or a whole piece when ignore_merges), the post-processor's template, and lossy UTF-8
// decoding.
#include "llmscope/tokenizer.hpp"

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "tokenizers/added_tokens.hpp"
#include "tokenizers/byte_level.hpp"
#include "tokenizers/normalizer.hpp"
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

  std::unordered_map<std::string, int64_t> vocab;  // byte-level token string → id
  std::unordered_map<uint64_t, Merge> merges;      // (left id, right id) → merge
  std::array<int64_t, 256> byte_token{};           // id of each single-byte token, or -1
  std::vector<std::string> id_bytes;               // id → the bytes it stands for
  std::vector<bool> id_known;                      // false for holes in the id range
  std::vector<detail::AddedToken> added;
  std::vector<bool> id_special;  // ids of added tokens marked special
  int64_t size = 0;

  // The pipeline around the model, from tokenizer.json (GPT-2's when read from vocab.json).
  detail::Normalizer normalizer;
  std::vector<std::unique_ptr<detail::RegexSplit>> own_splits;
  std::vector<const detail::RegexSplit*> splits = {&detail::gpt2_split()};  // applied in turn
  bool add_prefix_space = false;
  bool ignore_merges = false;  // a piece that is itself in the vocabulary is one token
  int64_t unk = -1;            // for bytes the vocabulary lacks, or -1 (then an error)
  detail::SingleTemplate framing;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;  // piece bytes → ids

  static uint64_t pair_key(int64_t a, int64_t b) {
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
  }

  // Builds the id tables once vocab, merges and added tokens are in place. An added token whose
  // content is already in the vocabulary keeps that id, as HF does when it loads the file.
  void finish() {
    size = 0;
    for (const auto& [tok, id] : vocab) size = std::max(size, id + 1);
    for (const auto& a : added) size = std::max(size, a.id + 1);
    id_bytes.assign(static_cast<size_t>(size), std::string());
    id_known.assign(static_cast<size_t>(size), false);
    id_special.assign(static_cast<size_t>(size), false);
    for (const auto& a : added) {
      id_bytes[a.id] = detail::from_byte_level(a.content);
      id_known[a.id] = true;
      id_special[a.id] = a.special;
    }
    for (const auto& [tok, id] : vocab) {
      id_bytes[id] = detail::from_byte_level(tok);
      id_known[id] = true;
    }
    const auto& chars = detail::byte_level_chars();
    for (int b = 0; b < 256; ++b) {
      const auto it = vocab.find(chars[b]);
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
    if (ignore_merges) {
      const auto it = vocab.find(detail::to_byte_level(piece));
      if (it != vocab.end()) return {it->second};
    }
    struct Sym {
      int64_t id;
      int prev, next;
    };
    std::vector<Sym> syms;
    syms.reserve(piece.size());
    for (size_t i = 0; i < piece.size(); ++i) {
      const auto byte = static_cast<unsigned char>(piece[i]);
      int64_t id = byte_token[byte];
      if (id < 0 && unk >= 0) id = unk;
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

  // The pre-tokenizer's splits in turn (each refines the pieces of the one before), then BPE.
  void split_and_encode(std::string_view text, size_t level, std::vector<int64_t>& out) const {
    if (level == splits.size()) {
      encode_piece(text, out);
      return;
    }
    splits[level]->split(text,
                         [&](std::string_view piece) { split_and_encode(piece, level + 1, out); });
  }

  // Text between added tokens, already normalized.
  void encode_ordinary(std::string_view text, std::vector<int64_t>& out) const {
    if (add_prefix_space && !text.empty() && text.front() != ' ') {
      const std::string spaced = " " + std::string(text);
      split_and_encode(spaced, 0, out);
      return;
    }
    split_and_encode(text, 0, out);
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

// The pre_tokenizer of a byte-level tokenizer.json: ByteLevel (use_regex: GPT-2's split), or a
// Sequence of Split(Regex or String, Isolated) ending in ByteLevel. Anything else would give
// other pieces than Hugging Face, so it is refused with what was found.
void read_pre_tokenizer(const json& doc, const fs::path& path, BpeTokenizer::Impl& impl) {
  const json pre = doc.value("pre_tokenizer", json());
  std::vector<json> steps;
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array()) {
    steps.assign(pre["pretokenizers"].begin(), pre["pretokenizers"].end());
  } else {
    steps.push_back(pre);
  }
  impl.splits.clear();
  auto refuse = [&](const std::string& what) {
    throw_file_error(path, "pre_tokenizer: " + what +
                               "; llmscope runs byte-level BPE whose pre_tokenizer is ByteLevel "
                               "or a Sequence of Split(Isolated) steps ending in ByteLevel");
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = steps[i];
    const std::string type = step.is_object() ? step.value("type", std::string("?")) : step.dump();
    if (type == "ByteLevel") {
      if (i + 1 != steps.size()) refuse("ByteLevel must be the last step");
      impl.add_prefix_space = step.value("add_prefix_space", false);
      if (step.value("use_regex", true)) impl.splits.push_back(&detail::gpt2_split());
      return;
    }
    if (type != "Split") refuse(type + " is not supported (expected ByteLevel)");
    if (step.value("behavior", std::string("?")) != "Isolated" || step.value("invert", false)) {
      refuse("Split with behavior " + step.value("behavior", std::string("?")) +
             (step.value("invert", false) ? " and invert" : "") + " is not supported");
    }
    const json pattern = step.value("pattern", json());
    std::string regex;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex = pattern["Regex"].get<std::string>();
    } else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
      regex = "\\Q" + pattern["String"].get<std::string>() + "\\E";
    } else {
      refuse("Split's pattern " + pattern.dump() +
             " is neither {\"Regex\": ...} nor {\"String\": ...}");
    }
    impl.own_splits.push_back(
        std::make_unique<detail::RegexSplit>(regex, path.string() + ": pre_tokenizer Split"));
    impl.splits.push_back(impl.own_splits.back().get());
  }
  refuse(pre.is_null() ? std::string("none (the vocabulary's byte alphabet would never be used)")
                       : "no ByteLevel step");
}

// The decoder must turn byte-level characters back into bytes.
void check_decoder(const json& doc, const fs::path& path) {
  const json dec = doc.value("decoder", json());
  if (dec.is_null()) return;
  std::vector<json> steps;
  if (dec.is_object() && dec.value("type", "") == "Sequence" && dec.contains("decoders")) {
    steps.assign(dec["decoders"].begin(), dec["decoders"].end());
  } else {
    steps.push_back(dec);
  }
  for (const json& step : steps) {
    const std::string type = step.is_object() ? step.value("type", std::string("?")) : "?";
    if (type != "ByteLevel") {
      throw_file_error(
          path, "decoder " + type + " is not supported for byte-level BPE (expected ByteLevel)");
    }
  }
}

void read_bpe_model(const json& model, const fs::path& path, BpeTokenizer::Impl& impl) {
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
                                 "; byte-level BPE with word affixes is not supported");
    }
  }
  if (model.value("dropout", json()).is_number() && model["dropout"].get<double>() > 0) {
    throw_file_error(path, "model.dropout is set; BPE dropout is for training, not supported");
  }
  impl.ignore_merges = model.value("ignore_merges", false);
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
  impl->finish();
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const fs::path& path) {
  const json doc = detail::read_tokenizer_json(path);
  auto impl = std::make_unique<Impl>();
  read_pre_tokenizer(doc, path, *impl);
  check_decoder(doc, path);
  impl->normalizer = detail::Normalizer::from_json(doc.value("normalizer", json()), path);
  read_bpe_model(doc["model"], path, *impl);
  impl->added = detail::read_added_tokens(doc, path);
  impl->finish();
  impl->framing = detail::read_single_template(doc.value("post_processor", json()), path);
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
  auto encode_normalized = [&](std::string_view piece) { impl_->encode_ordinary(piece, out); };
  detail::split_added_tokens(
      text, raw,
      [&](std::string_view between) {
        if (impl_->normalizer.empty()) {
          detail::split_added_tokens(between, normalized, encode_normalized, push_token);
          return;
        }
        const std::string n = impl_->normalizer.apply(std::string(between));
        detail::split_added_tokens(n, normalized, encode_normalized, push_token);
      },
      push_token);
  const auto& suffix = impl_->framing.suffix;
  if (options.add_special_tokens) out.insert(out.end(), suffix.begin(), suffix.end());
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

bool BpeTokenizer::is_special(int64_t id) const {
  impl_->check_id(id);
  return impl_->id_special[static_cast<size_t>(id)];
}

}  // namespace llmscope
