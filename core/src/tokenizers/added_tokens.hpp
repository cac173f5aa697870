// Added tokens (internal), split out of text before anything else runs, as Hugging Face's added
// vocabulary does: leftmost-longest, non-overlapping matches; `single_word` drops a match that
// touches a word character, `lstrip`/`rstrip` swallow the whitespace beside a match. Every
// tokenizer (byte-level BPE, WordPiece, SentencePiece) splits through this one unit.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace llmscope::detail {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
  bool normalized = false;  // matched in the normalized text (HF's default: !special)
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// doc["added_tokens"] of a tokenizer.json (absent or null: none), or tokenizer_config.json's
// "added_tokens_decoder" object (id → entry): objects with an integer "id" >= 0 and a string
// "content". Empty contents are skipped: they could never match, and HF ignores them too.
// Throws llmscope::Error naming `path` and the entry that is malformed.
std::vector<AddedToken> read_added_tokens(const nlohmann::json& doc,
                                          const std::filesystem::path& path);
std::vector<AddedToken> read_added_tokens_decoder(const nlohmann::json& config,
                                                  const std::filesystem::path& path);

// Calls on_text for each non-empty stretch of `text` between matches of `tokens` and on_token for
// each match, in order. `text` must be valid UTF-8.
// A vocabulary's ids index tables of (largest id + 1) entries: an id far beyond the number of
// tokens (a corrupt or hostile file) would make them huge. Throws naming `source` when the
// largest id is not below 4 x tokens + 65536.
void check_id_range(int64_t largest_id, size_t tokens, const std::filesystem::path& source);

void split_added_tokens(std::string_view text, const std::vector<const AddedToken*>& tokens,
                        const std::function<void(std::string_view)>& on_text,
                        const std::function<void(const AddedToken&)>& on_token);

}  // namespace llmscope::detail
