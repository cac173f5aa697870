// Reading whole files with errors that name the file (internal): tokenizer files, indexes.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace llmscope::detail {

// Throws llmscope::Error naming `path`: missing, a folder, unreadable.
std::string read_file(const std::filesystem::path& path);
// The file parsed as JSON; `what` says what it should hold ("an object of token ids").
nlohmann::json parse_json(const std::filesystem::path& path, const std::string& what);
// json[key] as true or false, `fallback` when absent or null; anything else throws
// llmscope::Error "<source>: <key> must be true or false, got <value>" (config.json fields,
// tokenizer_config.json fields, added-token flags).
bool optional_flag(const nlohmann::json& json, const char* key, bool fallback,
                   const std::string& source);

}  // namespace llmscope::detail
