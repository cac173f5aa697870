#include "base/file_reading.hpp"

#include <fstream>
#include <sstream>

#include "llmscope/error.hpp"

namespace llmscope::detail {

std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw_file_error(path, "file not found");
  if (std::filesystem::is_directory(path, ec))
    throw_file_error(path, "expected a file, found a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw_file_error(path, "cannot open file for reading");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw_file_error(path, "error while reading file");
  return text.str();
}

nlohmann::json parse_json(const std::filesystem::path& path, const std::string& what) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_file_error(path, "not valid JSON (expected " + what + "): " + e.what());
  }
}

bool optional_flag(const nlohmann::json& json, const char* key, bool fallback,
                   const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return fallback;
  if (!json[key].is_boolean()) {
    throw Error(source + ": " + key + " must be true or false, got " + json[key].dump());
  }
  return json[key].get<bool>();
}

}  // namespace llmscope::detail
