// Hugging Face tokenizer.json, read the same way by every tokenizer (internal): the file and its
// "model" object, and what the "post_processor" adds around one sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <vector>

namespace llmscope::detail {

// The parsed file, checked to be a JSON object with a "model" object (doc["model"]). Throws
// llmscope::Error naming `path` otherwise.
nlohmann::json read_tokenizer_json(const std::filesystem::path& path);

// The ids a post-processor puts before and after one sequence when special tokens are added.
struct SingleTemplate {
  std::vector<int64_t> prefix;
  std::vector<int64_t> suffix;
  std::vector<int64_t> ids() const;
};

// From "post_processor" (null: nothing): TemplateProcessing's "single" ($A once, special tokens
// around it), RobertaProcessing and BertProcessing (cls $A sep), ByteLevel (ids unchanged) and a
// Sequence of these. Throws llmscope::Error naming `path` for anything else.
SingleTemplate read_single_template(const nlohmann::json& post, const std::filesystem::path& path);

}  // namespace llmscope::detail
