// SentencePiece (Llama 2, Mistral): the library itself (through its module, see
// sentencepiece_backend.hpp) encodes and decodes, so normalization, the
// dummy prefix and byte fallback are exactly the model's; llmscope adds what transformers'
// LlamaTokenizer adds around it: BOS/EOS from tokenizer_config.json, special tokens split out
// of the text when asked, and the `legacy: false` placement of the "▁" prefix.
#include "llmscope/tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "base/file_reading.hpp"
#include "base/utf8.hpp"
#include "llmscope/error.hpp"
#include "tokenizers/added_tokens.hpp"
#include "tokenizers/sentencepiece_backend.hpp"

namespace llmscope {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary

struct SentencePieceTokenizer::Impl {
  std::unique_ptr<detail::SentencePieceBackend> sp;
  // legacy = false only: the model without its dummy prefix, and the unknown piece's text and
  // length in pieces, which encode_after_space puts before a stretch and takes off again.
  std::unique_ptr<detail::SentencePieceBackend> sp_plain;
  std::string unk_text;
  size_t unk_pieces = 0;
  SentencePieceOptions options;
  std::vector<detail::AddedToken> added;  // tokenizer_config.json's, else the control pieces
  int64_t size = 0;

  const detail::AddedToken* added_by_id(int64_t id) const {
    for (const auto& a : added) {
      if (a.id == id) return &a;
    }
    return nullptr;
  }

  bool in_model(int64_t id) const { return id >= 0 && id < sp->piece_size(); }

  void check_id(int64_t id) const {
    if (!in_model(id) && added_by_id(id) == nullptr) {
      throw Error("token id " + std::to_string(id) +
                  " is out of range for this tokenizer (vocabulary size " + std::to_string(size) +
                  ")");
    }
  }

  static std::vector<int> run_model(const detail::SentencePieceBackend& model,
                                    std::string_view text) {
    std::vector<int> ids;
    std::string error;
    if (!model.encode(text, &ids, &error)) {
      throw Error("SentencePiece cannot encode the text: " + error);
    }
    return ids;
  }

  void encode_text(std::string_view text, std::vector<int64_t>& out) const {
    const std::vector<int> ids = run_model(*sp, text);
    out.insert(out.end(), ids.begin(), ids.end());
  }

  // legacy = false, one stretch between added tokens (transformers' _tokenize). Without the
  // dummy prefix the model would drop a leading space as a word boundary; put behind the
  // unknown piece's text, the space stays one and the pieces of that text come off after.
  void encode_plain(std::string_view text, std::vector<int64_t>& out) const {
    const bool leading_space = text.substr(0, 1) == " " || text.substr(0, 3) == kSpaceMark;
    if (!leading_space) {
      const std::vector<int> ids = run_model(*sp_plain, text);
      out.insert(out.end(), ids.begin(), ids.end());
      return;
    }
    const std::vector<int> ids = run_model(*sp_plain, unk_text + std::string(text));
    const size_t skip = ids.size() >= unk_pieces ? unk_pieces : 0;
    out.insert(out.end(), ids.begin() + static_cast<std::ptrdiff_t>(skip), ids.end());
  }

  std::string decode_run(const std::vector<int>& run) const {
    std::string text;
    std::string error;
    if (!sp->decode(run, &text, &error))
      throw Error("SentencePiece cannot decode the ids: " + error);
    return text;
  }
};

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_model_file(
    const fs::path& model, const SentencePieceOptions& options) {
  auto impl = std::make_unique<Impl>();
  const std::string bytes = detail::read_file(model);
  impl->sp = detail::load_sentencepiece(bytes, model);
  impl->options = options;
  impl->size = impl->sp->piece_size();
  if (!options.legacy) {
    impl->sp_plain = detail::load_sentencepiece(detail::without_dummy_prefix(bytes), model);
  }
  for (int id = 0; id < impl->sp->piece_size(); ++id) {
    if (impl->sp->is_unknown(id) && impl->sp_plain) {
      impl->unk_text = impl->sp->id_to_piece(id);
      impl->unk_pieces = Impl::run_model(*impl->sp_plain, impl->unk_text).size();
    }
    if (impl->sp->is_control(id) || impl->sp->is_unknown(id)) {
      detail::AddedToken token;
      token.content = impl->sp->id_to_piece(id);
      token.id = id;
      token.special = true;
      if (!token.content.empty()) impl->added.push_back(std::move(token));
    }
  }
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(std::move(impl)));
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::from_folder(const fs::path& dir) {
  SentencePieceOptions options;
  std::vector<detail::AddedToken> added;
  const fs::path config_path = dir / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(config_path, ec)) {
    const json config = detail::parse_json(config_path, "a JSON object of tokenizer settings");
    if (!config.is_object()) throw_file_error(config_path, "expected a JSON object");
    options.add_bos = detail::optional_flag(config, "add_bos_token", true, config_path.string());
    options.add_eos = detail::optional_flag(config, "add_eos_token", false, config_path.string());
    options.legacy = detail::optional_flag(config, "legacy", true, config_path.string());
    options.add_prefix_space =
        detail::optional_flag(config, "add_prefix_space", true, config_path.string());
    added = detail::read_added_tokens_decoder(config, config_path);
  }
  auto tokenizer = from_model_file(dir / "tokenizer.model", options);
  Impl& impl = *tokenizer->impl_;
  for (auto& token : added) {
    // An entry for a piece of the model (<s>, </s>, <unk>) restates it; keep the model's text.
    if (impl.in_model(token.id) &&
        impl.sp->id_to_piece(static_cast<int>(token.id)) != token.content) {
      throw_file_error(config_path, "added_tokens_decoder[\"" + std::to_string(token.id) +
                                        "\"] is \"" + token.content +
                                        "\" but tokenizer.model's "
                                        "piece " +
                                        std::to_string(token.id) + " is \"" +
                                        impl.sp->id_to_piece(static_cast<int>(token.id)) + "\"");
    }
    auto it = std::find_if(impl.added.begin(), impl.added.end(),
                           [&](const detail::AddedToken& a) { return a.id == token.id; });
    if (it != impl.added.end()) {
      *it = std::move(token);
    } else {
      impl.size = std::max(impl.size, token.id + 1);
      impl.added.push_back(std::move(token));
    }
  }
  return tokenizer;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    const EncodeOptions& options) const {
  if (const size_t bad = detail::find_invalid_utf8(text); bad != std::string_view::npos) {
    throw Error("text is not valid UTF-8 at byte " + std::to_string(bad));
  }
  std::vector<const detail::AddedToken*> tokens;
  for (const auto& a : impl_->added) {
    if (!a.special || options.allow_special) tokens.push_back(&a);
  }
  std::vector<int64_t> out;
  const bool framed = options.add_special_tokens;
  if (framed && impl_->options.add_bos && impl_->sp->bos_id() >= 0)
    out.push_back(impl_->sp->bos_id());
  const auto added = [&](const detail::AddedToken& token) { out.push_back(token.id); };
  if (impl_->options.legacy || text.empty()) {
    detail::split_added_tokens(
        text, tokens, [&](std::string_view piece) { impl_->encode_text(piece, out); }, added);
  } else {
    // transformers' LlamaTokenizer.tokenize with legacy = False: "▁" in the text is a space, one
    // "▁" goes before the whole text (not before each stretch between added tokens), and is
    // dropped again when a special token follows it directly.
    std::string spaced(text);
    detail::replace_all(spaced, kSpaceMark, " ");
    if (impl_->options.add_prefix_space) spaced.insert(0, kSpaceMark);
    const size_t start = out.size();
    detail::split_added_tokens(
        spaced, tokens, [&](std::string_view piece) { impl_->encode_plain(piece, out); }, added);
    if (out.size() > start + 1 &&
        impl_->sp->id_to_piece(static_cast<int>(out[start])) == kSpaceMark) {
      const detail::AddedToken* next = impl_->added_by_id(out[start + 1]);
      if (next != nullptr && next->special)
        out.erase(out.begin() + static_cast<std::ptrdiff_t>(start));
    }
  }
  if (framed && impl_->options.add_eos && impl_->sp->eos_id() >= 0)
    out.push_back(impl_->sp->eos_id());
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  std::vector<int> run;  // ordinary pieces, decoded together so bytes and spaces join
  auto flush = [&] {
    if (!run.empty()) out += impl_->decode_run(run);
    run.clear();
  };
  for (const int64_t id : ids) {
    impl_->check_id(id);
    if (const detail::AddedToken* added = impl_->added_by_id(id)) {
      flush();
      out += added->content;
    } else {
      run.push_back(static_cast<int>(id));
    }
  }
  flush();
  return out;
}

int64_t SentencePieceTokenizer::vocab_size() const { return impl_->size; }

std::string SentencePieceTokenizer::token_text(int64_t id) const {
  impl_->check_id(id);
  if (const detail::AddedToken* added = impl_->added_by_id(id)) return added->content;
  const std::string piece = impl_->sp->id_to_piece(static_cast<int>(id));
  if (impl_->sp->is_byte(static_cast<int>(id))) {
    // "<0xE2>": the byte itself; alone it is rarely valid UTF-8, so it shows as U+FFFD.
    const std::string byte(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    return detail::utf8_lossy(byte);
  }
  std::string text = piece;
  detail::replace_all(text, kSpaceMark, " ");
  return text;
}

int64_t SentencePieceTokenizer::special_token_id(const std::string& token) const {
  for (const auto& a : impl_->added) {
    if (a.special && a.content == token) return a.id;
  }
  return -1;
}

bool SentencePieceTokenizer::is_special(int64_t id) const {
  impl_->check_id(id);
  const detail::AddedToken* added = impl_->added_by_id(id);
  return added != nullptr && added->special;
}

}  // namespace llmscope
