// Tokenizers: the abstract interface models use; byte-level BPE (GPT-2, Llama 3, Qwen2...),
// BERT's WordPiece and SentencePiece (Llama 2, Mistral).
// BPE matches Hugging Face `tokenizers` exactly: added tokens split out first, the file's
// normalizer, its pre-tokenisation regexes through PCRE2 (UTF + UCP), byte-to-unicode mapping,
// merges by rank (ignore_merges too), the post-processor's template, and lossy UTF-8 decoding.
// WordPiece matches `tokenizers`' BertWordPieceTokenizer: BertNormalizer, BertPreTokenizer,
// greedy longest-match-first WordPiece, and the [CLS] a [SEP] b [SEP] template.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmscope {

struct EncodeOptions {
  // BPE and SentencePiece: when true, special tokens such as "<|endoftext|>" or "<s>" written in
  // the text become their ids, as Hugging Face's tokenizers do; when false (the default) they are
  // encoded as ordinary text, so text that merely mentions one cannot inject it. Added tokens
  // that are not special are always split out.
  // WordPiece ignores it: "[MASK]", "[SEP]"... written in the text are always kept whole, as
  // Hugging Face's BERT tokenizers do.
  bool allow_special = false;
  // Frame the ids as the model was trained to see them: [CLS] ... [SEP] for WordPiece, the
  // post-processor's template of a tokenizer.json (Llama 3's <|begin_of_text|>), BOS/EOS as a
  // SentencePiece folder's tokenizer_config.json says. GPT-2 has no framing tokens.
  bool add_special_tokens = true;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(std::string_view text,
                                      const EncodeOptions& options = {}) const = 0;
  // Invalid UTF-8 byte sequences become U+FFFD, as Hugging Face decodes.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // The token's text: BPE's decoded bytes (" world"), WordPiece's vocabulary entry ("##ing");
  // throws llmscope::Error for an id out of range.
  virtual std::string token_text(int64_t id) const = 0;
  virtual std::string kind() const = 0;  // "bpe", "wordpiece", "sentencepiece"
  // The id of a special token such as "<|endoftext|>" or "[MASK]", or -1 when it has none.
  virtual int64_t special_token_id(const std::string& token) const = 0;

  // Loads whatever tokenizer files `dir` holds, in this order: tokenizer.json (byte-level BPE
  // or WordPiece, by its model and pre_tokenizer), tokenizer.model (SentencePiece, also when a
  // tokenizer.json beside it is a SentencePiece conversion), vocab.json + merges.txt (BPE),
  // vocab.txt (WordPiece, see WordPieceTokenizer::from_folder). Throws llmscope::Error naming
  // the folder and the files looked for when it has none.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);
  static bool exists_in(const std::filesystem::path& dir);

  // Whether `id` is a special token (BOS, EOS, "<|endoftext|>", "[CLS]"...): what Hugging Face's
  // decode(skip_special_tokens=True) drops. Throws llmscope::Error for an id out of range.
  // (Added in plugin ABI 2.1, last in the table so plugins built for 2.0 still run.)
  virtual bool is_special(int64_t id) const = 0;

  // decode() of the ids that are not special, as HF's decode(ids, skip_special_tokens=True).
  std::string decode_skipping_special(const std::vector<int64_t>& ids) const {
    std::vector<int64_t> kept;
    kept.reserve(ids.size());
    for (const int64_t id : ids) {
      if (!is_special(id)) kept.push_back(id);
    }
    return decode(kept);
  }
};

class BpeTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<BpeTokenizer> from_files(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt);
  // A byte-level tokenizer.json; throws llmscope::Error naming the file and the part llmscope
  // does not run (a pre-tokenizer without ByteLevel, say) rather than give other ids than HF.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  ~BpeTokenizer() override;

  std::vector<int64_t> encode(std::string_view text,
                              const EncodeOptions& options = {}) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  std::string token_text(int64_t id) const override;
  std::string kind() const override { return "bpe"; }

  // The id of a special token such as "<|endoftext|>", or -1.
  int64_t special_token_id(const std::string& token) const override;
  bool is_special(int64_t id) const override;

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// GPT-2's pre-tokenisation, exactly as BpeTokenizer::encode splits text before merging (the
// BPE trainer shares it so a trained vocabulary matches what encoding will see): calls fn with
// each piece of `text` in order; the pieces concatenate to `text`. Throws llmscope::Error when
// `text` is not valid UTF-8.
void gpt2_pretokenize(std::string_view text, const std::function<void(std::string_view)>& fn);
// GPT-2's bytes_to_unicode: for each byte, the UTF-8 of the printable character that stands for
// it in vocab.json and merges.txt.
const std::array<std::string, 256>& gpt2_byte_to_unicode();

struct EncodePairOptions {
  // [CLS] a [SEP] b [SEP] when true; a b when false (token_type_ids are 0 for a, 1 for b either
  // way, as in Hugging Face).
  bool add_special_tokens = true;
};

// A sentence pair as BERT takes it. token_type_ids[i] is 0 for [CLS], a and the first [SEP],
// 1 for b and the last [SEP]; both vectors have the same length.
struct PairEncoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;
};

// BertNormalizer's settings. The defaults are uncased BERT's (BertWordPieceTokenizer with
// lowercase=True).
struct WordPieceOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: follows `lowercase`, as in Hugging Face
  bool clean_text = true;             // drop control characters, map whitespace to ' '
  bool handle_chinese_chars = true;   // each CJK ideograph becomes a word of its own
};

class WordPieceTokenizer final : public Tokenizer {
 public:
  // vocab.txt: one token per line, the id is the line number (0-based). [UNK], [CLS] and [SEP]
  // must be in it; [PAD], [UNK], [CLS], [SEP] and [MASK] are the special tokens.
  static std::unique_ptr<WordPieceTokenizer> from_vocab_txt(const std::filesystem::path& vocab_txt,
                                                            const WordPieceOptions& options = {});
  // A Hugging Face tokenizer.json whose model.type is "WordPiece" (BertNormalizer or none,
  // BertPreTokenizer, BertProcessing or a BERT-shaped TemplateProcessing, or none).
  static std::unique_ptr<WordPieceTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  // `dir`/vocab.txt, with do_lower_case, strip_accents and tokenize_chinese_chars taken from
  // `dir`/tokenizer_config.json when it has them (as transformers' BertTokenizer does).
  static std::unique_ptr<WordPieceTokenizer> from_folder(const std::filesystem::path& dir);
  ~WordPieceTokenizer() override;

  // Text → ids, with [CLS] ... [SEP] unless options.add_special_tokens is false.
  std::vector<int64_t> encode(std::string_view text,
                              const EncodeOptions& options = {}) const override;
  PairEncoding encode_pair(std::string_view a, std::string_view b,
                           const EncodePairOptions& options = {}) const;
  // The tokens joined the way Hugging Face decodes BERT ids: [CLS], [SEP] and [PAD] are skipped
  // ([UNK] and [MASK] are kept, unlike HF's skip_special_tokens=True, so masked positions stay
  // visible); a "##" continuation joins the token before it, any other token is preceded by a
  // space; then transformers' clean_up_tokenization: " ." " ?" " !" " ," lose their space,
  // " ' " becomes "'", and " n't" " 'm" " 's" " 've" " 're" join the word before them.
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  // The vocabulary entry itself ("##ing" for a continuation).
  std::string token_text(int64_t id) const override;
  std::string kind() const override { return "wordpiece"; }

  // The id of a special token such as "[MASK]", or -1.
  int64_t special_token_id(const std::string& token) const override;
  bool is_special(int64_t id) const override;

  struct Impl;

 private:
  explicit WordPieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What transformers' LlamaTokenizer reads from tokenizer_config.json around the model: BOS/EOS
// framing (defaults: BOS yes, EOS no), and `legacy`. legacy = false (Llama 2's own files) runs
// the model without its dummy prefix and puts the "▁" only before the whole text, so a stretch
// that follows an added token split out of the text gets none; `add_prefix_space` = false
// leaves even that one out.
struct SentencePieceOptions {
  bool add_bos = true;
  bool add_eos = false;
  bool legacy = true;
  bool add_prefix_space = true;
};

// A SentencePiece model (tokenizer.model) run by the SentencePiece library itself: its
// normalization, the "▁" dummy prefix and byte fallback exactly as the model was trained.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<SentencePieceTokenizer> from_model_file(
      const std::filesystem::path& model, const SentencePieceOptions& options = {});
  // `dir`/tokenizer.model, with add_bos_token, add_eos_token, legacy, add_prefix_space and
  // added_tokens_decoder from `dir`/tokenizer_config.json when it has them.
  static std::unique_ptr<SentencePieceTokenizer> from_folder(const std::filesystem::path& dir);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text,
                              const EncodeOptions& options = {}) const override;
  // Special tokens are written as their text ("<s>"); the pieces between them decode as
  // SentencePiece decodes (the dummy prefix's space dropped, byte pieces joined into UTF-8).
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  // The piece with "▁" shown as a space; a byte piece ("<0xE2>") is its byte, lossily decoded.
  std::string token_text(int64_t id) const override;
  std::string kind() const override { return "sentencepiece"; }
  int64_t special_token_id(const std::string& token) const override;
  bool is_special(int64_t id) const override;

  struct Impl;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmscope
