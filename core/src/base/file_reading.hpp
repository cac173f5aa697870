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

}  // namespace llmscope::detail
