// Tokenizers: the abstract interface models use, and GPT-2's byte-level BPE.
// BPE matches Hugging Face `tokenizers` exactly: GPT-2's pre-tokenisation regex through PCRE2
// (UTF + UCP), byte-to-unicode mapping, merges by rank, and lossy UTF-8 decoding.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmscope {

struct EncodeOptions {
  // When true, special tokens such as "<|endoftext|>" written in the text become their ids;
  // when false (the default, as in Hugging Face) they are encoded as ordinary text.
  bool allow_special = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;
  // Invalid UTF-8 byte sequences become U+FFFD, as Hugging Face decodes.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // The token's surface text (decoded bytes); throws llmscope::Error for an id out of range.
  virtual std::string token_text(int64_t id) const = 0;
  virtual std::string kind() const = 0;  // "bpe"

  // Loads whatever tokenizer files `dir` holds (tokenizer.json, else vocab.json + merges.txt);
  // throws llmscope::Error naming the folder when it has none.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);
  static bool exists_in(const std::filesystem::path& dir);
};

class BpeTokenizer final : public Tokenizer {
 public:
  static std::unique_ptr<BpeTokenizer> from_files(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt);
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::filesystem::path& path);
  ~BpeTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override;
  std::string token_text(int64_t id) const override;
  std::string kind() const override { return "bpe"; }

  // The id of a special token such as "<|endoftext|>", or -1.
  int64_t special_token_id(const std::string& token) const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmscope
