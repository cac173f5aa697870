// Hugging Face tokenizer.json, read the same way by every tokenizer (internal): the file and its
// "model" object, and what the "post_processor" adds around one sequence.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
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

// The template that transformers' LlamaTokenizerFast (and its Code Llama and Gemma kin) builds
// in place of the file's, from tokenizer_config.json: BOS when add_bos_token (default true), EOS
// when add_eos_token (default false). Nothing when `config_path` is absent or names another
// tokenizer_class, since other classes keep tokenizer.json's template. `id_of` gives a token's
// id or -1. Throws llmscope::Error naming `config_path` for a flag that is not a boolean or a
// BOS/EOS that is asked for but missing from the vocabulary.
std::optional<SingleTemplate> read_config_template(
    const std::filesystem::path& config_path,
    const std::function<int64_t(const std::string&)>& id_of);

}  // namespace llmscope::detail
