// The "normalizer" of a Hugging Face tokenizer.json (internal): NFC, NFD, NFKC, NFKD (through
// ICU), Lowercase, StripAccents, Replace, Prepend, Strip and Sequence, applied in that file's
// order to the text between added tokens, never across them (as HF does).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace llmscope::detail {

class Normalizer {
 public:
  // `spec` is the "normalizer" value (null: none). Throws llmscope::Error naming `path` for a
  // normalizer llmscope does not run (BertNormalizer belongs to WordPiece, which reads it).
  static Normalizer from_json(const nlohmann::json& spec, const std::filesystem::path& path);

  bool empty() const { return steps_.empty(); }
  // `text` must be valid UTF-8; so is the result.
  std::string apply(std::string text) const;

 private:
  std::vector<std::function<void(std::string&)>> steps_;
};

}  // namespace llmscope::detail
