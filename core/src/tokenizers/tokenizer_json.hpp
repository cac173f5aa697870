// Hugging Face tokenizer.json, read the same way by both tokenizers (internal header): the file
// and its "model" object, and the "added_tokens" list.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace llmscope::detail {

// The parsed file, checked to be a JSON object with a "model" object (doc["model"]). Throws
// llmscope::Error naming `path` otherwise.
nlohmann::json read_tokenizer_json(const std::filesystem::path& path);

struct AddedTokenEntry {
  std::string content;
  int64_t id = 0;
  bool special = false;
};

// doc["added_tokens"] (absent or null: none): an array of objects with an integer "id" >= 0 and
// a string "content". Empty contents are skipped: they could never match, and HF ignores them
// too. Throws llmscope::Error naming `path` and the entry that is malformed.
std::vector<AddedTokenEntry> read_added_tokens(const nlohmann::json& doc,
                                               const std::filesystem::path& path);

}  // namespace llmscope::detail
